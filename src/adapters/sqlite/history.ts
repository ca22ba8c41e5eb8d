import { decodeHistoryEvent, encodeHistoryEvent, historyListLimit } from "../../core/control-records.js";
import type { HistoryAppendResult, HistoryEvent, HistoryEventInput, HistoryQuery, HistoryStore } from "../../core/ports/history.js";
import type { Lease } from "../../core/ports/leases.js";
import type { SqliteDb } from "./db.js";

interface EventRow {
  seq: number;
  at_ms: number;
  shard: number | null;
  body: string;
}

/**
 * The history table. An append is one `BEGIN IMMEDIATE` transaction: the master-lease fence, the
 * insert (AUTOINCREMENT: sequence numbers are never reused) and the trim to the newest `limit` rows.
 * Times are this machine's wall clock, the store's machine's.
 */
export class SqliteHistory implements HistoryStore {
  constructor(
    private readonly db: SqliteDb,
    private readonly limit: number,
  ) {}

  async append(event: HistoryEventInput, master: Lease): Promise<HistoryAppendResult> {
    const body = encodeHistoryEvent(event);
    const h = `${this.db.p}history`;
    const written = await this.db.writeAsMaster(master, (sql) => {
      const atMs = Date.now();
      const r = sql.prepare(`INSERT INTO ${h} (at_ms, shard, body) VALUES (?, ?, ?)`).run(atMs, event.shard, body);
      sql.prepare(`DELETE FROM ${h} WHERE seq <= (SELECT seq FROM ${h} ORDER BY seq DESC LIMIT 1 OFFSET ?)`).run(this.limit);
      return { ok: true, event: decodeHistoryEvent(Number(r.lastInsertRowid), atMs, event.shard, body) } as const;
    });
    return written === "fenced" ? { ok: false, reason: "fenced" } : written;
  }

  async list(query: HistoryQuery = {}): Promise<HistoryEvent[]> {
    const limit = historyListLimit(query, this.limit);
    return this.db.read((sql) => {
      const rows = sql
        .prepare(
          `SELECT seq, at_ms, shard, body FROM ${this.db.p}history
            WHERE (? IS NULL OR shard = ?) AND (? IS NULL OR seq < ?) ORDER BY seq DESC LIMIT ?`,
        )
        .all(query.shard ?? null, query.shard ?? null, query.before ?? null, query.before ?? null, limit) as EventRow[];
      return rows.map((r) => decodeHistoryEvent(r.seq, r.at_ms, r.shard, r.body));
    });
  }
}
