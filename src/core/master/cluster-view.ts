import type { Clock } from "../ports/clock.js";
import type { LivenessStore, NodeStatus } from "../ports/liveness.js";

/**
 * A master's latest copy of the liveness list, with each record's age corrected for the time
 * since the list was read (on this process's monotonic clock, from the answer's arrival). Refreshed by the master's beat loop, and on demand — at most once per
 * `minRefreshMs` — when the primary master suspects an owner and wants the freshest evidence.
 */
export class ClusterView {
  private nodes: NodeStatus[] = [];
  private byId = new Map<string, NodeStatus>();
  private masterNodes: NodeStatus[] = [];
  private readAt = -Infinity;
  private inflight: Promise<void> | null = null;

  constructor(
    private readonly liveness: LivenessStore,
    private readonly clock: Clock,
    private readonly minRefreshMs: number,
  ) {}

  /** Reads the list now (coalescing concurrent callers). Throws `StoreUnavailableError`. */
  refresh(): Promise<void> {
    this.inflight ??= (async () => {
      try {
        this.nodes = await this.liveness.list();
        this.byId = new Map(this.nodes.map((n) => [n.id, n]));
        this.masterNodes = this.nodes.filter((n) => n.role === "master");
        // The store measured the ages somewhere between our request and its answer; aging them from
        // the answer's arrival under-states them by at most one round trip, never over-states them.
        // That is the safe side for both readers of an age: the store detector must never find a
        // live node dead early (L2), and a failsafe blocker must never think an owner's promises ran
        // out early (S1). Aged from the send time instead, a 600 ms store link added a whole read to
        // every age, and a healthy owner was replaced (docs/reliability.md, store-delay).
        this.readAt = this.clock.now();
      } finally {
        this.inflight = null;
      }
    })();
    return this.inflight;
  }

  /**
   * Takes `id` out of this copy (its record was just removed), once any read in flight has landed:
   * that read may have started before the removal, and would bring the node back. Reads started
   * later show it again only once it beats again.
   */
  async drop(id: string): Promise<void> {
    await this.inflight?.catch(() => {});
    this.nodes = this.nodes.filter((n) => n.id !== id);
    this.byId.delete(id);
    this.masterNodes = this.masterNodes.filter((n) => n.id !== id);
  }

  /** Refreshes unless the list is younger than `minRefreshMs`. */
  async refreshIfOlderThan(ms = this.minRefreshMs): Promise<void> {
    if (this.clock.now() - this.readAt >= ms) await this.refresh();
  }

  /** Every node with `ageMs` corrected to now. */
  all(): NodeStatus[] {
    const extra = this.clock.now() - this.readAt;
    return this.nodes.map((n) => ({ ...n, ageMs: n.ageMs + extra }));
  }

  /** One node with `ageMs` corrected to now; O(1), as the primary master asks once per shard per tick. */
  get(id: string): NodeStatus | null {
    const n = this.byId.get(id);
    return n ? { ...n, ageMs: n.ageMs + (this.clock.now() - this.readAt) } : null;
  }

  /** The masters, with `ageMs` corrected to now. */
  masters(): NodeStatus[] {
    const extra = this.clock.now() - this.readAt;
    return this.masterNodes.map((n) => ({ ...n, ageMs: n.ageMs + extra }));
  }

  /** Finds a node by id, or by name when exactly one registered node has that name. */
  resolve(idOrName: string): NodeStatus | null {
    const all = this.all();
    const byId = all.find((n) => n.id === idOrName);
    if (byId) return byId;
    const named = all.filter((n) => n.name === idOrName);
    return named.length === 1 ? named[0]! : null;
  }
}
