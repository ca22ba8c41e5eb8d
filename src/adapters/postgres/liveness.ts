import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { LivenessStore, NodeRecord, NodeRole, NodeStatus, RemovalOutcome } from "../../core/ports/liveness.js";
import { givenMetaAndSeq, SEQ_KEY, storedMeta } from "../sql-record-seq.js";
import type { PgDb } from "./db.js";

interface NodeRow {
  id: string;
  name: string;
  role: NodeRole;
  address: string;
  meta: Record<string, unknown>;
  age_ms: number;
}

/**
 * Node records, stamped with the server's `clock_timestamp()` and aged by the server in the same
 * statement that reads them, so no node's wall clock takes part in the failure detector.
 */
export class PostgresLiveness implements LivenessStore {
  constructor(private readonly db: PgDb) {}

  async beat(r: NodeRecord): Promise<void> {
    await this.db.query(
      "beat",
      `INSERT INTO ${this.db.t("nodes")} AS n (id, name, role, address, meta, seen_at)
       VALUES ($1, $2, $3, $4, $5::jsonb, clock_timestamp())
       ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, role = EXCLUDED.role, address = EXCLUDED.address,
         meta = EXCLUDED.meta, seen_at = EXCLUDED.seen_at
       WHERE $6::bigint IS NULL OR COALESCE((n.meta ->> '${SEQ_KEY}')::bigint, -1) < $6::bigint`,
      [r.id, r.name, r.role, r.address, storedMeta(r), r.seq ?? null],
    );
  }

  async list(): Promise<NodeStatus[]> {
    // COLLATE "C": order by code points like every other backend, not by the database's locale.
    const r = await this.db.query<NodeRow>(
      "list",
      `SELECT id, name, role, address, meta,
              GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - seen_at) * 1000)::float8 AS age_ms
         FROM ${this.db.t("nodes")} ORDER BY id COLLATE "C"`,
    );
    return r.rows.map((row) => ({
      id: row.id,
      name: row.name,
      role: row.role,
      address: row.address,
      ...givenMetaAndSeq(row.meta),
      ageMs: row.age_ms,
    }));
  }

  async remove(id: string): Promise<void> {
    await this.db.query("remove", `DELETE FROM ${this.db.t("nodes")} WHERE id = $1`, [id]);
  }

  /**
   * One statement: the lease row is read `FOR SHARE`, so the lease cannot change hands before it
   * commits, and the record `FOR UPDATE` before the delete looks at it, so that `held` is the
   * record's latest version (a beat that committed meanwhile, its new `seq`) or nothing (a removal
   * that committed meanwhile), not the statement's snapshot of it.
   */
  async removeFenced(id: string, master: Lease, seq?: number): Promise<RemovalOutcome> {
    const nodes = this.db.t("nodes");
    const r = await this.db.query<{ fence_ok: boolean; deleted: boolean; present: boolean }>(
      "remove",
      `WITH fence AS (
         SELECT 1 FROM ${this.db.t("leases")}
          WHERE name = $2 AND holder = $3 AND epoch = $4::bigint AND expires_at > clock_timestamp() FOR SHARE
       ), held AS (
         SELECT (meta ->> '${SEQ_KEY}')::bigint AS seq FROM ${nodes} WHERE id = $1 FOR UPDATE
       ), d AS (
         DELETE FROM ${nodes} WHERE id = $1 AND EXISTS (SELECT 1 FROM fence)
            AND EXISTS (SELECT 1 FROM held WHERE $5::bigint IS NULL OR held.seq = $5::bigint)
         RETURNING 1
       )
       SELECT EXISTS (SELECT 1 FROM fence) AS fence_ok, EXISTS (SELECT 1 FROM d) AS deleted,
              EXISTS (SELECT 1 FROM held) AS present`,
      [id, MASTER_LEASE, master.holder, master.epoch, seq ?? null],
    );
    const row = r.rows[0];
    if (row?.fence_ok !== true) return "fenced";
    return row.deleted || !row.present ? "removed" : "superseded";
  }
}
