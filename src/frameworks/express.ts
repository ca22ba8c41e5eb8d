/**
 * multiconnect/express — mounts a webapp into an Express 5 application.
 *
 * ```ts
 * app.use(express.json({ verify: keepRawBody }));   // the host's own parser, kept on
 * app.use("/api", multiconnect(webapp));             // forwards /api/... with its full path
 * ```
 *
 * The coreapp receives the request's original path (`req.originalUrl`, prefix included) and the
 * body's original bytes. Express's parsers keep working for the host's own routes: express.raw()
 * and express.text() (UTF-8) leave bytes the webapp forwards as they are; express.json() and
 * express.urlencoded() keep only a parsed value, so pass {@link keepRawBody} as their `verify`
 * option, or mount the webapp before them. The admin API (`/v1/admin/…`, `/v1/settings`) reads its
 * JSON body from the same kept bytes. A request whose body was parsed with no bytes kept is
 * answered 500 at once, naming this fix; it never hangs.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Webapp } from "../nodes/webapp.js";

/**
 * The body parsers' `verify` hook that keeps the original bytes on `req.rawBody`, so the webapp
 * can forward them unchanged: `express.json({ verify: keepRawBody })`. Costs one reference to the
 * buffer the parser read anyway.
 */
export function keepRawBody(req: IncomingMessage, _res: ServerResponse, body: Buffer): void {
  (req as IncomingMessage & { rawBody?: Buffer }).rawBody = body;
}

/**
 * Express middleware that serves every request under its mount point through `webapp`: the
 * webapp's own `GET /v1/health` and `GET /metrics` (below the mount point), and forwarding of the
 * rest to the shard's primary coreapp. It answers every request itself (it never calls `next`).
 */
export function multiconnect(webapp: Webapp): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => void webapp.serve(req, res);
}
