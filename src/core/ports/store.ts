import type { ClusterDocumentStore } from "./cluster-document.js";
import type { HistoryStore } from "./history.js";
import type { LeaseStore } from "./leases.js";
import type { LivenessStore } from "./liveness.js";
import type { ShardMapStore } from "./shard-map.js";

/**
 * Everything one backend provides: the store ports over one shared storage (the shard map's, the
 * cluster document's and the history's writes read the master lease in the same atomic operation),
 * plus schema upkeep.
 */
export interface Store {
  /** The backend's name as configured: "memory", "sqlite", "postgres", "mysql", "redis", "etcd". */
  readonly backend: string;
  /** Named leases with epochs: the master lease and each shard's ownership lease. */
  readonly leases: LeaseStore;
  /** Each node's liveness record, aged by the store's clock. */
  readonly liveness: LivenessStore;
  /** The shard map: which coreapp is each shard's primary, at which epoch. */
  readonly shardMap: ShardMapStore;
  /** The versioned cluster document: live settings, pauses, shard count. */
  readonly clusterDocument: ClusterDocumentStore;
  /** The bounded failover history. */
  readonly history: HistoryStore;
  /**
   * Creates or upgrades the store's schema to this version of the SDK. Idempotent and safe to run
   * from several nodes at once. Throws `StoreUnavailableError` / `StoreConfigurationError`.
   */
  migrate(): Promise<void>;
  /** The schema version this SDK's adapter writes (and the newest it accepts). */
  readonly schemaVersion: number;
  /**
   * The schema version recorded in the store, or null when no schema was ever created under this
   * prefix. Reads only. Throws `StoreUnavailableError`.
   */
  recordedSchemaVersion(): Promise<number | null>;
  /**
   * Removes every table or key whose name starts with this store's prefix — including ones this
   * SDK version does not know — except those of another cluster nested under a longer prefix, and
   * returns the names removed, sorted. For `multiconnect reset`: the caller makes sure no node of
   * the cluster runs. Idempotent (a second call returns []). The store needs `migrate()` again
   * afterwards. Throws `StoreUnavailableError`.
   */
  purge(): Promise<string[]>;
  /** What this backend declares about its timing limits. */
  readonly capabilities: StoreCapabilities;
  /** Closes connections and watchers. Idempotent. */
  close(): Promise<void>;
}

/** What a backend declares about itself, for the conformance suite and for timing validation. */
export interface StoreCapabilities {
  /** The store rounds lease TTLs up to whole seconds (etcd). */
  readonly ttlWholeSeconds?: boolean;
  /** The shortest lease TTL the store grants, in ms (etcd: 2000). */
  readonly minTtlMs?: number;
  /** Change notifications are polled, at this interval (ms); absent for push notifications. */
  readonly pollIntervalMs?: number;
  /** How late, at most, the store acts on an expiry (etcd deletes expired keys in ~500 ms sweeps). */
  readonly expiryLagMs?: number;
  /** Liveness ages are only this fine (etcd: whole seconds, rounded down). */
  readonly ageResolutionMs?: number;
  /**
   * Timestamps meant for people (a pause's `pausedAtMs`, a history event's `atMs`) come from the
   * writing node's wall clock: the store has no clock a client can read (etcd), or the store is on
   * the writer's machine and shares its clock (SQLite, memory). Expiry is still judged by the
   * store's clock. Absent: the store's own clock stamps them.
   */
  readonly writerWallClock?: boolean;
}
