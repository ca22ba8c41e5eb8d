import { AuthenticationError, TransportUnavailableError } from "../errors.js";
import type { Clock } from "../ports/clock.js";
import type { LivenessStore } from "../ports/liveness.js";
import type { Logger } from "../ports/logger.js";
import type { ShardAssignment, ShardMapStore, ShardMapWatch } from "../ports/shard-map.js";
import type { ForwardResponse, Peer, Transport } from "../ports/transport.js";

export interface RouterOptions {
  readonly shards: number;
  /** How long one request may keep retrying through a failover before it gets 1018 (default 5 s). */
  readonly retryWindowMs: number;
  /** Timeout of one forwarding attempt. */
  readonly forwardTimeoutMs: number;
  /**
   * How long after the retry window an attempt may still wait for its answer (default: no bound
   * but `forwardTimeoutMs`): the failover bound, so a request stuck on a cut-off owner fails once
   * a failover would have replaced that owner, not only at the forward timeout.
   */
  readonly inDoubtBoundMs?: number;
}

/** A request to route, already reduced to its shard. */
export interface RoutedRequest {
  readonly shard: number;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

/**
 * What routing came to. `ok`: the owner answered; `failed` says the application's handler threw
 * (it ran; not sent again). Not `ok`: no owner served it within the retry window (`inDoubt`
 * false: nothing ran), or the owner acknowledged it and the answer was lost (`inDoubt` true: it
 * may have run, and is not sent again).
 */
export type RouteResult =
  | {
      readonly ok: true;
      readonly failed: boolean;
      readonly response: ForwardResponse;
      readonly node: string;
      readonly epoch: number;
      readonly attempts: number;
    }
  | { readonly ok: false; readonly inDoubt: boolean; readonly shard: number; readonly reason: string; readonly attempts: number };

/**
 * The webapp's routing: an in-memory copy of the shard map kept current by the store's change
 * notifications (no store access per request), and of the coreapps' addresses. A request goes to
 * its shard's owner stamped with the owner's epoch; the coreapp answers it only if it is serving
 * that shard at that epoch. If it is not (a `not-serving` result), its address refuses
 * connections, or the connection closed before the coreapp acknowledged the request (it never
 * started), the router re-reads the map and retries with backoff until `retryWindowMs`, so a
 * failover or switchover shows up as latency, not as an error. A request the coreapp acknowledged
 * and never answered is never retried (that could run it twice): it fails as in doubt.
 */
export class Router {
  private readonly map = new Map<number, ShardAssignment>();
  private readonly peers = new Map<string, Peer>();
  private watch: ShardMapWatch | null = null;
  private refreshing: Promise<void> | null = null;
  private lastRefresh = -Infinity;
  /** Retries waiting out their backoff, by shard: `apply` wakes them when the shard's entry changes. */
  private readonly backingOff = new Map<number, Set<AbortController>>();

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
    const begun = this.clock.now();
    const deadline = begun + this.options.retryWindowMs;
    // An attempt never waits past the retry window plus the failover bound: by then a lost owner
    // has been replaced, and waiting on for its answer only delays the client's own decision.
    const answerBy = deadline + (this.options.inDoubtBoundMs ?? Infinity);
    let backoff = 2;
    let reason = "no primary";
    for (let attempts = 1; ; attempts++) {
      const a = this.map.get(req.shard);
      const peer = a?.owner ? this.peers.get(a.owner) : undefined;
      if (!a?.owner) reason = `shard ${req.shard} has no primary coreapp`;
      else if (!peer) reason = `the address of ${a.owner} is not known yet`;
      else {
        const timeoutMs = Math.max(1, Math.min(this.options.forwardTimeoutMs, answerBy - this.clock.now()));
        try {
          // Written out, not `{ ...req, epoch }`: V8 builds a spread with an added property on a slow
          // path (570 ns against 19 ns for this literal on Node 20; docs/architecture.md).
          const request = { shard: req.shard, epoch: a.epoch, method: req.method, path: req.path, headers: req.headers, body: req.body };
          const result = await this.transport.forward(peer, request, timeoutMs);
          if (result.outcome !== "not-serving") {
            return { ok: true, failed: result.outcome === "failed", response: result.response, node: a.owner, epoch: a.epoch, attempts };
          }
          reason = `${a.owner} is not (or no longer) the primary of shard ${req.shard} at epoch ${a.epoch}`;
        } catch (error) {
          // Retry only what certainly did not run: no connection, a connection the coreapp closed
          // before acknowledging the request, or a refusal before any handler.
          const notRun =
            (error instanceof TransportUnavailableError && error.notDelivered) ||
            (error instanceof AuthenticationError && error.refusedByReceiver);
          if (!notRun) {
            const why = `forwarding to ${a.owner} failed after it may have started the request: ${(error as Error).message}`;
            return { ok: false, inDoubt: true, shard: req.shard, reason: why, attempts };
          }
          reason = `${a.owner} is unreachable`;
        }
      }
      if (this.clock.now() + backoff >= deadline) return { ok: false, inDoubt: false, shard: req.shard, reason, attempts };
      void this.refresh();
      await this.backOff(req.shard, backoff);
      backoff = Math.min(backoff * 2, 50);
    }
  }

  /**
   * Waits `ms` before the next attempt for `shard`, or less: until the shard's entry in the map
   * changes. In a switchover or failover the map names the new owner before it serves, and the new
   * owner holds a request until it does; so a retry goes to it the moment the map names it, instead
   * of when its backoff (up to 50 ms) runs out — which was most of a switchover's gap.
   */
  private async backOff(shard: number, ms: number): Promise<void> {
    const wake = new AbortController();
    let waiting = this.backingOff.get(shard);
    if (!waiting) this.backingOff.set(shard, (waiting = new Set()));
    waiting.add(wake);
    try {
      await this.clock.sleep(ms, wake.signal);
    } finally {
      waiting.delete(wake);
      if (waiting.size === 0) this.backingOff.delete(shard);
    }
  }

  private apply(changed: readonly ShardAssignment[]): void {
    for (const a of changed) {
      const current = this.map.get(a.shard);
      // A void entry (owner null at the same epoch: the store lost it) replaces the assignment.
      if (!current || current.epoch < a.epoch || (current.epoch === a.epoch && a.owner === null)) {
        this.map.set(a.shard, a);
        for (const wake of this.backingOff.get(a.shard) ?? []) wake.abort();
      }
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
