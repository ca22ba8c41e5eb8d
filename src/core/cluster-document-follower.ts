import type { Clock } from "./ports/clock.js";
import type { ClusterDocumentStore, Pause, VersionedClusterDocument } from "./ports/cluster-document.js";
import type { Logger } from "./ports/logger.js";
import type { StoreCapabilities } from "./ports/store.js";
import { applySettings, type Timing } from "./timing.js";

/** A pause as a node keeps it between reads: it ends at `endsAt` on this process's monotonic clock. */
export interface HeldPause extends Pause {
  /** When it ends, on this process's monotonic clock (`Clock.now()`). */
  readonly endsAt: number;
}

/**
 * Every node's copy of the cluster document (src/core/ports/cluster-document.ts): it polls the
 * document's version every `heartbeat_interval / 2`, re-reads it on a change, and applies its live
 * settings to the node's `Timing` in place (`applySettings`), so a change reaches every node within
 * one heartbeat interval. It also keeps the pauses, each ending by the store's word (`expiresInMs`
 * at the read, counted on this process's monotonic clock), never by comparing wall clocks.
 *
 * A document this node cannot apply (settings its store cannot honour) is logged and skipped; the
 * node keeps the settings it had. A store that is unreachable changes nothing here: the last
 * settings stay in force.
 */
export class ClusterDocumentFollower {
  private latest: VersionedClusterDocument | null = null;
  private pauses: HeldPause[] = [];
  private readonly stop = new AbortController();
  private running: Promise<void> | null = null;
  private readonly listeners = new Set<(doc: VersionedClusterDocument) => void>();

  constructor(
    private readonly documents: ClusterDocumentStore,
    private readonly timing: Timing,
    private readonly capabilities: StoreCapabilities,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** Reads the document once now (so a node starts on the cluster's settings), then follows it. */
  async start(): Promise<void> {
    await this.refresh().catch((error: unknown) =>
      this.log.warn({ err: String(error) }, "cannot read the cluster document yet; keeping the file's settings"),
    );
    this.running ??= this.loop();
  }

  /** Stops following. Idempotent. */
  async close(): Promise<void> {
    this.stop.abort();
    await this.running;
  }

  /** The document as last read, or null when none was read (never written, or the store is away). */
  get document(): VersionedClusterDocument | null {
    return this.latest;
  }

  /** The pauses still in force now: the cluster-wide one (shard null) and per shard. */
  activePauses(): HeldPause[] {
    const now = this.clock.now();
    return this.pauses.filter((p) => p.endsAt > now);
  }

  /** The pause that stops automatic failover of `shard` now (a shard's own, else the cluster's), or null. */
  pauseOf(shard: number): HeldPause | null {
    const active = this.activePauses();
    return active.find((p) => p.shard === shard) ?? active.find((p) => p.shard === null) ?? null;
  }

  /** Calls `fn` with every newer document this node reads (after its settings were applied). */
  onChange(fn: (doc: VersionedClusterDocument) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Reads the document now if its version moved (or always with `force`), and applies it. */
  async refresh(force = false): Promise<void> {
    if (!force && this.latest && (await this.documents.version()) === this.latest.version) return;
    const readAt = this.clock.now();
    const doc = await this.documents.read();
    if (!doc) return;
    if (this.latest && doc.version === this.latest.version && !force) return;
    try {
      applySettings(this.timing, doc.document.settings, this.capabilities);
    } catch (error) {
      this.log.error(
        { version: doc.version, err: String(error) },
        "the cluster's settings cannot be applied on this node; keeping the current ones",
      );
    }
    this.latest = doc;
    this.pauses = doc.document.pauses.map((p) => ({ ...p, endsAt: readAt + p.expiresInMs }));
    for (const fn of this.listeners) fn(doc);
  }

  private async loop(): Promise<void> {
    while (!this.stop.signal.aborted) {
      await this.clock.sleep(Math.max(10, this.timing.heartbeatIntervalMs / 2), this.stop.signal);
      if (this.stop.signal.aborted) return;
      await this.refresh().catch((error: unknown) => this.log.debug({ err: String(error) }, "cluster document poll failed; retrying"));
    }
  }
}
