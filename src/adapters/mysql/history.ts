import { decodeHistoryEvent, encodeHistoryEvent, historyListLimit } from "../../core/control-records.js";
import type { HistoryAppendResult, HistoryEvent, HistoryEventInput, HistoryQuery, HistoryStore } from "../../core/ports/history.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import { NOW, type MysqlDb } from "./db.js";

interface EventRow {
  seq: number;
  at_us: number;
  shard: number | null;
  body: string;
}

const SELECT = `SELECT seq, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', at) AS at_us, shard, CONVERT(body USING utf8mb4) AS body`;

/**
 * The history table. An append is one `INSERT … SELECT` from the master lease row read with a
 * shared lock (`LOCK IN SHARE MODE`: in READ COMMITTED a plain INSERT … SELECT would read it
 * without one), stamped with the server's clock; then, idempotently, the rows beyond the newest
 * `limit` are deleted (two statements: MySQL cannot delete from a table it selects from).
 */
export class MysqlHistory implements HistoryStore {
  constructor(
    private readonly db: MysqlDb,
    private readonly limit: number,
  ) {}

  async append(event: HistoryEventInput, master: Lease): Promise<HistoryAppendResult> {
    const body = encodeHistoryEvent(event);
    const h = `${this.db.p}history`;
    return this.db.run(async (sql) => {
      const r = await sql<{ affectedRows: number; insertId: number }>(
        `INSERT INTO ${h} (at, shard, body)
         SELECT ${NOW}, ?, ? FROM ${this.db.p}leases
          WHERE name = ? AND holder = ? AND epoch = ? AND expires_at > ${NOW} LOCK IN SHARE MODE`,
        [event.shard, body, MASTER_LEASE, master.holder, master.epoch],
      );
      if (r.affectedRows !== 1) return { ok: false, reason: "fenced" } as const;
      const [row] = await sql<EventRow[]>(`${SELECT} FROM ${h} WHERE seq = ?`, [r.insertId]);
      const [cut] = await sql<{ seq: number }[]>(`SELECT seq FROM ${h} ORDER BY seq DESC LIMIT 1 OFFSET ?`, [this.limit]);
      if (cut) await sql(`DELETE FROM ${h} WHERE seq <= ?`, [cut.seq]);
      return { ok: true, event: toEvent(row!) } as const;
    });
  }

  async list(query: HistoryQuery = {}): Promise<HistoryEvent[]> {
    const limit = historyListLimit(query, this.limit);
    const rows = await this.db.run((sql) =>
      sql<EventRow[]>(
        `${SELECT} FROM ${this.db.p}history
          WHERE (? IS NULL OR shard = ?) AND (? IS NULL OR seq < ?) ORDER BY seq DESC LIMIT ?`,
        [query.shard ?? null, query.shard ?? null, query.before ?? null, query.before ?? null, limit],
      ),
    );
    return rows.map(toEvent);
  }
}

function toEvent(row: EventRow): HistoryEvent {
  return decodeHistoryEvent(Number(row.seq), Math.round(Number(row.at_us) / 1000), row.shard === null ? null : Number(row.shard), row.body);
}
