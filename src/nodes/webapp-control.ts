import type { ServerResponse } from "node:http";
import { MalformedMessage, parseAdminCommand } from "../adapters/transport/messages.js";
import { parseDuration } from "../config/duration.js";
import { parseSettingsPatch } from "../config/settings-patch.js";
import { API_ERRORS } from "../core/api-errors.js";
import { ConfigError, MulticonnectError, StoreUnavailableError, TransportUnavailableError } from "../core/errors.js";
import { DEFAULT_PAUSE_MS, pauseLengthProblem } from "../core/master/control-plane.js";
import type { Store } from "../core/ports/store.js";
import type { AdminCommand, AdminReply, Transport } from "../core/ports/transport.js";
import type { Timing } from "../core/timing.js";
import { readClusterStatus } from "./cluster-status.js";
import { findPrimaryMaster } from "./primary-master.js";
import type { BodyReader, ReservedRoutes } from "./webapp-admin.js";
import { sendBodyError, sendError, sendJson } from "./webapp-http.js";

/** What the control routes need from their webapp. */
export interface ControlRouteDeps {
  readonly store: Store;
  readonly transport: Transport;
  readonly timing: Timing;
  readonly shards: number;
  readonly bodyTimeoutMs: number;
}

/** Who the history says asked, for changes made through this API. */
const BY = "admin API";
/** An admin request body is a small JSON object. */
const MAX_ADMIN_BODY = 64 * 1024;
/** How long the primary master has to answer a command (as for the CLI's). */
const COMMAND_TIMEOUT_MS = 10_000;

class BadRequest extends Error {}

/**
 * The control plane over HTTP, on every webapp, behind the admin token (webapp-admin.ts checks it
 * before any of these runs):
 *
 * - `GET /v1/settings` — the live settings, their version, the failover bound and the pauses;
 * - `PATCH /v1/settings/application` — `{"unhealthy_interval": "10s", …}` (the model product's path);
 * - `POST /v1/admin/pause` — `{"shard": 2, "duration": "30m", "reason": "…"}` (shard absent: the whole
 *   cluster; duration default one hour), `POST /v1/admin/resume` — `{"shard": 2}`,
 *   `POST /v1/admin/clear-hold` — `{"node": "coreapp-3"}`,
 *   `POST /v1/admin/forget` — `{"node": "<id or name>", "force": false}` (409 when refused);
 * - `GET /v1/history?shard=N&limit=N&before=SEQ` — newest first.
 *
 * Reads come from the store. Changes go to the primary master over the transport, as the CLI's do:
 * the master is the only writer of the cluster document, and answers 1017 if it lost the lease on
 * the way (then so does this API, and nothing was changed). Input is checked here by the rules the
 * master applies (the same functions), so what it would refuse is a 400 naming the problem; a
 * command the master did not answer in time is a 504 whose outcome is unknown (see
 * {@link sendMasterFailure}).
 */
export function addControlRoutes(routes: ReservedRoutes, d: ControlRouteDeps): void {
  routes
    .add("GET", "/v1/settings", (_req, res) =>
      answer(res, d, async () => {
        const s = await readClusterStatus(d.store, d.timing, d.shards);
        sendJson(res, 200, { settings: s.settings, failover_bound_ms: s.failover_bound_ms, pauses: s.pauses, held_out: s.held_out });
      }),
    )
    .add("PATCH", "/v1/settings/application", (_req, res, _path, body) =>
      answer(res, d, async () => {
        const settings = parseSettingsPatch(await jsonBody(body, d));
        await command(res, d, { op: "settings", settings, by: BY });
      }),
    )
    .add("POST", "/v1/admin/pause", (_req, res, _path, body) =>
      answer(res, d, async () => {
        const input = await jsonBody(body, d);
        const parsed = input["duration"] === undefined ? DEFAULT_PAUSE_MS : parseDuration(input["duration"]);
        if (parsed === null) throw new BadRequest("duration must be a duration such as 30m or 1h");
        const durationMs = Math.round(parsed);
        const problem = pauseLengthProblem(durationMs);
        if (problem) throw new BadRequest(`duration ${problem}`);
        const reason = input["reason"] ?? "";
        if (typeof reason !== "string") throw new BadRequest("reason must be text");
        await command(res, d, { op: "pause", shard: shardOf(input), reason, durationMs, by: BY });
      }),
    )
    .add("POST", "/v1/admin/resume", (_req, res, _path, body) =>
      answer(res, d, async () => {
        await command(res, d, { op: "resume", shard: shardOf(await jsonBody(body, d)), by: BY });
      }),
    )
    .add("POST", "/v1/admin/clear-hold", (_req, res, _path, body) =>
      answer(res, d, async () => {
        const node = (await jsonBody(body, d))["node"];
        if (typeof node !== "string" || node === "") throw new BadRequest('send {"node": "<name>"}');
        await command(res, d, { op: "clear-hold", node, by: BY });
      }),
    )
    .add("POST", "/v1/admin/forget", (_req, res, _path, body) =>
      answer(res, d, async () => {
        const { node, force } = await jsonBody(body, d);
        if (typeof node !== "string" || node === "" || (force !== undefined && typeof force !== "boolean"))
          throw new BadRequest('send {"node": "<id or name>", "force": false}');
        await command(
          res,
          d,
          { op: "forget", node, force: force === true, by: BY },
          ({ removed: n }) => ({ removed: n?.id, role: n?.role, name: n?.name }),
          "GET /v1/health (the node list)",
        );
      }),
    )
    .add("GET", "/v1/history", (req, res) =>
      answer(res, d, async () => {
        const q = new URL(req.url ?? "/", "http://local").searchParams;
        const number = (key: string) => {
          const v = q.get(key);
          if (v === null) return {};
          if (!/^\d{1,15}$/.test(v)) throw new BadRequest(`${key} must be a whole number`);
          return { [key]: Number(v) };
        };
        sendJson(res, 200, { events: await d.store.history.list({ ...number("shard"), ...number("limit"), ...number("before") }) });
      }),
    );
}

