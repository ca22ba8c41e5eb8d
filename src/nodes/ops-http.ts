import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ConfigError } from "../core/errors.js";
import type { Logger } from "../core/ports/logger.js";
import type { NodeMetrics, Readiness } from "./metrics.js";
import { createLimitedServer, type WebappLimits } from "./webapp-limits.js";

/**
 * The operations listener's limits: its clients are a scraper and a few probes sending bodiless
 * GETs, so a handful of connections and short timeouts are plenty, and a client that connects to
 * it in a loop or trickles its headers cannot starve the node (it shares the process).
 */
const OPS_LIMITS: WebappLimits = {
  maxConnections: 64,
  maxHeaderBytes: 16 * 1024,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 65_000,
  clientRateLimit: 0,
  clientRateBurst: 1,
};

/** The operations paths every node answers (a webapp on its API port too). */
export const OPS_PATHS = ["/metrics", "/livez", "/readyz"] as const;

/** What the operations endpoint reads: the node's metrics and its readiness. */
export interface OpsSource {
  readonly metrics: NodeMetrics;
  readiness(): Readiness;
}

/**
 * Answers `GET /metrics` (Prometheus text), `GET /livez` and `GET /readyz`; returns false for any
 * other request, which the caller then handles. `url` is the path to judge (default `req.url`; a
 * mount-relative one when the webapp is embedded). `/livez` touches nothing but the event loop: a
 * store outage is a reason not to route to a node, never a reason to restart it (a restart cannot
 * fix the store and would drop every node at once). `/readyz` answers 200 or 503 with the checks
 * that decided it; it makes no store call either (the checks are the node's own state).
 */
export function serveOps(req: IncomingMessage, res: ServerResponse, source: OpsSource, url = req.url ?? "/"): boolean {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  const path = url.split("?")[0];
  if (path === "/livez") {
    send(res, 200, "application/json", JSON.stringify({ live: true }));
    return true;
  }
  if (path === "/readyz") {
    const r = source.readiness();
    send(res, r.ready ? 200 : 503, "application/json", JSON.stringify(r));
    return true;
  }
  if (path === "/metrics") {
    const { registry } = source.metrics;
    registry.metrics().then(
      (text) => send(res, 200, registry.contentType, text),
      (error: unknown) => send(res, 500, "text/plain", `metrics collection failed: ${(error as Error).message}\n`),
    );
    return true;
  }
  return false;
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

/**
 * A node's own small HTTP listener for operations (`node.ops_port`): metrics and probes, apart
 * from the node-to-node transport, so a scraper or a Kubernetes probe never needs the cluster
 * secret and the transport's protocol can change without breaking them.
 */
export class OpsServer {
  private server: Server | null = null;

  constructor(
    private readonly source: OpsSource,
    private readonly host: string,
    private readonly requestedPort: number,
    private readonly log: Logger,
  ) {}

  /** The bound port (after `listen`); the requested one before. */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? this.requestedPort;
  }

  async listen(): Promise<void> {
    const server = createLimitedServer(
      OPS_LIMITS,
      (req, res) => {
        if (!serveOps(req, res, this.source)) send(res, 404, "text/plain", "not found: this port serves /metrics, /livez and /readyz\n");
      },
      () => this.refused(),
    );
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error: NodeJS.ErrnoException) =>
        reject(new ConfigError("node.ops_port", `cannot listen on ${this.host}:${this.requestedPort} (${error.code ?? error.message})`)),
      );
      server.listen(this.requestedPort, this.host, resolve);
    });
    this.server = server;
    this.log.info({ host: this.host, port: this.port }, "operations endpoint listening (/metrics, /livez, /readyz)");
  }

  private lastRefusalLog = -Infinity;

  /** Logs refused connections at most every 10 s: a flood of them must not become a flood of log lines. */
  private refused(): void {
    const now = performance.now();
    if (now - this.lastRefusalLog < 10_000) return;
    this.lastRefusalLog = now;
    this.log.warn({ limit: OPS_LIMITS.maxConnections }, "operations endpoint: refusing connections, too many open");
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}
