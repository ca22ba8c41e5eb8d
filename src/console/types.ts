/**
 * What the console's server sends its browsers: one full {@link ConsoleState} when a browser
 * connects, then {@link ConsolePatch}es with only what changed. Types only (no code), shared by the
 * server (src/console) and the page's script (src/console/client).
 */

/** One node, as the console shows it. */
export interface ConsoleNode {
  /** The node's process-unique id. */
  readonly id: string;
  /** The node's configured name. */
  readonly name: string;
  /** The role as the health API names it (`primary_master`, `secondary_master`, `master`, `coreapp`, `webapp`). */
  readonly role: string;
  /** False once its liveness record is older than `db_unhealthy_interval`. */
  readonly healthy: boolean;
  /** `host:port` other nodes reach it at ("" when it has none). */
  readonly address: string;
  /** Milliseconds since its last liveness record when the console last read the store, by the store's clock. */
  readonly lastSeenMs: number;
  /** The multiconnect version the node reports (null: a node too old to say). */
  readonly version: string | null;
  /** Coreapps: the shard it owns or is taking, and that ownership's epoch. */
  readonly shard: number | null;
  /** Coreapps: the epoch of that ownership (null without one). */
  readonly epoch: number | null;
  /** Coreapps: true while it serves its shard at the map's epoch (the health API's `connected`). */
  readonly serving: boolean;
  /** Coreapps: `node.nofailover` (never promoted automatically). */
  readonly nofailover: boolean;
}

/** One shard: its owner and epoch as this webapp routes to them (its in-memory map). */
export interface ConsoleShard {
  /** The shard number. */
  readonly shard: number;
  /** The owner's node id, or null. */
  readonly owner: string | null;
  /** The owner's name (null without an owner or before its record was read). */
  readonly ownerName: string | null;
  /** The epoch (fencing token) of that ownership; 0 for a shard never assigned. */
  readonly epoch: number;
  /** True when the owner reports serving this shard at this epoch. */
  readonly serving: boolean;
}

/** One history event, with the time the failover took when the evidence tells it. */
export interface ConsoleEvent {
  /** The event's sequence number (grows with every append). */
  readonly seq: number;
  /** When the store recorded it, ms since the Unix epoch. */
  readonly atMs: number;
  /** The event's type (`promoted`, `switchover`, `paused`, …). */
  readonly type: string;
  /** The shard, or null for a cluster-wide event. */
  readonly shard: number | null;
  /** Why, in a few words. */
  readonly cause: string;
  /** The facts behind the cause, as the primary master recorded them. */
  readonly evidence: Readonly<Record<string, unknown>>;
  /** The fencing epochs involved. */
  readonly epochs: Readonly<Record<string, number>>;
  /** The previous and the new owner's names, for a promotion or switchover (ids when unknown). */
  readonly from: string | null;
  /** The new owner's name (id when unknown), for a promotion or switchover. */
  readonly to: string | null;
  /**
   * For an automatic promotion: how long the old owner had been failing when the primary master
   * decided, by the deciding detector's evidence (heartbeat silence, liveness record age or time
   * not serving), to compare with the failover bound. Null for other events.
   */
  readonly detectedAfterMs: number | null;
}

/** A pause of automatic failover. */
export interface ConsolePause {
  /** The paused shard, or null for the whole cluster. */
  readonly shard: number | null;
  /** Who paused. */
  readonly by: string;
  /** Why. */
  readonly reason: string;
  /** When it began (ISO 8601). */
  readonly pausedAt: string;
  /** Milliseconds until it ends by itself, when read. */
  readonly endsInMs: number;
}

/** The cluster's live settings and pause state. */
export interface ConsoleSettings {
  /** The cluster document's version (0: none written; the config file's values). */
  readonly version: number;
  /** The settings in the config file's words, durations in ms. */
  readonly values: Readonly<Record<string, number>>;
  /** L1's failover bound for these settings (core/timing.ts). */
  readonly failoverBoundMs: number;
  /** The pauses of automatic failover in force. */
  readonly pauses: readonly ConsolePause[];
  /** Coreapps held out of automatic promotion after repeated failures. */
  readonly heldOut: readonly string[];
}

/** Everything the console shows. */
export interface ConsoleState {
  /** Who serves this console (a webapp's name, or `multiconnect console`). */
  readonly servedBy: string;
  /** The SDK version of the serving process. */
  readonly version: string;
  /** The cluster's shard count. */
  readonly shardCount: number;
  /** Whether this server has an admin token configured (actions can work at all). */
  readonly actionsEnabled: boolean;
  /** The primary master's id and master-lease epoch, or null while none holds the lease. */
  readonly primaryMaster: { readonly id: string; readonly epoch: number } | null;
  /** Every node with a liveness record. */
  readonly nodes: readonly ConsoleNode[];
  /** Every shard, 0 … shardCount − 1. */
  readonly shards: readonly ConsoleShard[];
  /** Names of the coreapps a failover or switchover could promote now (healthy, not owning, not held out, not nofailover). */
  readonly standbys: readonly string[];
  /** Settings and pauses (null until first read). */
  readonly settings: ConsoleSettings | null;
  /** The newest history events, newest first. */
  readonly history: readonly ConsoleEvent[];
  /** Why the last store read failed (the map stays live from memory), or null. */
  readonly storeError: string | null;
  /** When the server last read the store successfully, ms since the Unix epoch (0: never). */
  readonly readAtMs: number;
}

/** What changed: the top-level fields that changed, and only the shards that changed. */
export type ConsolePatch = Partial<Omit<ConsoleState, "shards">> & {
  /** The shards whose entry changed. */
  readonly shards?: readonly ConsoleShard[];
};
