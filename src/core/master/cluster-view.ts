import type { Clock } from "../ports/clock.js";
import type { LivenessStore, NodeStatus } from "../ports/liveness.js";

/**
 * A master's latest copy of the liveness list, with each record's age corrected for the time
 * since the list was read (on this process's monotonic clock, from the answer's arrival). Refreshed by the master's beat loop, and on demand — at most once per
 * `minRefreshMs` — when the primary master suspects an owner and wants the freshest evidence.
 *
 * On a store whose ages are coarse (`ageResolutionMs` > 0; etcd reports them in whole seconds,
 * rounded down) a record's age is also no less than how long this view has been showing the same
 * beat of it: see `sharpen`.
 */
export class ClusterView {
  private nodes: NodeStatus[] = [];
  private byId = new Map<string, NodeStatus>();
  private masterNodes: NodeStatus[] = [];
  private readAt = -Infinity;
  private inflight: Promise<void> | null = null;
  /** Per node id: the beat (`seq`) its record showed, and when the first read that showed it arrived. */
  private firstSeen = new Map<string, { readonly seq: number; readonly atMs: number }>();

  constructor(
    private readonly liveness: LivenessStore,
    private readonly clock: Clock,
    private readonly minRefreshMs: number,
    /** The store's age resolution (`StoreCapabilities.ageResolutionMs`); 0 when its ages are exact. */
    private readonly ageResolutionMs = 0,
  ) {}

  /** Reads the list now (coalescing concurrent callers). Throws `StoreUnavailableError`. */
  refresh(): Promise<void> {
    this.inflight ??= (async () => {
      try {
        const listed = await this.liveness.list();
        const at = this.clock.now();
        this.nodes = this.ageResolutionMs > 0 ? this.sharpen(listed, at) : listed;
        this.byId = new Map(this.nodes.map((n) => [n.id, n]));
        this.masterNodes = this.nodes.filter((n) => n.role === "master");
        // The store measured the ages somewhere between our request and its answer; aging them from
        // the answer's arrival under-states them by at most one round trip, never over-states them.
        // That is the safe side for both readers of an age: the store detector must never find a
        // live node dead early (L2), and a failsafe blocker must never think an owner's promises ran
        // out early (S1). Aged from the send time instead, a 600 ms store link added a whole read to
        // every age, and a healthy owner was replaced (docs/reliability.md, store-delay).
        this.readAt = at;
      } finally {
        this.inflight = null;
      }
    })();
    return this.inflight;
  }

  /**
   * The records of a read that arrived at `at`, each aged at least `at` minus the arrival of the
   * first read that showed the same beat of it (the same `seq`: ids are unique per process and a
   * process numbers its beats, so the pair names one beat). That beat had landed before that
   * answer left the store, so the difference is a lower bound of the record's age, like the
   * store's own age: taking the larger of the two never over-states an age (which the store
   * detector, L2, and the failsafe blocker, S1, rely on), and it corrects a coarse store's.
   *
   * Why it matters: a master rewrites its record every master beat (500 ms at the scaled
   * defaults), so on etcd a secondary master's record always reads 0 ms old, and the primary
   * credited a secondary's published view of a silent owner with none of the time since it was
   * published — it waited for the secondary's next beat to agree (docs/benchmarks.md, item 1 on
   * etcd). While the primary suspects an owner it reads every evaluation tick, so it sees each new
   * beat within a tick and the view's age is then short by at most that.
   *
   * A record without a `seq`, or read for the first time, keeps the store's age.
   */
  private sharpen(listed: NodeStatus[], at: number): NodeStatus[] {
    const seen = new Map<string, { seq: number; atMs: number }>();
    const out = listed.map((n) => {
      if (n.seq === undefined) return n;
      const before = this.firstSeen.get(n.id);
      const first = before?.seq === n.seq ? before : { seq: n.seq, atMs: at };
      seen.set(n.id, first);
      return at - first.atMs > n.ageMs ? { ...n, ageMs: at - first.atMs } : n;
    });
    this.firstSeen = seen;
    return out;
  }

  /**
   * Takes `id` out of this copy (its record was just removed), once any read in flight has landed:
   * that read may have started before the removal, and would bring the node back. Reads started
   * later show it again only once it beats again.
   */
  async drop(id: string): Promise<void> {
    await this.inflight?.catch(() => {});
    this.firstSeen.delete(id);
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
