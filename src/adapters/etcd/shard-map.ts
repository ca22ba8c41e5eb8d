import type { Clock } from "../../core/ports/clock.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { AssignResult, ShardAssignment, ShardMapStore, ShardMapWatch } from "../../core/ports/shard-map.js";
import { startDiffingWatch } from "../../core/shard-map-watch.js";
import type { Kv } from "./client-types.js";
import type { EtcdClient } from "./client.js";
import type { EtcdKeys } from "./keys.js";

/**
 * A watcher re-reads the map at least this often even when etcd's watch is silent, which bounds how
 * long a watch stream that died without an error (a half-open connection) can hide a change.
 */
export const ETCD_RESYNC_MS = 2000;

/**
 * The shard map: one key per shard, `shards/<n>` = {"owner", "epoch"}, never attached to a lease and
 * never deleted.
 *
 * The epoch is the key's etcd `version` (the number of puts since it was created; 0 while absent).
 * Every write of a shard key is an `assign()` that compares `version == expectedEpoch` and puts once,
 * so the new version is exactly `expectedEpoch + 1` and the epoch stored in the value (kept for
 * people reading etcd) always equals it. Comparing the version is comparing the epoch, in the same
 * txn that checks the master lease's key: its value is the holder and its create_revision the
 * master's epoch, and it exists only while that etcd lease is live (safety S3). Like a SQL row, a
 * shard key deleted by hand would restart its epochs; nothing in the SDK deletes one.
 *
 * `watch()` is the shared diffing watcher over an etcd watch of the `shards/` prefix: any event
 * signals a re-read, a broken stream is reported as lost and the watcher resubscribes and resyncs.
 */
export class EtcdShardMap implements ShardMapStore {
  constructor(
    private readonly client: EtcdClient,
    private readonly keys: EtcdKeys,
    private readonly clock: Clock,
  ) {}

  async read(): Promise<ShardAssignment[]> {
    const kvs = await this.client.range(this.keys.shards, true, this.client.deadline());
    return kvs
      .map((kv) => this.toAssignment(kv))
      .filter((a): a is ShardAssignment => a !== null)
      .sort((x, y) => x.shard - y.shard);
  }

  async assign(shard: number, expectedEpoch: number, owner: string | null, master: Lease): Promise<AssignResult> {
    const masterKey = this.keys.lease(MASTER_LEASE);
    const key = this.keys.shard(shard);
    const epoch = expectedEpoch + 1;
    const r = await this.client.txn(
      [
        { key: masterKey, target: "value", equals: master.holder },
        { key: masterKey, target: "create", equals: master.epoch },
        { key, target: "version", equals: expectedEpoch },
      ],
      [{ put: { key, value: JSON.stringify({ owner, epoch }) } }],
      [{ range: masterKey }, { range: key }],
      this.client.deadline(),
    );
    if (r.succeeded) return { ok: true, assignment: { shard, owner, epoch } };
    // The failure branch read both keys in the same atomic step: say which compare failed.
    const held = r.results[0]?.[0];
    if (!held || held.value !== master.holder || held.createRevision !== master.epoch) return { ok: false, reason: "fenced" };
    const current = r.results[1]?.[0];
    return {
      ok: false,
      reason: "conflict",
      current: (current && this.toAssignment(current)) ?? { shard, owner: null, epoch: 0 },
    };
  }

  async watch(onChange: (changed: ShardAssignment[]) => void, onError?: (error: unknown) => void): Promise<ShardMapWatch> {
    return startDiffingWatch({
      read: () => this.read(),
      subscribe: (signal, lost) => this.client.watchPrefix(this.keys.shards, { events: signal, lost }, this.client.deadline()),
      resyncMs: ETCD_RESYNC_MS,
      clock: this.clock,
      onChange,
      onError,
    });
  }

  /** Breaks this handle's watch streams as a dropped connection would; watchers resync. For tests and drills. */
  interruptWatches(): void {
    this.client.interruptWatches();
  }

  private toAssignment(kv: Kv): ShardAssignment | null {
    const shard = this.keys.shardOf(kv.key);
    if (shard === null) return null;
    let owner: string | null = null;
    try {
      const parsed = JSON.parse(kv.value) as { owner?: unknown };
      owner = typeof parsed.owner === "string" ? parsed.owner : null;
    } catch {
      // Not written by this SDK: report the shard as unowned rather than fail every reader.
    }
    return { shard, owner, epoch: kv.version };
  }
}
