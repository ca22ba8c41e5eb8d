import { readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { isNodeId } from "../adapters/transport/messages.js";
import { API_ERRORS } from "../core/api-errors.js";
import { StoreUnavailableError } from "../core/errors.js";
import type { Store } from "../core/ports/store.js";
import type { Transport } from "../core/ports/transport.js";
import type { Timing } from "../core/timing.js";
import { findPrimaryMaster } from "../nodes/primary-master.js";
import type { ReservedRoutes } from "../nodes/webapp-admin.js";
import { sendMasterFailure } from "../nodes/webapp-control.js";
import { sendBodyError, sendError, sendJson } from "../nodes/webapp-http.js";
import { ConsoleFeed, type ConsoleFeedOptions } from "./feed.js";
import { CONSOLE_CSS, consolePage } from "./page.js";

/** The console's path below the webapp's mount point. */
export const CONSOLE_PATH = "/console";

/**
 * Headers of every console asset. The page loads nothing but its own script and style from the
 * same origin (no CDN, nothing fetched at run time), so the content security policy can say so.
 */
const ASSET_HEADERS = {
  "cache-control": "no-cache",
  "x-content-type-options": "nosniff",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
  "referrer-policy": "no-referrer",
};

/**
 * Mounts the live console on a webapp's (or `multiconnect console`'s) reserved routes and returns
 * its feed (close it on stop):
 *
 * - `GET /console` — the page; `GET /console/app.js`, `/console/app.css` — its script and style,
 *   shipped in the package (built by `npm run build` into dist/console/www);
 * - `GET /console/events` — the live feed as server-sent events (see {@link ConsoleFeed});
 * - `GET /console/state` — the same state once, as JSON.
 *
 * These are open (read-only: topology, owners, history, settings — no secret); the page's actions
 * call the admin API (`/v1/admin/switchover`, `/pause`, `/resume`) with the admin token the
 * operator types in, and the admin API checks it as for any other client.
 */
export function mountConsole(routes: ReservedRoutes, options: ConsoleFeedOptions): ConsoleFeed {
  const feed = new ConsoleFeed(options);
  const page = consolePage();
  routes
    .add("GET", CONSOLE_PATH, (_req, res) => asset(res, "text/html; charset=utf-8", page))
    // A trailing slash would break the page's relative URLs: send it to the canonical path.
    .add("GET", `${CONSOLE_PATH}/`, (_req, res) => {
      res.writeHead(301, { location: "../console" });
      res.end();
    })
    .add("GET", `${CONSOLE_PATH}/app.css`, (_req, res) => asset(res, "text/css; charset=utf-8", CONSOLE_CSS))
    .add("GET", `${CONSOLE_PATH}/app.js`, (_req, res) => {
      const script = clientScript();
      if (script === null) {
        return sendError(res, 500, 500, "Console not built", "the console's script is missing from dist/console/www: run npm run build");
      }
      asset(res, "text/javascript; charset=utf-8", script);
    })
    .add("GET", `${CONSOLE_PATH}/events`, (req, res) => feed.subscribe(req, res))
    .add("GET", `${CONSOLE_PATH}/state`, async (_req, res) => sendJson(res, 200, await feed.state()));
  return feed;
}

function asset(res: ServerResponse, type: string, body: string): void {
  res.writeHead(200, { "content-type": type, "content-length": Buffer.byteLength(body), ...ASSET_HEADERS });
  res.end(body);
}

let script: string | null | undefined;

/**
 * The page's script, compiled by `npm run build` from src/console/client/app.ts to
 * dist/console/www/client/app.js, read once: beside this module in dist/, or, when this code runs
 * from src/ (tests, tsx), from the build in dist/. Null without a build: the page then answers 500
 * for its script, saying so.
 */
function clientScript(): string | null {
  if (script !== undefined) return script;
  script = null;
  for (const candidate of ["./www/client/app.js", "../../dist/console/www/client/app.js"]) {
    try {
      script = readFileSync(new URL(candidate, import.meta.url), "utf8");
      break;
    } catch {
      // not here; try the next place
    }
  }
  return script;
}

/** The largest switchover body: `{"shard": …, "to": …, "force": …}`. */
const SWITCHOVER_BODY_LIMIT = 4096;

/** What the switchover route needs. */
export interface SwitchoverRouteDeps {
  /** The cluster's store (to find the primary master). */
  readonly store: Store;
  /** A transport to send the command with. */
  readonly transport: Transport;
  /** The node's timing: the command may take up to `unhealthy_interval` + lease TTL. */
  readonly timing: Timing;
  /** Largest time a client may take to send the body. */
  readonly bodyTimeoutMs: number;
}

/**
 * `POST /v1/admin/switchover {"shard": N, "to": "<name>", "force": false}` (admin token): what
 * `multiconnect switchover` does — the primary master moves the shard, fencing the old owner at a
 * new epoch, and answers once the new owner serves. 200 `{ok, shard, from, to, epoch, gap_ms}`;
 * 400 bad input, 404/409 no such or no eligible standby, 503 (1017) no primary master, 504 (1502)
 * no answer in time: the switchover may have happened (see `sendMasterFailure`).
 */
export function addSwitchoverRoute(routes: ReservedRoutes, d: SwitchoverRouteDeps): void {
  routes.add("POST", "/v1/admin/switchover", async (_req, res, _path, body) => {
    let command: { shard: number; to?: string; force?: boolean };
    try {
      command = parseSwitchover(await body(SWITCHOVER_BODY_LIMIT, d.bodyTimeoutMs));
    } catch (error) {
      if (sendBodyError(res, error, SWITCHOVER_BODY_LIMIT, d.bodyTimeoutMs)) return;
      return sendError(res, 400, 400, "Bad request", (error as Error).message);
    }
    const { code, title } = API_ERRORS.NOT_PRIMARY_MASTER;
    try {
      const master = await findPrimaryMaster(d.store);
      if (!master)
        return sendError(res, 503, code, title, "no primary master holds the lease right now; try again shortly", { "retry-after": "1" });
      const reply = await d.transport.switchover(master, command, d.timing.unhealthyIntervalMs + d.timing.leaseTtlMs + 5000);
      if (reply.ok) {
        return sendJson(res, 200, {
          ok: true,
          shard: reply.shard,
          from: reply.from,
          to: reply.to,
          epoch: reply.epoch,
          gap_ms: reply.gapMs === undefined ? null : Math.round(reply.gapMs * 10) / 10,
        });
      }
      const e = reply.error ?? { code: 500, message: "the primary master refused without a reason" };
      const status = e.code === code ? 503 : e.code >= 400 && e.code < 600 ? e.code : 500;
      sendError(res, status, e.code, e.code === code ? title : "Refused", e.message);
    } catch (error) {
      if (error instanceof StoreUnavailableError) {
        return sendError(res, 503, API_ERRORS.STORE_UNAVAILABLE.code, API_ERRORS.STORE_UNAVAILABLE.title, error.message);
      }
      if (sendMasterFailure(res, error, "GET /v1/health (the shard's owner and epoch) or GET /v1/history")) return;
      sendError(res, 502, 502, "Switchover failed", `the primary master could not be asked: ${(error as Error).message}`);
    }
  });
}

/** Reads `{"shard": N, "to"?: "name", "force"?: bool}`; throws an Error naming the problem. */
export function parseSwitchover(body: Buffer): { shard: number; to?: string; force?: boolean } {
  let v: unknown;
  try {
    v = JSON.parse(body.toString("utf8"));
  } catch {
    throw new Error('the body is not JSON; send {"shard": 0, "to": "<coreapp name>"}');
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("the body must be a JSON object");
  const o = v as Record<string, unknown>;
  if (typeof o["shard"] !== "number" || !Number.isSafeInteger(o["shard"]) || o["shard"] < 0) {
    throw new Error("shard must be a non-negative whole number");
  }
  // The primary master's own check of a node name (its transport refuses anything else).
  if (o["to"] !== undefined && o["to"] !== null && !isNodeId(o["to"])) {
    throw new Error("to must be a coreapp's name or id, 1 to 200 visible ASCII characters (or absent: any healthy standby)");
  }
  if (o["force"] !== undefined && typeof o["force"] !== "boolean") throw new Error("force must be true or false");
  return {
    shard: o["shard"],
    ...(typeof o["to"] === "string" ? { to: o["to"] } : {}),
    ...(o["force"] === true ? { force: true } : {}),
  };
}
