/**
 * Leases: a named, exclusive, expiring claim with a fencing epoch.
 *
 * The master lease (`MASTER_LEASE`) elects the primary master; each shard's ownership lease
 * (`shardLeaseName(n)`) is how a promoted coreapp proves, again and again, that it still owns the
 * shard. Expiry is judged by the store's own clock (SQL `clock_timestamp()` / `NOW(6)`, Redis `PX`,
 * etcd leases): no caller ever sends its wall-clock time.
 */

/** A lease as held by one holder. `epoch` is the fencing token of this tenure. */
export interface Lease {
  /** The lease's name: `master`, or `shard/<n>` for a shard's ownership. */
  readonly name: string;
  /** The holder's node id. */
  readonly holder: string;
  /** This tenure's epoch: greater than every earlier epoch of the same name. */
  readonly epoch: number;
}

/** The outcome of `acquire()`: a lost race is a value, not an exception. */
export type AcquireResult =
  | {
      /** The caller holds the lease. */
      readonly acquired: true;
      /** The lease now held by the caller. */
      readonly lease: Lease;
    }
  | {
      /** Another holder has it. */
      readonly acquired: false;
      /** The live holder, or null when the store reports none (for example, during a race). */
      readonly holder: string | null;
      /** The current or last epoch of this lease name. */
      readonly epoch: number;
      /** Milliseconds of store time until the current holder's lease lapses, if it does not renew. */
      readonly expiresInMs: number;
    };

/** Named leases with fencing epochs, judged by the store's clock. One implementation per backend. */
export interface LeaseStore {
  /**
   * Takes lease `name` for `holder` for `ttlMs` of store time.
   * - Free, released or expired by the store's clock: atomically becomes `holder`'s with
   *   an epoch greater than every epoch this name ever had (SQL stores: previous + 1, starting
   *   at 1). Epochs of a name never repeat or go back, also after release, expiry or a store restart.
   * - Held and live by `holder` itself: extended for `ttlMs`, same epoch (acquire is idempotent).
   * - Held and live by another: `{ acquired: false, holder, epoch, expiresInMs }`, nothing changes.
   * Of any number of concurrent callers for a free lease exactly one is given it.
   * Throws `StoreUnavailableError` when the store cannot be reached within the operation timeout;
   * the caller must then assume it does not hold the lease.
   */
  acquire(name: string, holder: string, ttlMs: number): Promise<AcquireResult>;

  /**
   * Extends `lease` for `ttlMs` from the store's now. Returns true only if the store still has it
   * held by the same holder at the same epoch and not expired; otherwise false and nothing changes.
   * Throws `StoreUnavailableError` as `acquire()` does (the lease may still lapse meanwhile).
   */
  renew(lease: Lease, ttlMs: number): Promise<boolean>;

  /**
   * Gives `lease` up at once if it is still held by the same holder at the same epoch, so that
   * another holder can acquire it without waiting for expiry. Keeps the epoch for the next holder.
   * Releasing a lease one no longer holds is a no-op. Throws `StoreUnavailableError`.
   */
  release(lease: Lease): Promise<void>;

  /** The live holder of `name` by the store's clock, or null when it is free or expired. */
  current(name: string): Promise<Lease | null>;

  /**
   * Optional, for stores that push changes (etcd, PostgreSQL, Redis): calls `onChange` when lease `name` is released
   * (and may call it on any other change of it: a contender looks again, nothing more), and
   * `onLost` at most once if the notification channel breaks. Resolves once the watch is live, so a read made after that misses
   * no release. A contender waiting for a held lease uses it to try again at once instead of at its
   * next poll; without it the contender only polls.
   */
  watchRelease?(name: string, onChange: () => void, onLost: (error: unknown) => void): Promise<() => Promise<void>>;
}

/** The lease whose holder is the primary master. */
export const MASTER_LEASE = "master";

/** The ownership lease that shard `shard`'s primary coreapp holds while it acts as primary. */
export function shardLeaseName(shard: number): string {
  return `shard/${shard}`;
}
