import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { shardOf } from "../core/hash.js";
import { Router } from "../core/webapp/router.js";
import { readClusterStatus } from "./cluster-status.js";
import { every, withRetry, type MulticonnectNode, type NodeDeps, type NodeIdentity } from "./deps.js";
import { NodeMetrics, type Readiness } from "./metrics.js";
import { serveOps } from "./ops-http.js";
import { BodyTooLargeError, forwardableHeaders, readBody, responseHeaders, sendError, sendJson } from "./webapp-http.js";

export interface WebappOptions {
  readonly shards: number;
  /** The request header whose value is the shard key (default `x-shard-key`). */
  readonly shardKeyHeader: string;
  readonly maxBodyBytes: number;
  readonly retryWindowMs: number;
  readonly forwardTimeoutMs: number;
  /** When embedded: derive the shard key from the request instead of the header. */
  readonly shardKey?: (req: IncomingMessage) => string | undefined;
}

/**
 * A webapp node: the API entry point. `handler` mounts into node:http, Express or Fastify; `start`
 * also listens on its own port (9090 by default). It serves `GET /v1/health`, `GET /metrics`,
 * `GET /livez` and `GET /readyz`, and forwards every other request to the primary coreapp of the
 * request's shard.
 */
export class Webapp implements MulticonnectNode {
  readonly id: string;
  readonly name: string;
  private readonly router: Router;
  /** This node's metrics (`metrics.registry` holds them). */
  readonly metrics: NodeMetrics;
  private routing = false;
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
    this.metrics = deps.metrics ?? NodeMetrics.detached(identity.name);
    this.metrics.attach({
      role: "webapp",
      readiness: () => this.readiness(),
      shards: () => Array.from({ length: options.shards }, (_, shard) => this.router.route(shard) ?? { shard, owner: null, epoch: 0 }),
    });
  }

  /**
   * Ready once the router has loaded the shard map (it can route) and until stop() begins. A store
   * outage does not make it unready: it keeps routing from the map it has.
   */
  readiness(): Readiness {
    const checks = { shardMapLoaded: this.routing, stopping: this.stop$.signal.aborted };
    return { ready: checks.shardMapLoaded && !checks.stopping, checks };
  }

  /** The port the webapp listens on (after `start`). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? this.identity.port;
  }

  async start(): Promise<void> {
    const { store, clock, timing, log } = this.deps;
    const signal = this.stop$.signal;
    await withRetry(clock, signal, log, "schema migration", () => store.migrate());
    await withRetry(clock, signal, log, "router start", () => this.router.start());
    this.routing = true;
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
    if (req.method === "GET" && path === "/v1/health") return this.health(res);
    if (serveOps(req, res, this)) return;
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
    const started = performance.now();
    const result = await this.router.forward({ shard, method: req.method ?? "GET", path, headers: forwardableHeaders(req), body });
    const seconds = (performance.now() - started) / 1000;
    if (!result.ok) {
      this.metrics.request("no_primary");
      this.metrics.forwarded("no_primary", seconds, result.attempts);
      return sendError(res, 503, 1018, "Not Primary Coreapp", result.reason, { "retry-after": "1" });
    }
    this.metrics.request("ok");
    this.metrics.forwarded("ok", seconds, result.attempts);
    const { response } = result;
    res.writeHead(response.status, { ...responseHeaders(response.headers), "content-length": response.body.byteLength });
    res.end(response.body);
  }

  private async health(res: ServerResponse): Promise<void> {
    try {
      const status = await readClusterStatus(this.deps.store, this.deps.timing, this.options.shards);
      sendJson(res, 200, status);
    } catch (error) {
      sendError(res, 503, 1016, "Store unavailable", (error as Error).message);
    }
  }

  async stop(): Promise<void> {
    if (this.stop$.signal.aborted) return;
    this.stop$.abort();
    this.metrics.detach();
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
