import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { LivenessStore, NodeRecord, NodeRole, NodeStatus, RemovalOutcome } from "../../core/ports/liveness.js";
import { givenMetaAndSeq, SEQ_KEY, storedMeta } from "../sql-record-seq.js";
import { NOW, UNEXPLAINED_RETRIES, type MysqlDb } from "./db.js";

interface NodeRow {
  id: string;
  name: string;
  role: NodeRole;
  address: string;
  meta: string;
  /** Microseconds since the last beat, by the server's clock. */
  age_us: number;
}

/**
 * Node records. The server stamps each beat with its own `UTC_TIMESTAMP(6)` and computes ages in
 * `list()`, so no node's wall clock is ever written or compared.
 */
export class MysqlLiveness implements LivenessStore {
  constructor(private readonly db: MysqlDb) {}

  /**
   * One upsert; the parameters are repeated instead of `VALUES(col)`, which MySQL 8 deprecates.
   * Each column is set only when the row's stored `seq` is lower (`newer`), and `meta`, which
   * holds it, is set last: MySQL applies the assignments left to right, and a later one sees the
   * values the earlier ones wrote.
   */
  async beat(r: NodeRecord): Promise<void> {
    const p = this.db.p;
    const meta = storedMeta(r);
    const seq = r.seq ?? null;
    const newer = `(? IS NULL OR COALESCE(CAST(JSON_EXTRACT(meta, '$.${SEQ_KEY}') AS SIGNED), -1) < ?)`;
    const ifNewer = (value: unknown) => [seq, seq, value];
    await this.db.run((sql) =>
      sql(
        `INSERT INTO ${p}nodes (id, name, role, address, meta, seen_at)
         VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6))
         ON DUPLICATE KEY UPDATE name = IF(${newer}, ?, name), role = IF(${newer}, ?, role),
           address = IF(${newer}, ?, address), seen_at = IF(${newer}, UTC_TIMESTAMP(6), seen_at),
           meta = IF(${newer}, ?, meta)`,
        [r.id, r.name, r.role, r.address, meta, ...ifNewer(r.name), ...ifNewer(r.role), ...ifNewer(r.address), seq, seq, ...ifNewer(meta)],
      ),
    );
  }

  async list(): Promise<NodeStatus[]> {
    const p = this.db.p;
    const rows = await this.db.run((sql) =>
      sql<NodeRow[]>(
        `SELECT CONVERT(id USING utf8mb4) AS id, name, role, address, meta,
                TIMESTAMPDIFF(MICROSECOND, seen_at, UTC_TIMESTAMP(6)) AS age_us
         FROM ${p}nodes AS n ORDER BY n.id`, // the column (bytes), not the converted alias
      ),
    );
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      role: row.role,
      address: row.address,
      ...givenMetaAndSeq(JSON.parse(row.meta) as Record<string, unknown>),
      // A server clock stepped back can make a fresh stamp look "in the future": report it as new.
      ageMs: Math.max(0, Number(row.age_us) / 1000),
    }));
  }

  async remove(id: string): Promise<void> {
    const p = this.db.p;
    await this.db.run((sql) => sql(`DELETE FROM ${p}nodes WHERE id = ?`, [id]));
  }

  /**
   * A DELETE joined with the live master lease row, which InnoDB reads with a shared lock, as the
   * shard map's assign does. Nothing deleted means a fenced master, no record, or a record holding
   * another beat: a lapsed or superseded lease never becomes live again at the same epoch, and a
   * record's `seq` only grows, so a later read tells which — unless the server's clock stepped back
   * in between (a live lease and the same beat both there): then the DELETE is tried again, and
   * after `UNEXPLAINED_RETRIES` the DELETE's own verdict ("fenced") stands. A record that was gone
   * at the DELETE and written again by a later beat before the read answers "superseded": this call
   * removed nothing, and the node did beat again.
   */
  async removeFenced(id: string, master: Lease, seq?: number): Promise<RemovalOutcome> {
    const p = this.db.p;
    const fence = [MASTER_LEASE, master.holder, master.epoch];
    const sameBeat = `(? IS NULL OR CAST(JSON_EXTRACT(n.meta, '$.${SEQ_KEY}') AS SIGNED) = ?)`;
    const beat = [seq ?? null, seq ?? null];
    return this.db.run(async (sql) => {
      for (let attempt = 0; ; attempt++) {
        const r = await sql<{ affectedRows: number }>(
          `DELETE n FROM ${p}nodes AS n
             JOIN ${p}leases AS l ON l.name = ? AND l.holder = ? AND l.epoch = ? AND l.expires_at > ${NOW}
           WHERE n.id = ? AND ${sameBeat}`,
          [...fence, id, ...beat],
        );
        if (r.affectedRows > 0) return "removed";
        const [why] = await sql<{ fence_ok: number; present: number; same: number }[]>(
          `SELECT EXISTS(SELECT 1 FROM ${p}leases WHERE name = ? AND holder = ? AND epoch = ? AND expires_at > ${NOW}) AS fence_ok,
                  EXISTS(SELECT 1 FROM ${p}nodes AS n WHERE n.id = ?) AS present,
                  EXISTS(SELECT 1 FROM ${p}nodes AS n WHERE n.id = ? AND ${sameBeat}) AS same`,
          [...fence, id, id, ...beat],
        );
        if (Number(why?.fence_ok) !== 1) return "fenced";
        if (Number(why?.present) !== 1) return "removed";
        if (Number(why?.same) !== 1) return "superseded";
        if (attempt >= UNEXPLAINED_RETRIES) return "fenced";
      }
    });
  }
}
