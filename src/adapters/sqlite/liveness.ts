import type { Lease } from "../../core/ports/leases.js";
import type { LivenessStore, NodeRecord, NodeRole, NodeStatus, RemovalOutcome } from "../../core/ports/liveness.js";
import { givenMetaAndSeq, SEQ_KEY, storedMeta } from "../sql-record-seq.js";
import type { SqliteDb } from "./db.js";

interface NodeRow {
  id: string;
  name: string;
  role: NodeRole;
  address: string;
  meta: string;
  seen_at: number;
}

/** Node records, stamped and aged by the store clock. */
export class SqliteLiveness implements LivenessStore {
  constructor(private readonly db: SqliteDb) {}

  async beat(r: NodeRecord): Promise<void> {
    await this.db.write((sql, now) => {
      sql
        .prepare(
          `INSERT INTO ${this.db.p}nodes (id, name, role, address, meta, seen_at) VALUES (@id, @name, @role, @address, @meta, @now)
           ON CONFLICT(id) DO UPDATE SET name = excluded.name, role = excluded.role, address = excluded.address,
             meta = excluded.meta, seen_at = excluded.seen_at
           WHERE @seq IS NULL OR coalesce(json_extract(${this.db.p}nodes.meta, '$.${SEQ_KEY}'), -1) < @seq`,
        )
        .run({ id: r.id, name: r.name, role: r.role, address: r.address, meta: storedMeta(r), now, seq: r.seq ?? null });
    });
  }

  async list(): Promise<NodeStatus[]> {
    return this.db.read((sql, now) =>
      (sql.prepare(`SELECT id, name, role, address, meta, seen_at FROM ${this.db.p}nodes ORDER BY id`).all() as NodeRow[]).map((row) => ({
        id: row.id,
        name: row.name,
        role: row.role,
        address: row.address,
        ...givenMetaAndSeq(JSON.parse(row.meta) as Record<string, unknown>),
        ageMs: Math.max(0, now - row.seen_at),
      })),
    );
  }

  async remove(id: string): Promise<void> {
    await this.db.write((sql) => {
      sql.prepare(`DELETE FROM ${this.db.p}nodes WHERE id = ?`).run(id);
    });
  }

  async removeFenced(id: string, master: Lease, seq?: number): Promise<RemovalOutcome> {
    return this.db.writeAsMaster(master, (sql) => {
      const held = sql.prepare(`SELECT json_extract(meta, '$.${SEQ_KEY}') AS seq FROM ${this.db.p}nodes WHERE id = ?`).get(id) as
        { seq: number | null } | undefined;
      if (held && seq !== undefined && held.seq !== seq) return "superseded";
      sql.prepare(`DELETE FROM ${this.db.p}nodes WHERE id = ?`).run(id);
      return "removed";
    });
  }
}
