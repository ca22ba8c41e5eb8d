import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { API_ERRORS } from "../core/api-errors.js";
import { requestBody, sendError } from "./webapp-http.js";

/**
 * The paths a webapp keeps for the SDK. A request under one of them is answered here and never
 * forwarded to the application: a known route runs its handler, anything else is 404 — so an
 * operator's call to a feature this version lacks fails visibly instead of reaching the app.
 * A prefix covers the path itself and everything below it ("/v1/admin" and "/v1/admin/…").
 */
export const RESERVED_PREFIXES = [
  "/v1/health",
  "/metrics",
  "/livez",
  "/readyz",
  "/v1/settings",
  "/v1/history",
  "/v1/admin",
  "/v1/support",
  "/console",
  "/_mc",
] as const;

/**
 * Reserved paths anyone may call (probes, scrapers, the read-only console); every other reserved
 * path needs the admin token. The console's actions go through `/v1/admin`.
 */
const OPEN_PREFIXES = ["/v1/health", "/metrics", "/livez", "/readyz", "/console"];

/**
 * Reads the body of the request a reserved route answers: at most `limit` bytes within `timeoutMs`
 * (see `requestBody` in webapp-http.ts). It returns the bytes a framework adapter or a body parser
 * already read, else reads the stream; a route must read its body through it, never from `req`,
 * whose stream has ended when the webapp is mounted in Fastify or behind express.json().
 */
export type BodyReader = (limit: number, timeoutMs: number) => Promise<Buffer>;

/** Answers one reserved request. `path` is without the query string; `body` reads the request's body. */
export type ReservedHandler = (req: IncomingMessage, res: ServerResponse, path: string, body: BodyReader) => Promise<void> | void;

/**
 * The webapp's reserved-path routing. Adding a route is one line:
 * `routes.add("PATCH", "/v1/settings/application", handler)`. A route under an open prefix is
 * public; any other needs `Authorization: Bearer <admin_token>` (401 without it, 403 with a wrong
 * one), checked before the route is looked up so that nothing runs, and nothing about which routes
 * exist is told, without the token.
 */
export class ReservedRoutes {
  private readonly routes = new Map<string, ReservedHandler>();
  private readonly tokenDigest: Buffer | null;

  /** `adminToken` absent: the admin API is closed (every admin call is 401). */
  constructor(adminToken: string | undefined) {
    this.tokenDigest = adminToken === undefined ? null : digest(adminToken);
  }

  /**
   * True when `url` (a request target) lies under a reserved prefix, so `handle` would answer it.
   * Synchronous: the webapp asks it for every request, and most are the application's.
   */
  claims(url: string): boolean {
    return isReserved(pathOf(url));
  }

  /** Registers `handler` for `method` on the exact `path`, which must lie under a reserved prefix. */
  add(method: string, path: string, handler: ReservedHandler): this {
    if (!isReserved(path)) throw new Error(`webapp-admin: ${path} is not under a reserved prefix`);
    this.routes.set(`${method.toUpperCase()} ${path}`, handler);
    return this;
  }

  /**
   * Answers `req` if its path (`url`: default `req.url`; a mount-relative one when embedded) is
   * reserved and returns true; returns false (having touched nothing) for a path the application
   * should get. `given`: the body, when the host framework already read it (`ServeOptions.body`).
   */
  async handle(req: IncomingMessage, res: ServerResponse, url = req.url ?? "/", given?: Uint8Array | string): Promise<boolean> {
    if (!this.claims(url)) return false;
    const path = pathOf(url);
    if (!OPEN_PREFIXES.some((p) => under(path, p)) && !this.authorized(req, res)) {
      req.resume();
      return true;
    }
    const handler = this.routes.get(`${req.method ?? "GET"} ${path}`);
    if (!handler) {
      req.resume();
      sendError(
        res,
        404,
        API_ERRORS.NOT_FOUND.code,
        API_ERRORS.NOT_FOUND.title,
        `${req.method} ${path} is reserved by multiconnect and not served by this version`,
      );
      return true;
    }
    await handler(req, res, path, (limit, timeoutMs) => requestBody(req, limit, timeoutMs, given));
    return true;
  }

  /** Checks the bearer token in constant time; answers 401/403 itself when it fails. */
  private authorized(req: IncomingMessage, res: ServerResponse): boolean {
    const { code, title } = API_ERRORS.ACCESS_DENIED;
    if (this.tokenDigest === null) {
      sendError(res, 401, code, title, "the admin API is not enabled on this cluster (set admin_token in the config)");
      return false;
    }
    const presented = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1];
    if (presented === undefined) {
      sendError(res, 401, code, title, "send the admin token as Authorization: Bearer <token>", {
        "www-authenticate": 'Bearer realm="multiconnect"',
      });
      return false;
    }
    // Digests of equal length, so neither the comparison's time nor an early length check tells
    // how much of the token was right. The token itself is never logged or echoed.
    if (!timingSafeEqual(digest(presented), this.tokenDigest)) {
      sendError(res, 403, code, title, "the admin token is wrong");
      return false;
    }
    return true;
  }
}

/** True when `path` lies under one of the reserved prefixes. */
export function isReserved(path: string): boolean {
  return RESERVED_PREFIXES.some((p) => under(path, p));
}

/** The path of a request target, without its query. */
function pathOf(url: string): string {
  const q = url.indexOf("?");
  return q === -1 ? url : url.slice(0, q);
}

function under(path: string, prefix: string): boolean {
  return path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 0x2f); // "/"
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}
