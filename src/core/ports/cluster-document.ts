import type { ClusterSettings } from "../timing.js";
import type { Lease } from "./leases.js";

/**
 * The cluster document: one versioned record per cluster holding what the whole cluster must agree
 * on at run time — the live settings (docs/configuration.md), the pauses of automatic failover, and the shard
 * count. The config file gives the first values; from then on the store's copy is the truth.
 *
 * Only the primary master writes it, and every write is a compare-and-set on the document's version
 * that also checks, in the same atomic store operation, that the writer still holds the master lease
 * (safety S3, exactly as `ShardMapStore.assign`). Versions only grow, also across store restarts and
 * after a store lost its data (Redis without persistence), so "a higher version" always means "newer".
 *
 * LOST DOCUMENT. A store that loses the document (wiped, restored from an old backup, Redis without
 * persistence restarted) answers `read()` with null or with an older version. The primary master then
 * writes it again from its config file's values (expected version 0 when null), which resets live
 * settings and clears pauses: a lost pause re-enables automatic failover, the safe direction. Nodes
 * keep the settings they last applied until they see a new version.
 *
 * CHANGE NOTIFICATION is a poll of `version()`: one primary-key read (or one key get) per call.
 * A node polls it at least every heartbeat interval / 2 and re-reads on a change
 * (`ClusterDocumentFollower`), which applies a change within one heartbeat interval on every backend,
 * push-capable or not.
 *
 * PAUSE EXPIRY is judged by the store's clock: a pause carries how long it still has, as the store
 * measured at the read (`expiresInMs`), and a pause the store judges over is not returned at all.
 * A reader that keeps a pause between reads ends it at (its own monotonic time at the read +
 * `expiresInMs`), never by comparing wall clocks.
 */

/** A pause of automatic failover, as the primary master writes it. */
export interface PauseInput {
  /** The paused shard, or null for the whole cluster. At most one pause per value. */
  readonly shard: number | null;
  /** Who asked (an operator's name, a node id); for people. At most 200 characters. */
  readonly by: string;
  /** Why; for people. At most 1000 characters. */
  readonly reason: string;
  /**
   * How long, in ms of store time from this write, the pause lasts; it ends by itself then, so a
   * forgotten pause never disables failover for good. Positive. Stores whose capabilities say
   * `ttlWholeSeconds` round it up to whole seconds.
   */
  readonly expiresInMs: number;
  /**
   * When the pause began (ms since the Unix epoch). Leave it out on a new pause: the store stamps it
   * with its own clock. Pass a read pause's value back to keep it (a renewal, or any other write of
   * the document).
   */
  readonly pausedAtMs?: number;
}

/** A pause in force, as `read()` returns it. */
export interface Pause extends PauseInput {
  /** When the pause began, by the store's wall clock (the writer's on stores declaring `writerWallClock`). */
  readonly pausedAtMs: number;
  /** Ms of store time left at the read; always > 0 (an ended pause is not returned). */
  readonly expiresInMs: number;
}

/** The document as the primary master writes it. */
export interface ClusterDocumentInput {
  /** The live settings; the master validates them with `validateSettings` before writing. */
  readonly settings: ClusterSettings;
  /** How many shards the cluster has (a positive integer). */
  readonly shardCount: number;
  /** The pauses of automatic failover to keep or start (at most one per shard, one cluster-wide). */
  readonly pauses: readonly PauseInput[];
}

/** The document as read: only the pauses still in force by the store's clock. */
export interface ClusterDocument extends ClusterDocumentInput {
  /** The pauses still in force at the read. */
  readonly pauses: readonly Pause[];
}

/** A document and its version (a positive integer; greater means newer). */
export interface VersionedClusterDocument {
  /** Grows with every write, also across store restarts. */
  readonly version: number;
  /** The document itself. */
  readonly document: ClusterDocument;
}

/** The outcome of `write()`: a conflict or a lost master lease is a value, not an exception. */
export type ClusterDocumentWriteResult =
  | {
      /** Written. */
      readonly ok: true;
      /** The document's new version. */
      readonly version: number;
    }
  | {
      /** Not written. */
      readonly ok: false;
      /** The version was no longer `expectedVersion`. */
      readonly reason: "conflict";
      /** What the store holds now (null: nothing). */
      readonly current: VersionedClusterDocument | null;
    }
  | {
      /** Not written. */
      readonly ok: false;
      /** The master lease was not held, live, by the given holder and epoch. */
      readonly reason: "fenced";
    };

/** The cluster document's storage: what every adapter provides (contracts on each method). */
export interface ClusterDocumentStore {
  /**
   * The document and its version, or null when it was never written (or was lost). Pauses that
   * ended by the store's clock are left out. Throws `StoreUnavailableError` when the store cannot be
   * reached within the operation timeout, and `ClusterDocumentError` when the stored document fails
   * validation (its message names the version and the offending key; nothing is repaired silently).
   */
  read(): Promise<VersionedClusterDocument | null>;

  /**
   * The current version, 0 when never written: the cheap change check nodes poll. Throws
   * `StoreUnavailableError`.
   */
  version(): Promise<number>;

  /**
   * Compare-and-set of the whole document: if its version is `expectedVersion` (0 when never
   * written) AND the master lease is held, live by the store's clock, by `master.holder` at
   * `master.epoch`, atomically replaces it and gives it a version greater than `expectedVersion` and
   * than every version it ever had. Pauses are stamped with the store's clock in the same operation.
   * Otherwise writes nothing and says why; of concurrent writers with one expected version exactly
   * one succeeds. Throws `ClusterDocumentError` before any store access when `document` is malformed
   * or its settings fail `validateSettings` (a document every reader would refuse is never stored),
   * and `StoreUnavailableError` (the write may or may not have happened: read again before deciding).
   */
  write(expectedVersion: number, document: ClusterDocumentInput, master: Lease): Promise<ClusterDocumentWriteResult>;
}
