import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { LivenessStore, NodeRecord, NodeRole, NodeStatus, RemovalOutcome } from "../../core/ports/liveness.js";
import type { Compare, Deadline, Kv } from "./client-types.js";
import type { EtcdClient } from "./client.js";
import type { EtcdKeys } from "./keys.js";

/**
 * TTL of the etcd lease each `beat()` attaches a node record to: 24 h. It is the clock ages are
 * read from, and the bound after which a silent node's record disappears by itself; it must exceed
 * every `db_unhealthy_interval` anyone configures (a record older than that is already unhealthy).
 */
export const NODE_RECORD_TTL_S = 24 * 60 * 60;

/** The resolution of the ages `list()` reports: etcd reports a lease's remaining TTL in whole seconds. */
export const ETCD_AGE_RESOLUTION_MS = 1000;

/**
 * Node records, aged by etcd's clock.
 *
 * etcd has no "now" query and stores no timestamps, and the client's clock must not be trusted, so
 * the age is read off an etcd lease: every `beat()` grants a fresh lease of NODE_RECORD_TTL_S and
 * puts the record on it (revoking the previous one), so the lease's remaining TTL counts down from
 * the beat by the etcd leader's clock, and age = granted TTL − remaining TTL.
 *
 * Resolution is one second: etcd reports the remaining TTL truncated to whole seconds, so the true
 * age lies in (G − TTL − 1, G − TTL] s. `list()` reports the lower end, (G − TTL − 1) s: an age
 * that is never overstated, so the store-based detector can be late by under a second but never
 * declares a live node dead early (L2). A record beaten 0.4 s ago reads as 0 ms, one beaten 1.4 s
 * ago as 0 or 1000 ms. No sub-second server-side time exists in etcd 3.4 to do better.
 *
 * After an etcd restart or leader change etcd gives every lease its full TTL back, so every age
 * `list()` reports restarts from 0: never hastened. (A master's view also counts how long it has
 * shown the same beat of a record, src/core/master/cluster-view.ts, and keeps counting through
 * that: a lower bound of the age as well.)
 */
export class EtcdLiveness implements LivenessStore {
  constructor(
    private readonly client: EtcdClient,
    private readonly keys: EtcdKeys,
  ) {}

  async beat(record: NodeRecord): Promise<void> {
    const d = this.client.deadline();
    const key = this.keys.node(record.id);
    const value = JSON.stringify({
      id: record.id,
      name: record.name,
      role: record.role,
      address: record.address,
      meta: record.meta,
      seq: record.seq,
    });
    const lease = await this.client.grant(NODE_RECORD_TTL_S, d);
    let previous: Kv | null | "older";
    try {
      previous =
        record.seq === undefined
          ? await this.client.put(key, value, lease.id, d)
          : await this.putIfNewer(key, value, record.seq, lease.id, d);
    } catch (error) {
      this.revokeQuietly(lease.id); // the put may have landed; then the record goes, and the next beat restores it
      throw error;
    }
    if (previous === "older") return this.revokeQuietly(lease.id);
    // The record has moved to the new lease, so revoking the old one deletes nothing.
    if (previous && previous.lease !== lease.id) this.revokeQuietly(previous.lease);
  }

  /**
   * Puts `value` unless the record held has a `seq` at least `seq` ("older": nothing written);
   * returns the pair it replaced. etcd compares no field inside a value, so the put is a
   * compare-and-set on the key's revision as read: one that fails means a write landed in between
   * (a late beat of ours, or a removal), and the record is read again.
   */
  private async putIfNewer(key: string, value: string, seq: number, lease: string, d: Deadline): Promise<Kv | null | "older"> {
    for (;;) {
      const held = await this.client.get(key, d);
      const heldSeq = held ? parseSeq(held.value) : undefined;
      if (heldSeq !== undefined && heldSeq >= seq) return "older";
      const r = await this.client.txn([{ key, target: "mod", equals: held?.modRevision ?? 0 }], [{ put: { key, value, lease } }], [], d);
      if (r.succeeded) return held;
    }
  }

