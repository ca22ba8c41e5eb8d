import { decodeHistoryEvent, encodeHistoryEvent, historyListLimit } from "../../core/control-records.js";
import type { HistoryAppendResult, HistoryEvent, HistoryEventInput, HistoryQuery, HistoryStore } from "../../core/ports/history.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { PgDb } from "./db.js";

interface EventRow {
  seq: string;
  at_ms: number;
  shard: number | null;
  body: string;
}

/**
 * The history table. An append is one transaction: an INSERT that takes the master lease row
 * `FOR SHARE` (fenced as shard-map writes are) and stamps `clock_timestamp()`, then the trim to the
 * newest `limit` rows.
 */
export class PostgresHistory implements HistoryStore {
  constructor(
    private readonly db: PgDb,
    private readonly limit: number,
  ) {}

  async append(event: HistoryEventInput, master: Lease): Promise<HistoryAppendResult> {
    const body = encodeHistoryEvent(event);
    const h = this.db.t("history");
    return this.db.transaction("history append", async (client) => {
      const r = await client.query<EventRow>(
        `WITH fence AS (
           SELECT 1 FROM ${this.db.t("leases")}
            WHERE name = $1 AND holder = $2 AND epoch = $3::bigint AND expires_at > clock_timestamp() FOR SHARE
         )
         INSERT INTO ${h} (at, shard, body) SELECT clock_timestamp(), $4::int, $5 FROM fence
         RETURNING seq, (extract(epoch FROM at) * 1000)::float8 AS at_ms, shard, body`,
        [MASTER_LEASE, master.holder, master.epoch, event.shard, body],
      );
      const row = r.rows[0];
      if (!row) return { ok: false, reason: "fenced" } as const;
      await client.query(`DELETE FROM ${h} WHERE seq <= (SELECT seq FROM ${h} ORDER BY seq DESC OFFSET $1 LIMIT 1)`, [this.limit]);
      return { ok: true, event: toEvent(row) } as const;
    });
  }

  async list(query: HistoryQuery = {}): Promise<HistoryEvent[]> {
    const limit = historyListLimit(query, this.limit);
    const r = await this.db.query<EventRow>(
      "history list",
      `SELECT seq, (extract(epoch FROM at) * 1000)::float8 AS at_ms, shard, body FROM ${this.db.t("history")}
        WHERE ($1::int IS NULL OR shard = $1::int) AND ($2::bigint IS NULL OR seq < $2::bigint)
        ORDER BY seq DESC LIMIT $3`,
      [query.shard ?? null, query.before ?? null, limit],
    );
    return r.rows.map(toEvent);
  }
}

function toEvent(row: EventRow): HistoryEvent {
  return decodeHistoryEvent(Number(row.seq), Math.round(row.at_ms), row.shard, row.body);
}
