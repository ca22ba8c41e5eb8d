import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { API_ERRORS } from "../core/api-errors.js";
import { StoreUnavailableError } from "../core/errors.js";
import { ForgetRefusedError, Membership } from "../core/master/membership.js";
import { shardOf } from "../core/hash.js";
import { InflightLimiter } from "../core/webapp/inflight.js";
import { Router } from "../core/webapp/router.js";
import { readClusterStatus } from "./cluster-status.js";
import { every, prepareSchema, withRetry, type MulticonnectNode, type NodeDeps, type NodeIdentity } from "./deps.js";
import { BodyTooLargeError, forwardableHeaders, readBody, responseHeaders, sendError, sendJson } from "./webapp-http.js";
import { ReservedRoutes } from "./webapp-admin.js";
import { WebappMetrics } from "./webapp-metrics.js";

export interface WebappOptions {
  readonly shards: number;
  /** The request header whose value is the shard key (default `x-shard-key`). */
  readonly shardKeyHeader: string;
  readonly maxBodyBytes: number;
  readonly retryWindowMs: number;
  readonly forwardTimeoutMs: number;
  /**
   * Requests forwarded to one shard at once (default 256); past it the answer is 1016 System
   * overloaded at once. Too low refuses bursts a healthy primary could take; too high lets a slow
   * primary pile up memory and timeouts.
   */
  readonly maxInflightPerShard?: number;
  /** The admin API's bearer token (default none: admin paths answer 401). Never logged. */
  readonly adminToken?: string | undefined;
  /** When embedded: derive the shard key from the request instead of the header. */
  readonly shardKey?: (req: IncomingMessage) => string | undefined;
}

/**
 * A webapp node: the API entry point. `handler` mounts into node:http, Express or Fastify; `start`
 * also listens on its own port (9090 by default). It answers the SDK's reserved paths itself
 * (`GET /v1/health`, `GET /metrics`, the admin API; see webapp-admin.ts) and forwards every other
 * request to the primary coreapp of the request's shard.
 */
export class Webapp implements MulticonnectNode {
  readonly id: string;
  readonly name: string;
  private readonly router: Router;
  private readonly metrics = new WebappMetrics();
  private readonly inflight: InflightLimiter;
  /** The reserved paths; other modules register their routes here (`reserved.add(...)`). */
  readonly reserved: ReservedRoutes;
  private readonly stop$ = new AbortController();
  private server: Server | null = null;
  private loop: Promise<void> | null = null;
  private readonly deps: NodeDeps;

  constructor(
    deps: NodeDeps,
    private readonly identity: NodeIdentity,
    private readonly options: WebappOptions,
  ) {
    this.id = identity.id;
    this.name = identity.name;
    this.deps = { ...deps, log: deps.log.child({ node: identity.name }) };
    this.router = new Router(deps.store.shardMap, deps.store.liveness, deps.transport, deps.clock, options, this.deps.log);
    this.inflight = new InflightLimiter(options.maxInflightPerShard ?? 256);
    this.reserved = new ReservedRoutes(options.adminToken)
      .add("GET", "/v1/health", (_req, res) => this.health(res))
      .add("GET", "/metrics", (_req, res) => this.renderMetrics(res))
      .add("GET", "/livez", (_req, res) => sendJson(res, 200, { status: "ok" }))
      .add("GET", "/readyz", (_req, res) => this.ready(res))
      .add("POST", "/v1/admin/forget", (req, res) => this.forget(req, res));
  }

