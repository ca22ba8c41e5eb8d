import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from "node:http";
import type { Clock } from "../core/ports/clock.js";
import { ClientRateLimiter } from "../core/webapp/rate-limit.js";
import { sendError } from "./webapp-http.js";

/**
 * The webapp's limits on what one client can hold or send, with the defaults of the config's
 * `webapp` section (docs/configuration.md, docs/security.md "Hostile clients"). Each is a bound a
 * hostile or broken client would otherwise set for us:
 *
 * - connections: each costs a file descriptor and buffers; past the bound a new one is closed
 *   at once, before any byte is read, so those already open keep being served;
 * - header bytes: the request line and headers, held in memory until complete (431 past it);
 * - headers and request timeouts: a client that trickles its headers or body (slowloris) holds
 *   a connection and a parser; Node answers 408 and closes when they run out;
 * - keep-alive: longer than the usual load balancer idle timeout (60 s), so the balancer, not the
 *   webapp, closes an idle connection and never sends a request on one the webapp just closed;
 * - the client rate: off by default, because behind a load balancer or proxy every client shares
 *   the balancer's address and any default would throttle all of them together.
 */
export interface WebappLimits {
  /** Open connections to the own listener (default 1000). */
  readonly maxConnections: number;
  /** Request line and headers, bytes (default 16 KiB, Node's own default). */
  readonly maxHeaderBytes: number;
  /** Time to receive the request line and headers (default 10 s). */
  readonly headersTimeoutMs: number;
  /** Time to receive a whole request, body included (default 30 s). */
  readonly requestTimeoutMs: number;
  /** Idle time after which a keep-alive connection is closed (default 65 s). */
  readonly keepAliveTimeoutMs: number;
  /** Requests per second one client address may send on average; 0 is no limit (default 0). */
  readonly clientRateLimit: number;
  /** Requests one client may send at once (default: one second's worth, at least 1). */
  readonly clientRateBurst: number;
}

/** The defaults of {@link WebappLimits}, as the config file's schema fills them in. */
export const DEFAULT_WEBAPP_LIMITS: WebappLimits = {
  maxConnections: 1000,
  maxHeaderBytes: 16 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
  clientRateLimit: 0,
  clientRateBurst: 1,
};

/**
 * How often Node looks for connections past their headers or request timeout. Node's default,
 * 30 s, would let a 10 s headers timeout fire up to 40 s late; one second keeps the bound close
 * and costs one walk over the open connections per second.
 */
const CONNECTIONS_CHECK_MS = 1000;

/**
 * The webapp's own listener with `limits` applied; `onRefused` is told of each connection closed
 * because `maxConnections` were already open.
 */
export function createLimitedServer(limits: WebappLimits, handler: RequestListener, onRefused: () => void): Server {
  const server = createServer(
    {
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      maxHeaderSize: limits.maxHeaderBytes,
      connectionsCheckingInterval: CONNECTIONS_CHECK_MS,
    },
    handler,
  );
  server.maxConnections = limits.maxConnections;
  server.on("drop", onRefused);
  return server;
}

/**
 * The per-client rate limit as the webapp applies it to every request it serves (own listener or
 * mounted), reserved paths included: it also slows an admin-token guesser.
 */
export class ClientRateGate {
  private readonly limiter: ClientRateLimiter | null;

  constructor(limits: Pick<WebappLimits, "clientRateLimit" | "clientRateBurst">, clock: Clock) {
    this.limiter = limits.clientRateLimit > 0 ? new ClientRateLimiter(limits.clientRateLimit, limits.clientRateBurst, clock) : null;
  }

  /**
   * True when `req` may go on. Otherwise answers 429 in the error shape of every other answer,
   * with Retry-After in whole seconds (at least 1), and returns false.
   */
  admit(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.limiter === null) return true;
    const waitMs = this.limiter.take(req.socket.remoteAddress ?? "unknown");
    if (waitMs === 0) return true;
    req.resume();
    const { ratePerSecond, burst } = this.limiter;
    sendError(
      res,
      429,
      429,
      "Too many requests",
      `this client sent more than ${ratePerSecond} requests per second (burst ${burst}); retry after ${waitMs} ms`,
      { "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))) },
    );
    return false;
  }
}
