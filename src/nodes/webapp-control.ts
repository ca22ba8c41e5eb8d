import type { IncomingMessage, ServerResponse } from "node:http";
import { parseDuration } from "../config/duration.js";
import { parseSettingsPatch } from "../config/settings-patch.js";
import { API_ERRORS } from "../core/api-errors.js";
import { ConfigError, StoreUnavailableError } from "../core/errors.js";
import { DEFAULT_PAUSE_MS } from "../core/master/control-plane.js";
import type { Store } from "../core/ports/store.js";
import type { AdminCommand, Transport } from "../core/ports/transport.js";
import type { Timing } from "../core/timing.js";
import { readClusterStatus } from "./cluster-status.js";
import { findPrimaryMaster } from "./primary-master.js";
import type { ReservedRoutes } from "./webapp-admin.js";
import { BodyTimeoutError, BodyTooLargeError, readBody, sendError, sendJson } from "./webapp-http.js";

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

class BadRequest extends Error {}

/**
 * The control plane over HTTP, on every webapp, behind the admin token (webapp-admin.ts checks it
 * before any of these runs):
 *
 * - `GET /v1/settings` — the live settings, their version, the failover bound and the pauses;
 * - `PATCH /v1/settings/application` — `{"unhealthy_interval": "10s", …}` (the model product's path);
 * - `POST /v1/admin/pause` — `{"shard": 2, "duration": "30m", "reason": "…"}` (shard absent: the whole
 *   cluster; duration default one hour), `POST /v1/admin/resume` — `{"shard": 2}`,
 *   `POST /v1/admin/clear-hold` — `{"node": "coreapp-3"}`;
 * - `GET /v1/history?shard=N&limit=N&before=SEQ` — newest first.
 *
 * Reads come from the store. Changes go to the primary master over the transport, as the CLI's do:
 * the master is the only writer of the cluster document, and answers 1017 if it lost the lease on
 * the way (then so does this API, and nothing was changed).
 */
export function addControlRoutes(routes: ReservedRoutes, d: ControlRouteDeps): void {
  routes
    .add("GET", "/v1/settings", (_req, res) =>
      answer(res, async () => {
        const s = await readClusterStatus(d.store, d.timing, d.shards);
        sendJson(res, 200, { settings: s.settings, failover_bound_ms: s.failover_bound_ms, pauses: s.pauses, held_out: s.held_out });
      }),
    )
    .add("PATCH", "/v1/settings/application", (req, res) =>
      answer(res, async () => {
        const settings = parseSettingsPatch(await jsonBody(req, d));
        await command(res, d, { op: "settings", settings, by: BY });
      }),
    )
    .add("POST", "/v1/admin/pause", (req, res) =>
      answer(res, async () => {
        const body = await jsonBody(req, d);
        const durationMs = body["duration"] === undefined ? DEFAULT_PAUSE_MS : parseDuration(body["duration"]);
        if (durationMs === null || durationMs <= 0) throw new BadRequest("duration must be a positive duration such as 30m or 1h");
        const reason = body["reason"] ?? "";
        if (typeof reason !== "string") throw new BadRequest("reason must be text");
        await command(res, d, { op: "pause", shard: shardOf(body), reason, durationMs: Math.round(durationMs), by: BY });
      }),
    )
    .add("POST", "/v1/admin/resume", (req, res) =>
      answer(res, async () => {
        await command(res, d, { op: "resume", shard: shardOf(await jsonBody(req, d)), by: BY });
      }),
    )
    .add("POST", "/v1/admin/clear-hold", (req, res) =>
      answer(res, async () => {
        const node = (await jsonBody(req, d))["node"];
        if (typeof node !== "string" || node === "") throw new BadRequest('send {"node": "<name>"}');
        await command(res, d, { op: "clear-hold", node, by: BY });
      }),
    )
    .add("GET", "/v1/history", (req, res) =>
      answer(res, async () => {
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
async function answer(res: ServerResponse, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof BadRequest || error instanceof ConfigError || error instanceof RangeError) {
      return sendError(res, 400, 400, "Bad request", error.message);
    }
    if (error instanceof BodyTooLargeError)
      return sendError(res, 413, 413, "Request too large", `an admin request body is at most ${MAX_ADMIN_BODY} bytes`);
    if (error instanceof BodyTimeoutError) return sendError(res, 408, 408, "Request Timeout", "the body did not arrive in time");
    if (error instanceof StoreUnavailableError) {
      return sendError(res, 503, API_ERRORS.STORE_UNAVAILABLE.code, API_ERRORS.STORE_UNAVAILABLE.title, error.message);
    }
    throw error;
  }
}

/** Sends `c` to the primary master and passes its answer on. */
async function command(res: ServerResponse, d: ControlRouteDeps, c: AdminCommand): Promise<void> {
  const master = await findPrimaryMaster(d.store);
  const { code, title } = API_ERRORS.NOT_PRIMARY_MASTER;
  if (!master)
    return sendError(res, 503, code, title, "no primary master holds the lease right now; try again shortly", { "retry-after": "1" });
  const reply = await d.transport.admin(master, c, 10_000);
  if (reply.ok) return sendJson(res, 200, { ok: true, ...(reply.version === undefined ? {} : { version: reply.version }) });
  const e = reply.error ?? { code: 500, message: "the primary master refused without a reason" };
  const status = e.code === code ? 503 : e.code >= 400 && e.code < 500 ? e.code : 500;
  sendError(res, status, e.code, e.code === code ? title : "Refused", e.message);
}

/** The request's JSON object body (at most 64 KiB); `{}` when it has none. */
async function jsonBody(req: IncomingMessage, d: ControlRouteDeps): Promise<Record<string, unknown>> {
  const text = (await readBody(req, MAX_ADMIN_BODY, d.bodyTimeoutMs)).toString("utf8");
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