  async list(): Promise<NodeStatus[]> {
    const d = this.client.deadline();
    const kvs = await this.client.range(this.keys.nodes, true, d);
    const statuses = await Promise.all(kvs.map((kv) => this.status(kv, d)));
    return statuses.filter((s): s is NodeStatus => s !== null).sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  }

  async remove(id: string): Promise<void> {
    await this.removeIf(id, [], this.client.deadline());
  }

  /**
   * One txn guarded by the master key's value and create revision and, given `seq`, by the
   * record's revision as read (etcd compares no field inside a value): a failed txn whose master
   * key still matches means a beat landed since the read, and the record is read again.
   */
  async removeFenced(id: string, master: Lease, seq?: number): Promise<RemovalOutcome> {
    const d = this.client.deadline();
    const key = this.keys.node(id);
    const masterKey = this.keys.lease(MASTER_LEASE);
    const fence: Compare[] = [
      { key: masterKey, target: "value", equals: master.holder },
      { key: masterKey, target: "create", equals: master.epoch },
    ];
    const fenceHolds = async () => (await this.client.txn(fence, [], [], d)).succeeded;
    for (;;) {
      const held = seq === undefined ? undefined : await this.client.get(key, d);
      if (held && parseSeq(held.value) !== seq) return (await fenceHolds()) ? "superseded" : "fenced";
      const beat: Compare[] = held === undefined ? [] : [{ key, target: "mod", equals: held?.modRevision ?? 0 }];
      if (await this.removeIf(id, [...fence, ...beat], d)) return "removed";
      if (beat.length === 0 || !(await fenceHolds())) return "fenced";
    }
  }

  /** Deletes the record in one txn guarded by `compares` (false: they failed), then revokes its etcd lease. */
  private async removeIf(id: string, compares: Compare[], d: Deadline): Promise<boolean> {
    const key = this.keys.node(id);
    const r = await this.client.txn(compares, [{ range: key }, { delete: key }], [], d);
    const kv = r.succeeded ? r.results[0]?.[0] : undefined;
    if (kv) this.revokeQuietly(kv.lease);
    return r.succeeded;
  }

  /** One record with its age; a record whose lease vanished under us is read again once. */
  private async status(kv: Kv, d: Deadline, again = true): Promise<NodeStatus | null> {
    const ttl = kv.lease === "0" ? null : await this.client.timeToLive(kv.lease, d);
    if (!ttl) {
      // A concurrent beat moved the record to a new lease and revoked this one, or it expired and
      // the record is gone: the key itself says which.
      const fresh = again ? await this.client.get(kv.key, d) : null;
      return fresh && fresh.lease !== kv.lease ? this.status(fresh, d, false) : null;
    }
    const ageS = Math.max(0, ttl.grantedS - ttl.ttlS - 1);
    const r = parseRecord(kv.value);
    return r && { ...r, ageMs: ageS * 1000 };
  }

  private revokeQuietly(lease: string): void {
    if (lease === "0") return;
    this.client.revoke(lease, this.client.deadline()).catch(() => {}); // it expires by its TTL otherwise
  }
}

/** The `seq` of a stored record, if it has one. */
function parseSeq(value: string): number | undefined {
  try {
    const seq = (JSON.parse(value) as { seq?: unknown }).seq;
    return typeof seq === "number" ? seq : undefined;
  } catch {
    return undefined;
  }
}

/** A record as stored, or null for a value this SDK did not write. */
function parseRecord(value: string): NodeRecord | null {
  try {
    const r = JSON.parse(value) as Partial<Record<keyof NodeRecord, unknown>>;
    if (typeof r.id !== "string" || typeof r.name !== "string" || typeof r.role !== "string") return null;
    return {
      id: r.id,
      name: r.name,
      role: r.role as NodeRole,
      address: typeof r.address === "string" ? r.address : "",
      meta: r.meta !== null && typeof r.meta === "object" ? (r.meta as Record<string, unknown>) : {},
      ...(typeof r.seq === "number" ? { seq: r.seq } : {}),
    };
  } catch {
    return null;
  }
}
