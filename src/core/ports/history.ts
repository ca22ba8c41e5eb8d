import type { Lease } from "./leases.js";

/**
 * The failover history: what the control plane did and why — master elections, promotions,
 * demotions, switchovers, pauses, settings changes, removed nodes — kept in the store, bounded to
 * the newest N events (N from the adapter's `historyLimit`, default 1000).
 *
 * FENCED APPENDS. Only the primary master appends, and each append checks the master lease in the
 * same atomic store operation, as shard-map writes do. A deposed master's event could not break
 * safety, but history is what people read to explain a failover: an event from a master that was
 * no longer primary would describe a decision that never took effect (its shard-map write was
 * fenced) or interleave two masters' views. Fencing keeps history to what the primary of the time
 * did, at no extra cost. What a master can no longer say (that it lost its lease) its successor
 * records, with the cause, when it is elected.
 *
 * ORDER. Each event gets a sequence number from the store that only grows (also after a store lost
 * its data) and a timestamp from the store's clock (the writer's wall clock on stores declaring
 * `writerWallClock`). Sequence order is the order of the appends; timestamps are for people only.
 */

/**
 * Every kind of control-plane step an event can record. A pause that ends by itself is recorded by
 * the primary master as "resumed" with the cause saying so; "held_out" / "hold_cleared" are a
 * coreapp kept from promotion after repeated failures, and an operator clearing it.
 */
export const HISTORY_EVENT_TYPES = [
  "master_elected",
  "promoted",
  "demoted",
  "switchover",
  "paused",
  "resumed",
  "settings_changed",
  "shard_count_changed",
  "node_removed",
  "held_out",
  "hold_cleared",
] as const;

/** What kind of control-plane step an event records. */
export type HistoryEventType = (typeof HISTORY_EVENT_TYPES)[number];

/** An event as the primary master appends it. Its JSON form may be at most `HISTORY_EVENT_MAX_BYTES`. */
export interface HistoryEventInput {
  /** What kind of step it records. */
  readonly type: HistoryEventType;
  /** The shard concerned, or null for a cluster-wide event. */
  readonly shard: number | null;
  /** Why, in a few words ("unhealthy: no heartbeat answer", "operator switchover"). */
  readonly cause: string;
  /** The facts behind the cause, small and JSON-serialisable: `{ silenceMs: 31250, requestedBy: "ops" }`. */
  readonly evidence: Readonly<Record<string, unknown>>;
  /** The fencing epochs involved: `{ master: 7, shard: 12 }`. */
  readonly epochs: Readonly<Record<string, number>>;
  /** The node id of the master that appended it. */
  readonly node: string;
}

/** An event as stored. */
export interface HistoryEvent extends HistoryEventInput {
  /** Grows with every append; never reused. */
  readonly seq: number;
  /** When the store recorded it, ms since the Unix epoch. */
  readonly atMs: number;
}

/** The largest event, as JSON, that `append()` accepts. */
export const HISTORY_EVENT_MAX_BYTES = 8192;

/** What `list()` returns. */
export interface HistoryQuery {
  /** Only events of this shard (cluster-wide events are left out). Default: every event. */
  readonly shard?: number;
  /** At most this many events (default and cap: the store's bound). */
  readonly limit?: number;
  /** Only events with `seq` below this one: the next page after a page ending at `before`. */
  readonly before?: number;
}

/** The outcome of `append()`: a lost master lease is a value, not an exception. */
export type HistoryAppendResult =
  | {
      /** Appended. */
      readonly ok: true;
      /** The event as stored, with its sequence number and time. */
      readonly event: HistoryEvent;
    }
  | {
      /** Not appended. */
      readonly ok: false;
      /** The master lease was not held, live, by the given holder and epoch: nothing was written. */
      readonly reason: "fenced";
    };

/** The history's storage: what every adapter provides (contracts on each method). */
export interface HistoryStore {
  /**
   * Appends `event` if the master lease is held, live by the store's clock, by `master.holder` at
   * `master.epoch`, stamping it with a new sequence number and the store's time in the same atomic
   * operation; then drops events beyond the newest N (atomically with the append, or idempotently
   * right after it, so a crash in between leaves at most a few extra events that the next append
   * drops). Throws `RangeError` before any store access for an event that is malformed or larger
   * than `HISTORY_EVENT_MAX_BYTES`, and `StoreUnavailableError` (the event may or may not have been
   * stored).
   */
  append(event: HistoryEventInput, master: Lease): Promise<HistoryAppendResult>;

  /** Events newest first, filtered by `query`. Readable by any node. Throws `StoreUnavailableError`. */
  list(query?: HistoryQuery): Promise<HistoryEvent[]>;
}
