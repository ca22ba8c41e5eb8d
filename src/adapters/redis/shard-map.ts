import type { Clock } from "../../core/ports/clock.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { AssignResult, ShardAssignment, ShardMapStore, ShardMapWatch } from "../../core/ports/shard-map.js";
import { startDiffingWatch } from "../../core/shard-map-watch.js";
import type { RedisConnection } from "./connection.js";
import { parseEpoch } from "./leases.js";
import { ASSIGN, type NamespaceKeys } from "./scripts.js";
import type { RedisSubscriber } from "./subscriber.js";

/**
 * The shard map as one hash `{prefix}shards`: field = shard number, value = "epoch" (no owner) or
 * "epoch|owner" (the epoch is digits only, so the first "|" splits even an owner containing one).
 *
 * `assign()` is one Lua script that checks the master lease (holder, epoch, and liveness: an
 * expired key does not exist) and the shard's epoch together, writes, and PUBLISHes on the
 * namespace's channel in the same atomic step. Watchers subscribe on the store's shared
 * subscriber connection (`RedisSubscriber`); pub/sub does not replay what was published while
 * disconnected, so a lost subscriber connection is reported to the shared diffing watch, which
 * subscribes again and re-reads.
 */
export class RedisShardMap implements ShardMapStore {
  private readonly watches = new Set<ShardMapWatch>();

  constructor(
    private readonly conn: RedisConnection,
    private readonly subscriber: RedisSubscriber,
    private readonly keys: NamespaceKeys,
    private readonly clock: Clock,
    private readonly resyncMs: number,
  ) {}

  async read(): Promise<ShardAssignment[]> {
    const all = await this.conn.run((c) => c.hgetall(this.keys.shards));
    return Object.entries(all)
      .map(([shard, entry]) => parseEntry(Number(shard), entry))
      .sort((a, b) => a.shard - b.shard);
  }

  async assign(shard: number, expectedEpoch: number, owner: string | null, master: Lease): Promise<AssignResult> {
    if (!Number.isSafeInteger(shard) || shard < 0) throw new RangeError(`redis: shard must be a whole number ≥ 0, got ${shard}`);
    if (!Number.isSafeInteger(expectedEpoch) || expectedEpoch < 0) {
      throw new RangeError(`redis: expectedEpoch must be a whole number ≥ 0, got ${expectedEpoch}`);
    }
    const reply = (await this.conn.eval(
      ASSIGN,
      [this.keys.lease(MASTER_LEASE), this.keys.shards, this.keys.shardEpoch(shard)],
      [
        String(shard),
        String(expectedEpoch),
        owner === null ? "0" : "1",
        owner ?? "",
        master.holder,
        String(master.epoch),
        this.keys.channel,
      ],
    )) as [string, string?];
    const [outcome, entry] = reply;
    if (outcome === "fenced") return { ok: false, reason: "fenced" };
    if (outcome === "conflict") {
      return { ok: false, reason: "conflict", current: entry ? parseEntry(shard, entry) : { shard, owner: null, epoch: 0 } };
    }
    if (outcome === "ok" && entry) return { ok: true, assignment: parseEntry(shard, entry) };
    throw new Error(`redis: unexpected reply from the assign script: ${JSON.stringify(reply)}`);
  }

  async watch(onChange: (changed: ShardAssignment[]) => void, onError?: (error: unknown) => void): Promise<ShardMapWatch> {
    const inner = await startDiffingWatch({
      read: () => this.read(),
      subscribe: (signal, lost) => this.subscriber.subscribe(this.keys.channel, signal, lost),
      resyncMs: this.resyncMs,
      clock: this.clock,
      onChange,
      onError,
    });
    const watch: ShardMapWatch = {
      lookNow: () => inner.lookNow(),
      close: async () => {
        this.watches.delete(watch);
        await inner.close();
      },
    };
    this.watches.add(watch);
    return watch;
  }

  /** Closes every watch still open (the store is closing). */
  async closeWatches(): Promise<void> {
    await Promise.all([...this.watches].map((w) => w.close()));
  }
}

/** One hash value as an assignment: "epoch" or "epoch|owner". */
function parseEntry(shard: number, entry: string): ShardAssignment {
  const bar = entry.indexOf("|");
  if (bar < 0) return { shard, owner: null, epoch: parseEpoch(entry) };
  return { shard, owner: entry.slice(bar + 1), epoch: parseEpoch(entry.slice(0, bar)) };
}
