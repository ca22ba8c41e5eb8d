import type { NodeTokens } from "./held-leases.js";
import { EventEmitter } from "node:events";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { API_ERRORS } from "../core/api-errors.js";
import { MulticonnectError, WebappRequestError } from "../core/errors.js";
import { isForwardToken, MAX_FORWARD_HEADERS, type ForwardResponse } from "../core/ports/transport.js";
import { ClusterDocumentFollower } from "../core/cluster-document-follower.js";
import { shardOf } from "../core/hash.js";
import type { ShardAssignment, ShardMapStore } from "../core/ports/shard-map.js";
import { InflightLimiter } from "../core/webapp/inflight.js";
import { Router, type RoutedRequest } from "../core/webapp/router.js";
import { failoverBoundMs } from "../core/timing.js";
import { readClusterStatus } from "./cluster-status.js";
import {
  every,
  prepareSchema,
  startFollowing,
  startSignal,
  withRetry,
  type MulticonnectNode,
  type NodeDeps,
  type NodeIdentity,
  type StartOptions,
} from "./deps.js";
import {
  alreadyRead,
  BodyAlreadyParsedError,
  bodyFrom,
  BodyTimeoutError,
  BodyTooLargeError,
  forwardableHeaders,
  originForm,
  responseHeaders,
  givenHeaders,
  HeadersTooLargeError,
  sendBodyError,
  sendError,
  sendJson,
  sendRefusal,
} from "./webapp-http.js";
import { ReservedRoutes } from "./webapp-admin.js";
import { addControlRoutes } from "./webapp-control.js";
import { NodeMetrics, type Readiness } from "./metrics.js";
import { addSwitchoverRoute, mountConsole } from "../console/routes.js";
import type { ConsoleFeed } from "../console/feed.js";
import { SDK_VERSION } from "../version.js";
import { serveOps } from "./ops-http.js";
import { ClientRateGate, createLimitedServer, DEFAULT_WEBAPP_LIMITS, type WebappLimits } from "./webapp-limits.js";

/**
 * How a webapp routes and reads requests (built from the config's `webapp` section). The
 * connection and rate limits (webapp-limits.ts) default to the config file's defaults (docs/configuration.md).
 */
export interface WebappOptions extends Partial<WebappLimits> {
  /** The cluster's shard count. */
  readonly shards: number;
  /** The request header whose value is the shard key (default `x-shard-key`). */
  readonly shardKeyHeader: string;
  /** Largest request body (default 1 MiB); larger gets 413 and never reaches a coreapp. */
  readonly maxBodyBytes: number;
  /** How long one request retries through a failover before it gets 503/1018 (default 5 s). */
  readonly retryWindowMs: number;
  /** Timeout of one forwarding attempt (default 10 s). */
  readonly forwardTimeoutMs: number;
  /**
   * How long a client may take to send the body (default 10 s); past it the webapp answers 408.
   * Too short cuts off slow uploads; too long lets stalled clients hold connections.
   */
  readonly bodyTimeoutMs: number;
  /**
   * Whether `start()` opens the webapp's own listener on `node.listen_host:node.port` (default
   * true; 9090). Hazard: that listener is a second entry point that skips the host service's
   * middleware (its authentication, rate limits, logging). An embedded webapp that should be
   * reached only through its host's routes sets this to false.
   */
  readonly listen: boolean;
  /**
   * Requests forwarded to one shard at once (default 256); past it the answer is 1016 System
   * overloaded at once. Too low refuses bursts a healthy primary could take; too high lets a slow
   * primary pile up memory and timeouts.
   */
  readonly maxInflightPerShard?: number;
  /**
   * Serve the live console at `/console` (default true; docs/operations.md). It is read-only for
   * anyone who can reach the webapp (topology, owners, history, settings; no secret); its actions
   * go through the admin API and need the admin token.
   */
  readonly console?: boolean;
  /** The admin API's bearer token (default none: admin paths answer 401). Never logged. */
  readonly adminToken?: string | undefined;
  /**
   * When embedded: derives the shard key from the request instead of the header. Returning
   * undefined or "" answers 400 (with more than one shard).
   */
  readonly shardKey?: (req: IncomingMessage) => string | undefined;
}

