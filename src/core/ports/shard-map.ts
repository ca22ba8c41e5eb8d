import type { Lease } from "./leases.js";

/**
 * The shard map: which coreapp owns each shard, and the fencing epoch of that assignment.
 *
 * Only the primary master writes it, and every write is a compare-and-set that also checks, in the
 * same atomic store operation, that the writer still holds the master lease (safety S3). Every
 * write of a shard increments its epoch, so an epoch names exactly one assignment; epochs never
 * decrease or repeat, also across store restarts (safety S2).
 */

/** One shard's entry. `owner` is a coreapp's node id, or null when the shard has no assigned owner. */
export interface ShardAssignment {
  /** The shard number, from 0. */
  readonly shard: number;
  /** The primary coreapp's node id, or null. */
  readonly owner: string | null;
  /** The epoch of this assignment (0 for a shard never written). */
  readonly epoch: number;
}

/** The outcome of `assign()`: a conflict or a lost master lease is a value, not an exception. */
export type AssignResult =
  | {
      /** Written. */
      readonly ok: true;
      /** The entry as written. */
      readonly assignment: ShardAssignment;
    }
  /** The shard's epoch was no longer `expectedEpoch`; `current` is what the store holds now. */
  | {
      /** Not written. */
      readonly ok: false;
      /** Another write changed the shard first. */
      readonly reason: "conflict";
      /** What the store holds now. */
      readonly current: ShardAssignment;
    }
  /** The master lease was not held, live, by the given holder and epoch: nothing was written. */
  | {
      /** Not written. */
      readonly ok: false;
      /** The caller is not the live primary master at that epoch. */
      readonly reason: "fenced";
    };

/** A live subscription to shard-map changes. */
export interface ShardMapWatch {
  /** Stops delivery. Idempotent. */
  close(): Promise<void>;
  /**
   * Reads the map now instead of at the next poll or signal: a peer says it changed (the primary
   * master after writing an entry that concerns this node). A hint only — what is delivered is
   * still what the store returns. `startDiffingWatch` provides it; a watch of one's own whose store
   * pushes every change at once may make it do nothing.
   */
  lookNow(): void;
}

/** The shard map: each shard's primary coreapp and epoch, written only by the primary master. One implementation per backend. */
export interface ShardMapStore {
  /**
   * Every shard entry that exists, ordered by shard number (a shard never written is absent;
   * readers treat it as `{ owner: null, epoch: 0 }`). Throws `StoreUnavailableError`.
   */
  read(): Promise<ShardAssignment[]>;

  /**
   * Compare-and-set of one shard: if the shard's current epoch is `expectedEpoch` (0 for a shard
   * never written) AND the master lease is held, live by the store's clock, by `master.holder` at
   * `master.epoch`, atomically sets `owner` and a new epoch greater than `expectedEpoch` and than
   * every epoch this shard ever had (SQL stores: `expectedEpoch + 1`; a store that can lose data
   * must still never go back). Otherwise writes nothing and says why. Throws `StoreUnavailableError` (the write may or may not have happened;
   * read again before deciding).
   */
  assign(shard: number, expectedEpoch: number, owner: string | null, master: Lease): Promise<AssignResult>;

  /**
   * Calls `onChange` with the entries that changed since the last delivery, each at most once per
   * epoch and never with an older epoch than already delivered for that shard. The first delivery
   * is the whole map. A shard whose entry the store no longer has (it lost its data) is delivered
   * once as `{ owner: null }` at the last epoch delivered: that assignment is void, and nobody may
   * act on it; a later entry with a higher epoch is delivered as usual. After a lost notification channel the adapter re-reads and delivers what it
   * missed (a resync); it also re-reads at least every `resyncMs` so a lost notification delays a
   * change by no more than that. Store errors while watching go to `onError` and are retried.
   */
  watch(onChange: (changed: ShardAssignment[]) => void, onError?: (error: unknown) => void): Promise<ShardMapWatch>;
}
