import type { Clock } from "../../core/ports/clock.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { AssignResult, ShardAssignment, ShardMapStore, ShardMapWatch } from "../../core/ports/shard-map.js";
import { startDiffingWatch } from "../../core/shard-map-watch.js";
import { NOW, UNEXPLAINED_RETRIES, type MysqlDb } from "./db.js";

interface ShardRow {
  shard: number;
  owner: string | null;
  epoch: number;
}

interface WhyRow {
  fence_ok: number;
  owner: string | null;
  epoch: number | null;
}

/**
 * The shard map, one row per shard.
 *
 * `assign()` is a single multi-table `UPDATE` that joins the shard row with the master lease row:
 * the shard's epoch, the master's holder and epoch, and the lease's liveness by the server's clock
 * are checked by the statement that writes. InnoDB takes a shared lock on the lease row it reads
 * (also in READ COMMITTED), so a takeover of the master lease is ordered entirely before or after
 * the write, and no lock outlives the statement.
 *
 * MySQL pushes no change notifications, so a watcher simply re-reads the map every poll interval:
 * the map has at most a few dozen rows, a primary-key range scan as cheap as polling a version row.
 */
export class MysqlShardMap implements ShardMapStore {
  private readonly watches = new Set<ShardMapWatch>();

  constructor(
    private readonly db: MysqlDb,
    private readonly clock: Clock,
    private readonly pollMs: number,
  ) {}

  async read(): Promise<ShardAssignment[]> {
    const p = this.db.p;
    const rows = await this.db.run((sql) =>
      sql<ShardRow[]>(`SELECT shard, CONVERT(owner USING utf8mb4) AS owner, epoch FROM ${p}shards WHERE epoch > 0 ORDER BY shard`),
    );
    return rows.map((r) => ({ shard: Number(r.shard), owner: r.owner, epoch: Number(r.epoch) }));
  }

  async assign(shard: number, expectedEpoch: number, owner: string | null, master: Lease): Promise<AssignResult> {
    const p = this.db.p;
    return this.db.run(async (sql) => {
      for (let attempt = 0; ; attempt++) {
        if (expectedEpoch === 0) {
          // The compare-and-set below updates an existing row; a placeholder (epoch 0, invisible to
          // read()) makes "never written" one. IGNORE: another writer may have inserted it first.
          await sql(`INSERT IGNORE INTO ${p}shards (shard, owner, epoch) VALUES (?, NULL, 0)`, [shard]);
        }
        const r = await sql<{ affectedRows: number }>(
          `UPDATE ${p}shards AS s
             JOIN ${p}leases AS l
               ON l.name = ? AND l.holder = ? AND l.epoch = ? AND l.expires_at > ${NOW}
           SET s.owner = ?, s.epoch = s.epoch + 1
           WHERE s.shard = ? AND s.epoch = ?`,
          [MASTER_LEASE, master.holder, master.epoch, owner, shard, expectedEpoch],
        );
        if (r.affectedRows === 1) return { ok: true, assignment: { shard, owner, epoch: expectedEpoch + 1 } } as const;

        // Nothing was written; say why. A lapsed or superseded master lease never becomes live
        // again at the same epoch, and a shard epoch never goes back, so this later read tells.
        const [why] = await sql<WhyRow[]>(
          `SELECT
             EXISTS(SELECT 1 FROM ${p}leases
                    WHERE name = ? AND holder = ? AND epoch = ? AND expires_at > ${NOW}) AS fence_ok,
             (SELECT CONVERT(owner USING utf8mb4) FROM ${p}shards WHERE shard = ?) AS owner,
             (SELECT epoch FROM ${p}shards WHERE shard = ?) AS epoch`,
          [MASTER_LEASE, master.holder, master.epoch, shard, shard],
        );
        if (!why?.fence_ok) return { ok: false, reason: "fenced" } as const;
        const epoch = Number(why.epoch ?? 0);
        const current: ShardAssignment = { shard, owner: epoch > 0 ? why.owner : null, epoch };
        if (epoch !== expectedEpoch || attempt >= UNEXPLAINED_RETRIES) {
          return { ok: false, reason: "conflict", current } as const;
        }
      }
    });
  }

  /**
   * Polls: `startDiffingWatch` re-reads every `resyncMs`, which is the poll interval here, and
   * delivers only entries whose epoch grew. A failed read goes to `onError` and is retried.
   */
  async watch(onChange: (changed: ShardAssignment[]) => void, onError?: (error: unknown) => void): Promise<ShardMapWatch> {
    const inner = await startDiffingWatch({
      read: () => this.read(),
      resyncMs: this.pollMs,
      clock: this.clock,
      onChange,
      onError,
    });
    const watches = this.watches;
    const watch: ShardMapWatch = {
      lookNow: () => inner.lookNow(),
      async close() {
        watches.delete(watch);
        await inner.close();
      },
    };
    watches.add(watch);
    return watch;
  }

  /** Stops every watcher still running (the store is closing). */
  async closeWatches(): Promise<void> {
    await Promise.all([...this.watches].map((w) => w.close()));
  }
}