/** Events a webapp emits: `"map"` when the route of one or more shards moved to a newer epoch. */
export interface WebappEvents {
  /** The shards whose route moved to a newer epoch (a promotion the webapp learned of). */
  map: [changed: readonly ShardAssignment[]];
}

/** What a framework adapter tells {@link Webapp.serve} beyond the raw request. */
export interface ServeOptions {
  /**
   * The body, when the host framework already read it: the bytes as received (a string is sent as
   * UTF-8), for forwarding and for the admin API alike. Without it the webapp takes the body from
   * `req.rawBody`, a Buffer or string `req.body`, or reads the stream itself.
   */
  readonly body?: Uint8Array | string;
  /**
   * The request's path below the mount point, for matching the webapp's own routes (`/v1/health`,
   * `/metrics`); default `req.url` (which Express already makes mount-relative).
   */
  readonly localPath?: string;
}

/** A request sent from the webapp's own process with {@link Webapp.request}: what an HTTP request to its listener carries. */
export interface WebappRequest {
  /** The shard key; required with more than one shard. Not sent as a header (nor is the `shardKeyHeader` header read here). */
  readonly shardKey?: string;
  /** The HTTP method (default "GET"), upper-cased as node:http gives it to the listener. */
  readonly method?: string;
  /** The path and query the coreapp sees, e.g. "/v1/messages?to=1" (an absolute URL is reduced to them). */
  readonly path: string;
  /**
   * The request's headers, a plain object of strings: names are lower-cased (two differing only in
   * case are joined with ", ") and hop-by-hop ones (host, connection, content-length...) dropped;
   * at most `webapp.max_header_bytes` in all.
   */
  readonly headers?: Readonly<Record<string, string>>;
  /** The body, as bytes or as a string sent as UTF-8 (default empty); at most `maxBodyBytes`. */
  readonly body?: Uint8Array | string;
}

/** The shard owner's answer to {@link Webapp.request}. */
export interface WebappResponse {
  /** The HTTP status the application answered. */
  readonly status: number;
  /** Its headers (hop-by-hop ones dropped), as the listener would send them. */
  readonly headers: Readonly<Record<string, string>>;
  /** Its whole body. */
  readonly body: Buffer;
  /** The application's `handle()` threw: the request ran, the answer is the SDK's 500 (code 1500), and it is never sent again. */
  readonly applicationError: boolean;
}

const EMPTY_BODY = new Uint8Array(0);

/**
 * A webapp node: the API entry point. `handler` mounts into node:http or Express (see also
 * `multiconnect/express` and `multiconnect/fastify`); `start` also listens on its own port (9090
 * by default) unless `listen` is off. It answers the SDK's reserved paths itself (`GET /v1/health`,
 * `/metrics`, `/livez`, `/readyz`, the admin API; see webapp-admin.ts) and
 * forwards every other request, with its full original path, to the primary coreapp of the
 * request's shard.
 */
export class Webapp extends EventEmitter<WebappEvents> implements MulticonnectNode {
  readonly id: string;
  readonly name: string;
  private readonly router: Router;
  private readonly follower: ClusterDocumentFollower;
  private readonly inflight: InflightLimiter;
  private readonly limits: WebappLimits;
  private readonly rateGate: ClientRateGate;
  /** What a 400 "Missing shard key" over HTTP says: built once, not for every request. */
  private readonly noShardKey: string;
  /** The SDK's reserved paths (webapp-admin.ts): health, metrics, probes, the admin API. */
  readonly reserved: ReservedRoutes;
  /** This node's metrics (`metrics.registry` holds them). */
  readonly metrics: NodeMetrics;
  private routing = false;
  private readonly stop$ = new AbortController();
  private server: Server | null = null;
  private loop: Promise<void> | null = null;
  private readonly deps: NodeDeps;
  private readonly console: ConsoleFeed | null;

