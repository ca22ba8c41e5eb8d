import type { Clock } from "../../core/ports/clock.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { AssignResult, ShardAssignment, ShardMapStore, ShardMapWatch } from "../../core/ports/shard-map.js";
import { startDiffingWatch } from "../../core/shard-map-watch.js";
import type { PgDb } from "./db.js";
import type { PgListener } from "./listener.js";

interface ShardRow {
  shard: number;
  owner: string | null;
  epoch: string;
}

const toAssignment = (row: ShardRow): ShardAssignment => ({ shard: row.shard, owner: row.owner, epoch: Number(row.epoch) });

/**
 * The shard map, with change notifications over LISTEN/NOTIFY on the store's shared LISTEN
 * connection (`PgListener`).
 *
 * `assign()` is ONE statement, hence one atomic transaction: it locks the master lease row
 * `FOR SHARE` only if it is held, live by `clock_timestamp()`, by the given holder and epoch, and
 * writes the shard only if that lock was had and the shard's epoch is the expected one; the NOTIFY
 * is sent by the same statement, so it is delivered exactly when the write commits. `FOR SHARE`
 * (not `FOR KEY SHARE`) conflicts with the UPDATE that another master's `acquire()` would need, so
 * a new master cannot be elected while a deposed one's write is still in flight (safety S3).
 */
export class PostgresShardMap implements ShardMapStore {
  private readonly watches = new Set<ShardMapWatch>();

  constructor(
    private readonly db: PgDb,
    private readonly listener: PgListener,
    private readonly clock: Clock,
    private readonly resyncMs: number,
  ) {}

  async read(): Promise<ShardAssignment[]> {
    const r = await this.db.query<ShardRow>("read", `SELECT shard, owner, epoch FROM ${this.db.t("shards")} ORDER BY shard`);
    return r.rows.map(toAssignment);
  }

  async assign(shard: number, expectedEpoch: number, owner: string | null, master: Lease): Promise<AssignResult> {
    const s = this.db.t("shards");
    // A never-written shard is inserted; ON CONFLICT DO NOTHING makes concurrent first writers wait
    // for one another and all but one write nothing. A written shard is a conditional UPDATE, whose
    // WHERE is re-checked against a concurrent writer's committed row.
    const write =
      expectedEpoch === 0
        ? `INSERT INTO ${s} (shard, owner, epoch) SELECT $1::int, $2::text, $7::bigint + 1 FROM fence
           ON CONFLICT (shard) DO NOTHING RETURNING owner, epoch`
        : `UPDATE ${s} SET owner = $2::text, epoch = epoch + 1
            WHERE shard = $1::int AND epoch = $7::bigint AND EXISTS (SELECT 1 FROM fence) RETURNING owner, epoch`;
    // `n` must be referenced by the final SELECT: a plain SELECT in WITH runs only when read.
    const sql = `
      WITH fence AS (
        SELECT 1 FROM ${this.db.t("leases")}
         WHERE name = $6 AND holder = $3 AND epoch = $4::bigint AND expires_at > clock_timestamp()
         FOR SHARE
      ), w AS (${write}),
      n AS (SELECT pg_notify($5, $1::int::text) FROM w)
      SELECT EXISTS (SELECT 1 FROM fence) AS fence_ok, (SELECT count(*) FROM n) AS notified, w.owner, w.epoch
        FROM (VALUES (1)) AS one LEFT JOIN w ON true`;
    return this.db.withClient("assign", async (client) => {
      const r = await client.query<{ fence_ok: boolean; owner: string | null; epoch: string | null }>(sql, [
        shard,
        owner,
        master.holder,
        master.epoch,
        this.db.channel,
        MASTER_LEASE,
        expectedEpoch,
      ]);
      const row = r.rows[0];
      if (!row?.fence_ok) return { ok: false, reason: "fenced" } as const;
      if (row.epoch !== null) return { ok: true, assignment: { shard, owner: row.owner, epoch: Number(row.epoch) } } as const;
      // Conflict. Read again in a new statement: the first one's snapshot may predate the winner.
      const now = await client.query<ShardRow>(`SELECT shard, owner, epoch FROM ${s} WHERE shard = $1`, [shard]);
      const current = now.rows[0] ? toAssignment(now.rows[0]) : { shard, owner: null, epoch: 0 };
      return { ok: false, reason: "conflict", current } as const;
    });
  }

  async watch(onChange: (changed: ShardAssignment[]) => void, onError?: (error: unknown) => void): Promise<ShardMapWatch> {
    const inner = await startDiffingWatch({
      read: () => this.read(),
      // NOTIFY has no replay: after `lost()` the shared watcher subscribes again and re-reads.
      subscribe: (signal, lost) => this.listener.listen(this.db.channel, signal, lost),
      resyncMs: this.resyncMs,
      clock: this.clock,
      onChange,
      ...(onError ? { onError } : {}),
    });
    const handle: ShardMapWatch = {
      lookNow: () => inner.lookNow(),
      close: async () => {
        this.watches.delete(handle);
        await inner.close();
      },
    };
    this.watches.add(handle);
    return handle;
  }

  /** Closes every watch still open (the store is closing). */
  async closeWatches(): Promise<void> {
    await Promise.all([...this.watches].map((w) => w.close()));
  }
}
