import type { Clock } from "../ports/clock.js";
import type { NodeStatus } from "../ports/liveness.js";
import type { ShardAssignment } from "../ports/shard-map.js";
import type { FailsafeReply, FailsafeRequest } from "../ports/transport.js";
import type { Timing } from "../timing.js";

/**
 * What a primary coreapp publishes in its liveness record (`meta.failsafe`) while failsafe is on:
 * the ids of the masters it would ask for promises, and its own cap on serving without the store.
 */
export interface PublishedFailsafe {
  /** Master node ids (process ids, not names: a restarted master is another process). */
  readonly masters: readonly string[];
  /** `failsafe_max` as that coreapp applies it, in ms. */
  readonly maxMs: number;
}

/** Reads `meta.failsafe` of a liveness record; null when absent or malformed. */
export function publishedFailsafe(record: NodeStatus | null | undefined): PublishedFailsafe | null {
  const f = record?.meta["failsafe"] as { masters?: unknown; maxMs?: unknown } | undefined;
  if (!f || !Array.isArray(f.masters) || typeof f.maxMs !== "number" || !(f.maxMs > 0)) return null;
  return { masters: f.masters.filter((m): m is string => typeof m === "string"), maxMs: f.maxMs };
}

/**
 * A master's side of failsafe mode (docs/safety.md, "Failsafe"): it answers primary coreapps'
 * requests with promises while it cannot reach the store, remembers each promise it gave, and — as
 * primary master — tells the shard manager when replacing an owner could break a promise, its own
 * or another master's.
 *
 * The rules, each sound without remembering anything past this process's life:
 * - it promises only while failsafe is on, it cannot reach the store (its last store operation
 *   failed, or none succeeded for three beat periods), and it is not replacing that assignment;
 * - it never replaces an owner before the last promise it gave for that shard has run out (counted
 *   from when it received the request, on this process's monotonic clock);
 * - it replaces an owner that does not list this process among the masters it asks (a master that
 *   started or restarted after the owner last reached the store) only once the owner's liveness
 *   record is older than the owner's `failsafe_max` plus a tenth: the owner never serves on
 *   promises past its last accepted liveness record + `failsafe_max` by its own clock.
 */
export class FailsafePromises {
  private lastOkAt = -Infinity;
  private lastFailedAt = -Infinity;
  /** Shard → until when this master has promised not to reassign it (this clock). */
  private readonly promised = new Map<number, number>();
  /** Shards whose replacement this master is writing now: no promise for them meanwhile. */
  private readonly replacing = new Set<number>();
  /** Owner id → since when this master has seen the owner's liveness record missing. */
  private readonly missingSince = new Map<string, number>();

  constructor(
    private readonly self: string,
    private readonly clock: Clock,
    private readonly timing: Timing,
    /** The epoch this master's map has for a shard (null: it keeps no map — a secondary). */
    private readonly knownEpoch: (shard: number) => number | null,
  ) {}

  /** Records the outcome of one of this master's store operations (its liveness beat). */
  noteStore(ok: boolean): void {
    if (ok) this.lastOkAt = this.clock.now();
    else this.lastFailedAt = this.clock.now();
  }

  /**
   * True while this master reaches the store: its latest store operation succeeded, within three
   * beat periods (a beat stuck in a blackholed connection counts as failing).
   */
  reachesStore(): boolean {
    return this.lastOkAt > this.lastFailedAt && this.clock.now() - this.lastOkAt <= 3 * this.timing.masterBeatIntervalMs;
  }

  /** Answers a primary coreapp's request: a promise of `failsafePromiseMs`, or why not. */
  answer(request: FailsafeRequest): FailsafeReply {
    if (!((this.timing.failsafeMaxMs ?? 0) > 0)) return { ok: false, reason: "failsafe is off" };
    if (this.replacing.has(request.shard)) return { ok: false, reason: "this master is replacing that assignment" };
    const known = this.knownEpoch(request.shard);
    if (known !== null && known > request.epoch) return { ok: false, reason: "the shard map has a newer assignment" };
    if (this.reachesStore()) return { ok: false, reason: "this master reaches the store" };
    const promiseMs = this.timing.failsafePromiseMs;
    // Counted from now, when the request arrived: the coreapp counts it from before it sent it.
    const until = this.clock.now() + promiseMs;
    this.promised.set(request.shard, Math.max(until, this.promised.get(request.shard) ?? -Infinity));
    return { ok: true, promiseMs };
  }

  /** Milliseconds left of this master's last promise for `shard` (0 when none runs). */
  promisedForMs(shard: number): number {
    return Math.max(0, (this.promised.get(shard) ?? 0) - this.clock.now());
  }

  /**
   * Why this (primary) master must not replace the owner of `a` now, or null when it may.
   * `owner` is the owner's liveness record as this master last read it. Synchronous on purpose:
   * call it right before the write, in the same turn as `hold()`.
   */
  blocker(a: ShardAssignment, owner: NodeStatus | null | undefined): string | null {
    const own = this.promisedForMs(a.shard);
    if (own > 0) return `this master promised (failsafe) not to reassign it for another ${Math.ceil(own)} ms`;
    if (!a.owner) return null;
    const published = publishedFailsafe(owner);
    if (owner) this.missingSince.delete(a.owner); // the record is back: its age speaks for itself
    const maxMs = published?.maxMs ?? (owner ? 0 : (this.timing.failsafeMaxMs ?? 0));
    if (maxMs <= 0) return null; // failsafe off at the owner (its record says so)
    if (published?.masters.includes(this.self)) return null; // the owner asks this process: our own promises bind it
    const needMs = maxMs + maxMs / 10;
    let ageMs: number;
    if (owner) ageMs = owner.ageMs;
    else {
      const since = this.missingSince.get(a.owner) ?? this.clock.now();
      this.missingSince.set(a.owner, since);
      ageMs = this.clock.now() - since;
    }
    if (ageMs >= needMs) return null;
    return (
      `the owner does not count this master among those it asks for failsafe promises: it may still serve on theirs, ` +
      `for at most failsafe_max (${maxMs} ms) past its last liveness record (${Math.round(ageMs)} ms old, waiting for ${Math.round(needMs)} ms)`
    );
  }

  /** Marks `shard` as being replaced (no promise for it) until the returned function is called. */
  hold(shard: number): () => void {
    this.replacing.add(shard);
    return () => this.replacing.delete(shard);
  }
}