  constructor(
    deps: NodeDeps,
    private readonly identity: NodeIdentity,
    private readonly options: WebappOptions,
  ) {
    super();
    this.id = identity.id;
    this.name = identity.name;
    this.deps = { ...deps, log: deps.log.child({ node: identity.name }) };
    this.router = new Router(
      this.announcingMapChanges(deps.store.shardMap),
      deps.store.liveness,
      deps.transport,
      deps.clock,
      { ...options, inDoubtBoundMs: failoverBoundMs(deps.timing, 2, deps.store.capabilities) },
      this.deps.log,
    );
    this.follower = new ClusterDocumentFollower(
      deps.store.clusterDocument,
      deps.timing,
      deps.store.capabilities,
      deps.clock,
      this.deps.log,
    );
    this.inflight = new InflightLimiter(options.maxInflightPerShard ?? 256);
    this.limits = { ...DEFAULT_WEBAPP_LIMITS, ...definedOnly(options) };
    this.rateGate = new ClientRateGate(this.limits, deps.clock);
    this.noShardKey = options.shardKey
      ? "the request carries no shard key (the service's shardKey function found none)"
      : `send the shard key in the ${options.shardKeyHeader} header`;
    this.reserved = new ReservedRoutes(options.adminToken)
      .add("GET", "/v1/health", (_req, res) => this.health(res))
      .add("GET", "/metrics", (req, res, path) => void serveOps(req, res, this, path))
      .add("GET", "/livez", (req, res, path) => void serveOps(req, res, this, path))
      .add("GET", "/readyz", (req, res, path) => void serveOps(req, res, this, path));
    addControlRoutes(this.reserved, {
      store: deps.store,
      transport: deps.transport,
      timing: deps.timing,
      shards: options.shards,
      bodyTimeoutMs: options.bodyTimeoutMs,
    });
    addSwitchoverRoute(this.reserved, {
      store: deps.store,
      transport: deps.transport,
      timing: deps.timing,
      bodyTimeoutMs: options.bodyTimeoutMs,
    });
    this.console =
      options.console === false
        ? null
        : mountConsole(this.reserved, {
            store: deps.store,
            timing: deps.timing,
            servedBy: identity.name,
            actionsEnabled: options.adminToken !== undefined,
            log: this.deps.log,
            routes: {
              shards: options.shards,
              route: (shard) => this.router.route(shard),
              onChange: (listener) => {
                this.on("map", listener);
                return () => this.off("map", listener);
              },
            },
          });
    this.metrics = deps.metrics ?? NodeMetrics.detached(identity.name);
    this.metrics.attach({
      role: "webapp",
      readiness: () => this.readiness(),
      shards: () => Array.from({ length: options.shards }, (_, shard) => this.router.route(shard) ?? { shard, owner: null, epoch: 0 }),
    });
  }

  /**
   * What this node holds in the store: its liveness record only (a webapp takes no lease). For
   * whoever watches its process (docs/embedding.md, "Crash failover").
   */
  tokens(): NodeTokens {
    return { node: this.id, name: this.name, role: "webapp", leases: [] };
  }

  /**
   * Ready once the router has loaded the shard map (it can route) and until stop() begins. A store
   * outage does not make it unready: it keeps routing from the map it has.
   */
  readiness(): Readiness {
    const checks = { shardMapLoaded: this.routing, stopping: this.stop$.signal.aborted };
    return { ready: checks.shardMapLoaded && !checks.stopping, checks };
  }

  /** The largest request body this webapp forwards (`webapp.max_body_bytes`). */
  get maxBodyBytes(): number {
    return this.options.maxBodyBytes;
  }

