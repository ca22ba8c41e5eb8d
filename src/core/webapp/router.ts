import { AuthenticationError, TransportUnavailableError } from "../errors.js";
import type { Clock } from "../ports/clock.js";
import type { LivenessStore } from "../ports/liveness.js";
import type { Logger } from "../ports/logger.js";
import type { ShardAssignment, ShardMapStore, ShardMapWatch } from "../ports/shard-map.js";
import type { ForwardResponse, Peer, Transport } from "../ports/transport.js";

/**
 * The header a coreapp sets on a response that the SDK, not the application, wrote: `1018` says
 * "not the primary of that shard at that epoch" (nothing ran; the router may retry), and
 * {@link APP_ERROR_CODE} says "the application's handle() threw" (it ran; never retried).
 */
export const NOT_PRIMARY_HEADER = "x-mc-error";

/**
 * The error code of a 500 answered when the application's `handle()` threw. Outside the model
 * product's 10xx codes, so a client never mistakes it for 1018 (which means "nothing ran, retry").
 */
export const APP_ERROR_CODE = 1500;

export interface RouterOptions {
  readonly shards: number;
  /** How long one request may keep retrying through a failover before it gets 1018 (default 5 s). */
  readonly retryWindowMs: number;
  /** Timeout of one forwarding attempt. */
  readonly forwardTimeoutMs: number;
}

/** A request to route, already reduced to its shard. */
export interface RoutedRequest {
  readonly shard: number;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

export type RouteResult =
  | { readonly ok: true; readonly response: ForwardResponse; readonly node: string; readonly epoch: number; readonly attempts: number }
  | { readonly ok: false; readonly shard: number; readonly reason: string; readonly attempts: number };

/**
 * The webapp's routing: an in-memory copy of the shard map kept current by the store's change
 * notifications (no store access per request), and of the coreapps' addresses. A request goes to
 * its shard's owner stamped with the owner's epoch; the coreapp answers it only if it is serving
 * that shard at that epoch. If it is not (1018), or its address refuses connections, the router
 * re-reads the map and retries with backoff until `retryWindowMs`, so a failover or switchover
 * shows up as latency, not as an error. A request that may have reached a coreapp (a reset or a
 * timeout after sending) is never retried: that could run it twice.
 */
export class Router {
  private readonly map = new Map<number, ShardAssignment>();
  private readonly peers = new Map<string, Peer>();
  private watch: ShardMapWatch | null = null;
  private refreshing: Promise<void> | null = null;
  private lastRefresh = -Infinity;

  constructor(
    private readonly shardMap: ShardMapStore,
    private readonly liveness: LivenessStore,
    private readonly transport: Transport,
    private readonly clock: Clock,
    private readonly options: RouterOptions,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.refreshPeers();
    this.watch = await this.shardMap.watch(
      (changed) => this.apply(changed),
      (error) => this.log.warn({ err: String(error) }, "shard-map watch interrupted; resyncing"),
    );
  }

  async close(): Promise<void> {
    await this.watch?.close();
  }

  /** The owner and epoch this webapp would route `shard` to now. */
  route(shard: number): ShardAssignment | null {
    return this.map.get(shard) ?? null;
  }

  async forward(req: RoutedRequest): Promise<RouteResult> {
    const deadline = this.clock.now() + this.options.retryWindowMs;
    let backoff = 2;
    let reason = "no primary";
    for (let attempts = 1; ; attempts++) {
      const a = this.map.get(req.shard);
      const peer = a?.owner ? this.peers.get(a.owner) : undefined;
      if (!a?.owner) reason = `shard ${req.shard} has no primary coreapp`;
      else if (!peer) reason = `the address of ${a.owner} is not known yet`;
      else {
        try {
          const response = await this.transport.forward(peer, { ...req, epoch: a.epoch }, this.options.forwardTimeoutMs);
          if (response.headers[NOT_PRIMARY_HEADER] !== "1018") {
            return { ok: true, response, node: a.owner, epoch: a.epoch, attempts };
          }
          reason = `${a.owner} is not (or no longer) the primary of shard ${req.shard} at epoch ${a.epoch}`;
        } catch (error) {
          // Retry only what certainly did not run: no connection was made, or the receiver
          // refused the message before any handler (e.g. a restarted node at the old address).
          const notRun =
            (error instanceof TransportUnavailableError && error.notDelivered) ||
            (error instanceof AuthenticationError && error.refusedByReceiver);
          if (!notRun) {
            return { ok: false, shard: req.shard, reason: `forwarding to ${a.owner} failed: ${(error as Error).message}`, attempts };
          }
          reason = `${a.owner} is unreachable`;
        }
      }
      if (this.clock.now() + backoff >= deadline) return { ok: false, shard: req.shard, reason, attempts };
      void this.refresh();
      await this.clock.sleep(backoff);
      backoff = Math.min(backoff * 2, 50);
    }
  }

  private apply(changed: readonly ShardAssignment[]): void {
    for (const a of changed) {
      const current = this.map.get(a.shard);
      // A void entry (owner null at the same epoch: the store lost it) replaces the assignment.
      if (!current || current.epoch < a.epoch || (current.epoch === a.epoch && a.owner === null)) this.map.set(a.shard, a);
      if (a.owner && !this.peers.has(a.owner)) void this.refresh();
    }
  }

  /** Re-reads the map and the addresses, coalesced, at most every 5 ms. */
  private refresh(): Promise<void> {
    if (this.clock.now() - this.lastRefresh < 5) return this.refreshing ?? Promise.resolve();
    this.lastRefresh = this.clock.now();
    this.refreshing ??= (async () => {
      try {
        const [entries] = await Promise.all([this.shardMap.read(), this.refreshPeers()]);
        this.apply(entries);
      } catch (error) {
        this.log.warn({ err: String(error) }, "route refresh failed");
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  private async refreshPeers(): Promise<void> {
    for (const n of await this.liveness.list()) {
      if (n.role === "coreapp" && n.address) this.peers.set(n.id, { id: n.id, address: n.address });
    }
  }
}