/** Runs `fn`; bad input is a 400 naming the problem, an unreachable store a 503 with its own code. */
async function answer(res: ServerResponse, d: ControlRouteDeps, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof BadRequest || error instanceof ConfigError || error instanceof RangeError) {
      return sendError(res, 400, 400, "Bad request", error.message);
    }
    if (sendBodyError(res, error, MAX_ADMIN_BODY, d.bodyTimeoutMs)) return;
    if (error instanceof StoreUnavailableError) {
      return sendError(res, 503, API_ERRORS.STORE_UNAVAILABLE.code, API_ERRORS.STORE_UNAVAILABLE.title, error.message);
    }
    throw error;
  }
}

/**
 * Sends `c` to the primary master and passes its answer on: `done` makes the body of a 200 from
 * its reply; `check` says where to see whether a command left without an answer took effect.
 */
async function command(
  res: ServerResponse,
  d: ControlRouteDeps,
  c: AdminCommand,
  done: (reply: AdminReply) => object = (reply) => ({ ok: true, ...(reply.version === undefined ? {} : { version: reply.version }) }),
  check = "GET /v1/settings (settings and pauses) or GET /v1/history",
): Promise<void> {
  const checked = asMasterReads(c);
  const master = await findPrimaryMaster(d.store);
  const { code, title } = API_ERRORS.NOT_PRIMARY_MASTER;
  if (!master)
    return sendError(res, 503, code, title, "no primary master holds the lease right now; try again shortly", { "retry-after": "1" });
  let reply: AdminReply;
  try {
    reply = await d.transport.admin(master, checked, COMMAND_TIMEOUT_MS);
  } catch (error) {
    if (sendMasterFailure(res, error, check)) return;
    throw error;
  }
  if (reply.ok) return sendJson(res, 200, done(reply));
  const e = reply.error ?? { code: 500, message: "the primary master refused without a reason" };
  const store = API_ERRORS.STORE_UNAVAILABLE;
  if (e.code === code || e.code === store.code) {
    return sendError(res, 503, e.code, e.code === code ? title : store.title, e.message, { "retry-after": "1" });
  }
  sendError(res, e.code >= 400 && e.code < 500 ? e.code : 500, e.code, "Refused", e.message);
}

/**
 * `c` as the primary master reads it: its transport runs this same check on every admin command
 * and refuses what fails it, which the webapp could only report as a failure of its own. Run here,
 * it makes such input (a reason over 1000 characters, a node name with a space) a 400 naming the
 * problem, before anything is sent.
 */
function asMasterReads(c: AdminCommand): AdminCommand {
  try {
    return parseAdminCommand(Buffer.from(JSON.stringify(c)));
  } catch (error) {
    if (error instanceof MalformedMessage) throw new BadRequest(error.message.replace(/^admin: /, ""));
    throw error;
  }
}

/**
 * Answers a command the primary master did not answer, and returns true; false (nothing sent) for
 * any other error. `check` names where to see whether the command took effect.
 * - Not delivered (no connection could be opened): 503, nothing was applied; retry.
 * - Anything else unavailable (no answer in time, the connection lost after sending): 504 with
 *   code 1502, as an in-doubt forward: the master may have applied it, so the answer says so and
 *   where to look before sending it again.
 * - Refused as malformed (`transport_rejected`: a primary master serves every kind of message this
 *   webapp sends, so its refusal means the command failed its checks, as between two versions
 *   that check differently): 400 with its reason.
 */
export function sendMasterFailure(res: ServerResponse, error: unknown, check: string): boolean {
  if (error instanceof TransportUnavailableError && error.notDelivered) {
    sendError(res, 503, 503, "Service Unavailable", `the primary master could not be reached, nothing was applied: ${error.message}`, {
      "retry-after": "1",
    });
  } else if (error instanceof TransportUnavailableError) {
    const { code, title } = API_ERRORS.REQUEST_IN_DOUBT;
    const details =
      `the primary master did not answer (${error.message}): the command may or may not have been applied. ` +
      `Check ${check} before sending it again`;
    sendError(res, 504, code, title, details);
  } else if (error instanceof MulticonnectError && error.code === "transport_rejected") {
    sendError(res, 400, 400, "Bad request", `the primary master refused the command as malformed: ${error.message}`);
  } else return false;
  return true;
}

/** The request's JSON object body (at most 64 KiB); `{}` when it has none. */
async function jsonBody(body: BodyReader, d: ControlRouteDeps): Promise<Record<string, unknown>> {
  const text = (await body(MAX_ADMIN_BODY, d.bodyTimeoutMs)).toString("utf8");
  if (text.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BadRequest("the body is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new BadRequest("the body must be a JSON object");
  return parsed as Record<string, unknown>;
}

/** The body's `shard`: absent or null means the whole cluster. */
function shardOf(body: Record<string, unknown>): number | null {
  const shard = body["shard"];
  if (shard === undefined || shard === null) return null;
  if (typeof shard !== "number" || !Number.isSafeInteger(shard) || shard < 0)
    throw new BadRequest("shard must be a non-negative whole number");
  return shard;
}