  /** The port of the webapp's own listener (after `start`; the configured one when `listen` is off). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? this.identity.port;
  }

  /**
   * Loads the routes and starts the liveness beat (and the own listener unless `listen` is off).
   * Retries while the store is unreachable until `signal` aborts; then it rejects with the
   * signal's reason, and `stop()` releases what was opened.
   */
  async start(options: StartOptions = {}): Promise<void> {
    const { store, clock, timing, log } = this.deps;
    const signal = startSignal(this.stop$.signal, options.signal);
    await prepareSchema(store, clock, signal, log, "webapp");
    await startFollowing(this.follower, this.options.shards);
    await withRetry(clock, signal, log, "router start", () => this.router.start());
    signal.throwIfAborted();
    this.routing = true;
    let address = `${this.identity.externalHostname}:embedded`;
    if (this.options.listen) {
      const server = createLimitedServer(this.limits, this.handler, () => this.metrics.connectionRefused());
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(this.identity.port, this.identity.listenHost, resolve);
      });
      this.server = server;
      address = `${this.identity.externalHostname}:${this.identity.advertisePort ?? this.port}`;
    }
    let beats = 0;
    this.loop = every(
      clock,
      () => timing.dbHeartbeatIntervalMs,
      this.stop$.signal,
      log,
      "webapp liveness beat",
      () => store.liveness.beat({ id: this.id, name: this.name, role: "webapp", address, meta: { version: SDK_VERSION }, seq: ++beats }),
    );
  }

  /**
   * The request handler, for mounting into an existing HTTP server: `(req, res)` as node:http and
   * Express call it. It keeps the original URL under a mount prefix (Express's `req.originalUrl`).
   */
  readonly handler = (req: IncomingMessage, res: ServerResponse): void => {
    void this.serve(req, res);
  };

  /**
   * Serves one request, like `handler`, with what a framework adapter knows (a body its parser
   * already read, the mount-relative path). Never rejects: failures become HTTP answers.
   */
  async serve(req: IncomingMessage, res: ServerResponse, options: ServeOptions = {}): Promise<void> {
    if (!this.rateGate.admit(req, res)) return this.metrics.request("rate_limited");
    try {
      await this.handle(req, res, options);
    } catch (error) {
      this.deps.log.error({ err: error }, "request failed");
      this.metrics.request("error");
      if (!res.headersSent) sendError(res, 500, 500, "Internal Error", "the webapp failed to handle the request");
      else res.destroy();
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse, o: ServeOptions): Promise<void> {
    // Express strips its mount prefix from req.url and keeps the full URL in originalUrl: the
    // coreapp must see the path the client sent, whatever the mount point.
    const path = originForm((req as { originalUrl?: string }).originalUrl ?? req.url ?? "/");
    const url = originForm(req.url ?? "/");
    const local = o.localPath === undefined ? url : originForm(o.localPath);
    if (path === null || url === null || local === null) {
      this.metrics.request("bad_request");
      req.resume();
      return sendError(res, 400, 400, "Bad request target", "the request target must be a path of visible ASCII characters, at most 8 KiB");
    }
    // An absolute-form target is routed by its path from here on, reserved paths included.
    req.url = url;
    // The SDK's own paths answer below the mount point, or at the root when mounted there.
    if (this.reserved.claims(local) && (await this.reserved.handle(req, res, local, o.body))) return;
    if (path !== req.url && this.reserved.claims(path) && (await this.reserved.handle(req, res, path, o.body))) return;
    const key = this.options.shardKey ? this.options.shardKey(req) : (req.headers[this.options.shardKeyHeader] as string | undefined);
    const shard = this.shardFor(key, this.noShardKey);
    if (shard instanceof WebappRequestError) {
      req.resume();
      return sendRefusal(res, shard);
    }
    const body = await this.body(req, res, o);
    if (body === null) return;
    const headers = forwardableHeaders(req);
    if (Object.keys(headers).length > MAX_FORWARD_HEADERS) {
      this.metrics.request("too_large");
      return sendError(res, 431, 431, "Request header fields too large", `more than ${MAX_FORWARD_HEADERS} distinct headers`);
    }
    // A body parser inflated a compressed body: the bytes we forward are no longer encoded.
    if (o.body !== undefined || body.preRead) delete headers["content-encoding"];
    const result = await this.forwardCounted({ shard, method: req.method ?? "GET", path, headers, body: body.bytes });
    if (result instanceof WebappRequestError) return sendRefusal(res, result);
    const answerHeaders = responseHeaders(result.response.headers);
    answerHeaders["content-length"] = String(result.response.body.byteLength);
    res.writeHead(result.response.status, answerHeaders);
    res.end(result.response.body);
  }

  /**
   * Sends one request from this process to its shard's primary coreapp, as the listener forwards
   * an HTTP request but without the HTTP hop: for a Node service that calls the cluster itself, a
   * webapp embedded in the caller (docs/embedding.md, "Calling the cluster from your own code").
   * The same routing, retries through a failover, in-flight limit and metrics as HTTP requests;
   * the webapp's own routes (health, metrics, the admin API) and the per-address client rate limit
   * are HTTP only.
   *
   * Resolves with the owner's answer, the application's failure included (`applicationError`:
   * its `handle()` threw, the answer is the 500 with code 1500, and it is never sent again).
   * Rejects with {@link WebappRequestError} when there is no answer (its `status` and `apiCode` are
   * what the listener would answer: 400 a malformed request, 413 a body over `maxBodyBytes`, 431
   * headers over `webapp.max_header_bytes`, 503 1016 / 1018 nothing ran, 502 1502 it may have
   * run), and with a `not_started` error before `start()` or after `stop()`. The body is copied
   * both ways: neither side shares a buffer with the other, even in one process.
   */
  async request(r: WebappRequest): Promise<WebappResponse> {
    if (!this.routing || this.stop$.signal.aborted) {
      throw new MulticonnectError("not_started", "webapp: request() needs a started webapp (after start(), before stop())");
    }
    const refuse = (outcome: "bad_request" | "too_large", status: number, title: string, details: string): WebappRequestError => {
      this.metrics.request(outcome);
      return new WebappRequestError({ status, apiCode: status, title, details });
    };
    if (typeof r !== "object" || r === null) throw refuse("bad_request", 400, "Bad request", "the request must be an object");
    const path = typeof r.path === "string" ? originForm(r.path) : null;
    if (path === null) {
      throw refuse("bad_request", 400, "Bad request target", "the path must start with / and be visible ASCII characters, at most 8 KiB");
    }
    const method = r.method ?? "GET";
    if (typeof method !== "string" || !isForwardToken(method, 32)) {
      throw refuse("bad_request", 400, "Bad method", "the method must be an HTTP token of at most 32 characters");
    }
    let headers: Record<string, string>;
    try {
      headers = givenHeaders(r.headers ?? {}, this.limits.maxHeaderBytes);
    } catch (error) {
      if (error instanceof HeadersTooLargeError) throw refuse("too_large", 431, "Request header fields too large", error.message);
      throw refuse("bad_request", 400, "Bad header", (error as Error).message);
    }
    const given: unknown = r.body ?? EMPTY_BODY;
    if (typeof given !== "string" && !(given instanceof Uint8Array)) {
      throw refuse("bad_request", 400, "Bad body", "the body must be a string or a Uint8Array");
    }
    // A copy: in-process, the owner's handle() gets this very object, and the caller may reuse its buffer.
    const body = Buffer.from(given as string | Uint8Array);
    if (body.byteLength > this.options.maxBodyBytes) {
      throw refuse("too_large", 413, "Request too large", `the body exceeds ${this.options.maxBodyBytes} bytes`);
    }
    const shard = this.shardFor(r.shardKey, "pass the request's shard key as shardKey");
    if (shard instanceof WebappRequestError) throw shard;
    const result = await this.forwardCounted({ shard, method: method.toUpperCase(), path, headers, body });
    if (result instanceof WebappRequestError) throw result;
    const { status, headers: answered, body: bytes } = result.response;
    // A copy: in-process, the answer's body is the very buffer the application returned (perhaps a cached one).
    return { status, headers: responseHeaders(answered), body: Buffer.from(bytes), applicationError: result.applicationError };
  }

  /** The shard of a request's shard key; without a key (and with more than one shard), a 400 refusal whose details are `noKey`. */
  private shardFor(key: string | undefined, noKey: string): number | WebappRequestError {
    if (this.options.shards === 1) return 0;
    if (typeof key === "string" && key !== "") return shardOf(key, this.options.shards);
    this.metrics.request("bad_request");
    return new WebappRequestError({ status: 400, apiCode: 400, title: "Missing shard key", details: noKey });
  }

  /**
   * Forwards a request to its shard's owner within the in-flight limit and counts the outcome: the
   * part of serving a request that the listener and {@link request} share. A refusal comes back as a
   * value, for the listener to answer and `request()` to throw.
   */
  private async forwardCounted(req: RoutedRequest): Promise<{ response: ForwardResponse; applicationError: boolean } | WebappRequestError> {
    const release = this.inflight.tryAcquire(req.shard);
    if (!release) {
      this.metrics.request("overloaded");
      const { code, title } = API_ERRORS.SYSTEM_OVERLOADED;
      const details = `${this.inflight.maxPerShard} requests to shard ${req.shard} are already in flight on this webapp`;
      return new WebappRequestError({ status: 503, apiCode: code, title, details, retryable: true });
    }
    const started = performance.now();
    const result = await this.router.forward(req).finally(release);
    const seconds = (performance.now() - started) / 1000;
    if (!result.ok && result.inDoubt) {
      this.metrics.request("in_doubt");
      this.metrics.forwarded("in_doubt", seconds, result.attempts);
      const { code, title } = API_ERRORS.REQUEST_IN_DOUBT;
      return new WebappRequestError({ status: 502, apiCode: code, title, details: result.reason, mayHaveRun: true });
    }
    if (!result.ok) {
      this.metrics.request("no_primary");
      this.metrics.forwarded("no_primary", seconds, result.attempts);
      const { code, title } = API_ERRORS.NOT_PRIMARY_COREAPP;
      return new WebappRequestError({ status: 503, apiCode: code, title, details: result.reason, retryable: true });
    }
    // The application's handle() threw: it ran once, and is answered as it is, never sent again.
    const outcome = result.failed ? "app_error" : "ok";
    this.metrics.request(outcome);
    this.metrics.forwarded(outcome, seconds, result.attempts);
    return { response: result.response, applicationError: result.failed };
  }

  /** The request body, or null when an error answer was already sent. */
  private async body(req: IncomingMessage, res: ServerResponse, o: ServeOptions): Promise<{ bytes: Buffer; preRead: boolean } | null> {
    const limit = this.options.maxBodyBytes;
    try {
      const given = alreadyRead(req, o.body);
      return { bytes: await bodyFrom(req, given, limit, this.options.bodyTimeoutMs), preRead: given !== undefined };
    } catch (error) {
      if (error instanceof BodyTooLargeError) this.metrics.request("too_large");
      else if (error instanceof BodyTimeoutError) this.metrics.request("body_timeout");
      else if (error instanceof BodyAlreadyParsedError) {
        this.metrics.request("error");
        this.deps.log.error({ path: req.url }, `webapp: ${error.message}; cannot forward the original bytes`);
      }
      if (!sendBodyError(res, error, limit, this.options.bodyTimeoutMs)) throw error;
      return null;
    }
  }

  private async health(res: ServerResponse): Promise<void> {
    try {
      const status = await readClusterStatus(this.deps.store, this.deps.timing, this.options.shards);
      sendJson(res, 200, status);
    } catch (error) {
      sendError(res, 503, API_ERRORS.STORE_UNAVAILABLE.code, API_ERRORS.STORE_UNAVAILABLE.title, (error as Error).message);
    }
  }

  /** The shard map as the router sees it, emitting `"map"` for the shards whose route moved on. */
  private announcingMapChanges(source: ShardMapStore): ShardMapStore {
    return {
      read: () => source.read(),
      assign: (...args) => source.assign(...args),
      watch: (onChange, onError) =>
        source.watch((changed) => {
          const before = changed.map((a) => this.router.route(a.shard)?.epoch ?? -1);
          onChange(changed);
          const moved = changed.filter((a, i) => (this.router.route(a.shard)?.epoch ?? -1) > before[i]!);
          if (moved.length > 0) this.emit("map", moved);
        }, onError),
    };
  }

  /** Leaves gracefully: stops the liveness beat, closes the own listener, removes its record. */
  async stop(): Promise<void> {
    if (this.stop$.signal.aborted) return;
    this.stop$.abort();
    this.metrics.detach();
    this.console?.close();
    await this.loop;
    await this.follower.close();
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

  /** `await using webapp = ...` stops it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** The limits `o` sets (an explicit `undefined` keeps the default). */
function definedOnly(o: Partial<WebappLimits>): Partial<WebappLimits> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<WebappLimits>;
}