  /** The port the webapp listens on (after `start`). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? this.identity.port;
  }

  async start(): Promise<void> {
    const { store, clock, timing, log } = this.deps;
    const signal = this.stop$.signal;
    await prepareSchema(store, clock, signal, log, "webapp");
    await withRetry(clock, signal, log, "router start", () => this.router.start());
    const server = createServer({ keepAliveTimeout: 65_000 }, this.handler);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.identity.port, this.identity.listenHost, resolve);
    });
    this.server = server;
    const address = `${this.identity.externalHostname}:${this.identity.advertisePort ?? this.port}`;
    this.loop = every(clock, timing.dbHeartbeatIntervalMs, signal, log, "webapp liveness beat", () =>
      store.liveness.beat({ id: this.id, name: this.name, role: "webapp", address, meta: {} }),
    );
  }

  /** The request handler, for mounting into an existing HTTP server. */
  readonly handler = (req: IncomingMessage, res: ServerResponse): void => {
    void this.handle(req, res).catch((error: unknown) => {
      this.deps.log.error({ err: String(error) }, "request failed");
      this.metrics.request("error");
      if (!res.headersSent) sendError(res, 500, 500, "Internal Error", "the webapp failed to handle the request");
      else res.destroy();
    });
  };

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? "/";
    if (await this.reserved.handle(req, res)) return;
    const key = this.options.shardKey ? this.options.shardKey(req) : (req.headers[this.options.shardKeyHeader] as string | undefined);
    if (this.options.shards > 1 && (key === undefined || key === "")) {
      this.metrics.request("bad_request");
      req.resume();
      return sendError(res, 400, 400, "Missing shard key", `send the shard key in the ${this.options.shardKeyHeader} header`);
    }
    let body: Buffer;
    try {
      body = await readBody(req, this.options.maxBodyBytes);
    } catch (error) {
      if (!(error instanceof BodyTooLargeError)) throw error;
      this.metrics.request("too_large");
      return sendError(res, 413, 413, "Request too large", `the body exceeds ${this.options.maxBodyBytes} bytes`, { connection: "close" });
    }
    const shard = this.options.shards > 1 ? shardOf(key!, this.options.shards) : 0;
    const release = this.inflight.tryAcquire(shard);
    if (!release) {
      this.metrics.request("overloaded");
      const { code, title } = API_ERRORS.SYSTEM_OVERLOADED;
      return sendError(res, 503, code, title, `${this.inflight.maxPerShard} requests to shard ${shard} are already in flight on this webapp`, { "retry-after": "1" });
    }
    const started = performance.now();
    const result = await this.router
      .forward({ shard, method: req.method ?? "GET", path, headers: forwardableHeaders(req), body })
      .finally(release);
    if (!result.ok) {
      this.metrics.request("no_primary");
      const { code, title } = API_ERRORS.NOT_PRIMARY_COREAPP;
      return sendError(res, 503, code, title, result.reason, { "retry-after": "1" });
    }
    this.metrics.request("ok");
    this.metrics.forwarded((performance.now() - started) / 1000, result.attempts);
    const { response } = result;
    res.writeHead(response.status, { ...responseHeaders(response.headers), "content-length": response.body.byteLength });
    res.end(response.body);
  }

  private async health(res: ServerResponse): Promise<void> {
    try {
      const status = await readClusterStatus(this.deps.store, this.deps.timing, this.options.shards);
      sendJson(res, 200, status);
    } catch (error) {
      sendError(res, 503, API_ERRORS.STORE_UNAVAILABLE.code, API_ERRORS.STORE_UNAVAILABLE.title, (error as Error).message);
    }
  }

  private renderMetrics(res: ServerResponse): void {
    const body = this.metrics.render(
      Array.from({ length: this.options.shards }, (_, shard) => this.router.route(shard) ?? { shard, epoch: 0, owner: null }),
    );
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(body);
  }

  /** `POST /v1/admin/forget {"node": "<id or name>", "force": false}`: what `multiconnect forget` does. */
  private async forget(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let input: { node?: unknown; force?: unknown };
    try {
      input = JSON.parse((await readBody(req, 4096)).toString("utf8")) as typeof input;
    } catch {
      return sendError(res, 400, 400, "Bad request", 'send {"node": "<id or name>", "force": false}');
    }
    if (typeof input.node !== "string" || (input.force !== undefined && typeof input.force !== "boolean")) {
      return sendError(res, 400, 400, "Bad request", 'send {"node": "<id or name>", "force": false}');
    }
    const { store, timing, log } = this.deps;
    try {
      const removed = await new Membership(store.liveness, store.shardMap, log, timing.dbUnhealthyIntervalMs).forget(input.node, input.force === true);
      sendJson(res, 200, { removed: removed.id, role: removed.role, name: removed.name });
    } catch (error) {
      if (error instanceof ForgetRefusedError) return sendError(res, 409, 409, "Refused", error.message);
      if (error instanceof StoreUnavailableError) {
        return sendError(res, 503, API_ERRORS.STORE_UNAVAILABLE.code, API_ERRORS.STORE_UNAVAILABLE.title, error.message);
      }
      throw error;
    }
  }

  /** Ready when this webapp knows an owner for every shard (it can route every request). */
  private ready(res: ServerResponse): void {
    const unrouted = Array.from({ length: this.options.shards }, (_, shard) => shard).filter((s) => !this.router.route(s)?.owner);
    if (unrouted.length === 0) sendJson(res, 200, { status: "ready" });
    else sendJson(res, 503, { status: "not_ready", shards_without_owner: unrouted });
  }

  async stop(): Promise<void> {
    if (this.stop$.signal.aborted) return;
    this.stop$.abort();
    await this.loop;
    await this.router.close();
    if (this.server) {
      const server = this.server;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    await this.deps.store.liveness.remove(this.id).catch(() => {});
  }
}
