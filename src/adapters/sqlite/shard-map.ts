import type { Clock } from "../../core/ports/clock.js";
import type { Lease } from "../../core/ports/leases.js";
import type { AssignResult, ShardAssignment, ShardMapStore, ShardMapWatch } from "../../core/ports/shard-map.js";
import { startDiffingWatch } from "../../core/shard-map-watch.js";
import type { SqliteDb } from "./db.js";

/**
 * The shard map. SQLite has no push notifications; a watcher polls `PRAGMA data_version` on its own
 * connection (a few µs, and it changes on every other connection's commit) every `pollMs` and
 * re-reads the map when it moved.
 */
export class SqliteShardMap implements ShardMapStore {
  constructor(
    private readonly db: SqliteDb,
    private readonly clock: Clock,
    private readonly pollMs: number,
  ) {}

  async read(): Promise<ShardAssignment[]> {
    return this.db.read((sql) => this.readWith(sql));
  }

  private readWith(sql: import("better-sqlite3").Database): ShardAssignment[] {
    return sql.prepare(`SELECT shard, owner, epoch FROM ${this.db.p}shards ORDER BY shard`).all() as ShardAssignment[];
  }

  async assign(shard: number, expectedEpoch: number, owner: string | null, master: Lease): Promise<AssignResult> {
    const written = await this.db.writeAsMaster(master, (sql) => {
      const current = (sql.prepare(`SELECT shard, owner, epoch FROM ${this.db.p}shards WHERE shard = ?`).get(shard) as
        ShardAssignment | undefined) ?? { shard, owner: null, epoch: 0 };
      if (current.epoch !== expectedEpoch) return { ok: false, reason: "conflict", current } as const;
      const assignment = { shard, owner, epoch: expectedEpoch + 1 };
      sql
        .prepare(
          `INSERT INTO ${this.db.p}shards (shard, owner, epoch) VALUES (?, ?, ?)
           ON CONFLICT(shard) DO UPDATE SET owner = excluded.owner, epoch = excluded.epoch`,
        )
        .run(shard, owner, assignment.epoch);
      return { ok: true, assignment } as const;
    });
    return written === "fenced" ? { ok: false, reason: "fenced" } : written;
  }

  async watch(onChange: (changed: ShardAssignment[]) => void, onError?: (error: unknown) => void): Promise<ShardMapWatch> {
    const conn = this.db.openSecondConnection();
    let lastVersion = -1;
    let timer: NodeJS.Timeout | undefined;
    const watch = await startDiffingWatch({
      read: async () => this.db.guard(() => this.readWith(conn)),
      subscribe: async (signal, lost) => {
        timer = setInterval(() => {
          try {
            const version = conn.pragma("data_version", { simple: true }) as number;
            if (version !== lastVersion) {
              lastVersion = version;
              signal();
            }
          } catch (error) {
            lost(error);
          }
        }, this.pollMs);
        timer.unref();
        return async () => clearInterval(timer);
      },
      resyncMs: Math.max(1000, this.pollMs * 10),
      clock: this.clock,
      onChange,
      onError,
    });
    return {
      lookNow: () => watch.lookNow(),
      async close() {
        await watch.close();
        clearInterval(timer);
        conn.close();
      },
    };
  }
}
