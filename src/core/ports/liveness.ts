/**
 * Liveness: the node registry and the store-based failure detector's evidence.
 *
 * Every node upserts its record every `db_heartbeat_interval`; the store stamps it with its own
 * clock. `list()` reports each record's age measured by the store's clock, so no node ever compares
 * its wall clock with another's.
 */

import type { Lease } from "./leases.js";

/** The three roles a node can have. */
export type NodeRole = "master" | "coreapp" | "webapp";

/** What a node says about itself. `id` is unique per process (name + a random suffix). */
export interface NodeRecord {
  /** The node's process-unique id. */
  readonly id: string;
  /** The stable name from the node's configuration, for people. */
  readonly name: string;
  /** The node's role. */
  readonly role: NodeRole;
  /** `host:port` where other nodes reach this node's transport listener ("" if it has none). */
  readonly address: string;
  /** Small role-specific facts (a coreapp's serving shard, a master's heartbeat view); JSON. */
  readonly meta: Readonly<Record<string, unknown>>;
  /**
   * Orders one process's beats: each carries a higher `seq` than the one before, and the store
   * writes a record only over one with a lower `seq` (or none). A beat that reaches the store after
   * a later one — it timed out, and the store applied it late — then changes nothing: the record
   * never goes back to what the node said before (its failsafe promises rest on that; see
   * docs/safety.md, "Failsafe"). Absent, the record is written whatever the store holds.
   */
  readonly seq?: number;
}

/**
 * A record as the store holds it: what the node's last accepted `beat()` said, `seq` included
 * (absent when that beat had none), and its age. The pair (`id`, `seq`) names one beat, since ids
 * are unique per process: a reader that sees the same pair again is looking at the same record.
 */
export interface NodeStatus extends NodeRecord {
  /** Milliseconds since the node's last `beat()`, by the store's clock. */
  readonly ageMs: number;
}

/** Each node's liveness record, with its age by the store's clock. One implementation per backend. */
export interface LivenessStore {
  /**
   * Upserts `record` with "last seen" = the store's now, unless the store holds a record of the same
   * id with a `seq` at least as high (then nothing changes, and it resolves all the same). Throws
   * `StoreUnavailableError`.
   */
  beat(record: NodeRecord): Promise<void>;

  /** Every registered node with its age, ordered by id. Throws `StoreUnavailableError`. */
  list(): Promise<NodeStatus[]>;

  /** Deletes a node's record (a graceful leave, or a supervisor's release of a dead child's). Idempotent. */
  remove(id: string): Promise<void>;

  /**
   * Deletes a node's record on the primary master's decision (pruning, `forget`), in one atomic
   * step with two checks: that `master` is still the live master lease (fenced like
   * `ShardMapStore.assign`), and, given `seq`, that the record still holds the beat `seq` — the one
   * the decision was made on. Returns "removed" when the record is gone (also when there was none),
   * and, deleting nothing, "fenced" when `master` is not live (whatever the record holds), or
   * "superseded" when the record holds another beat (a later one, or one without a `seq`).
   * Without `seq` the record is removed whatever beat it holds.
   *
   * Why both: without the fence, a removal that a deposed master sent could land after the next
   * primary master promoted the node, which would then own a shard with no record; without the
   * `seq`, a removal the store did not answer could land after this master promoted the node
   * (`ShardManager.removeRecord` holds the node back until its record shows a later beat, after
   * which the removal cannot land). Throws `StoreUnavailableError`.
   */
  removeFenced(id: string, master: Lease, seq?: number): Promise<RemovalOutcome>;
}

/** What `LivenessStore.removeFenced` did. */
export type RemovalOutcome = "removed" | "fenced" | "superseded";
