import { decodeClusterDocument, encodeClusterDocument } from "../../core/control-records.js";
import type {
  ClusterDocumentInput,
  ClusterDocumentStore,
  ClusterDocumentWriteResult,
  VersionedClusterDocument,
} from "../../core/ports/cluster-document.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { PgDb } from "./db.js";

/** The server's now in ms since the Unix epoch (the scale of pause expiries). */
const NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::float8";

interface ClusterRow {
  version: string;
  document: string;
  now: number;
}

/**
 * The cluster document, one row (`id = 1`).
 *
 * `write()` is one READ COMMITTED transaction: it locks the master lease row `FOR SHARE` only if it
 * is held, live by `clock_timestamp()`, by the given holder and epoch (so no other master can be
 * elected until it commits, safety S3), takes the server's now for the pauses' expiries, then
 * writes the row only if its version is the expected one — a conditional UPDATE whose WHERE is
 * re-checked against a concurrent writer's committed row, or for a never-written document an
 * INSERT … ON CONFLICT DO NOTHING.
 */
export class PostgresClusterDocument implements ClusterDocumentStore {
  constructor(private readonly db: PgDb) {}

  async read(): Promise<VersionedClusterDocument | null> {
    const r = await this.db.query<ClusterRow>(
      "cluster read",
      `SELECT version, document, ${NOW_MS} AS now FROM ${this.db.t("cluster")} WHERE id = 1`,
    );
    return r.rows[0] ? toVersioned(r.rows[0]) : null;
  }

  async version(): Promise<number> {
    const r = await this.db.query<{ version: string }>("cluster version", `SELECT version FROM ${this.db.t("cluster")} WHERE id = 1`);
    return Number(r.rows[0]?.version ?? 0);
  }

  async write(expectedVersion: number, doc: ClusterDocumentInput, master: Lease): Promise<ClusterDocumentWriteResult> {
    encodeClusterDocument(doc, 0, null); // refuse a malformed document before touching the store
    const c = this.db.t("cluster");
    return this.db.transaction("cluster write", async (client) => {
      const fence = await client.query<{ now: number }>(
        `SELECT ${NOW_MS} AS now FROM ${this.db.t("leases")}
          WHERE name = $1 AND holder = $2 AND epoch = $3::bigint AND expires_at > clock_timestamp() FOR SHARE`,
        [MASTER_LEASE, master.holder, master.epoch],
      );
      const now = fence.rows[0]?.now;
      if (now === undefined) return { ok: false, reason: "fenced" } as const;
      const json = JSON.stringify(encodeClusterDocument(doc, now, now));
      const w =
        expectedVersion === 0
          ? await client.query<{ version: string }>(
              `INSERT INTO ${c} (id, version, document) VALUES (1, 1, $1) ON CONFLICT (id) DO NOTHING RETURNING version`,
              [json],
            )
          : await client.query<{ version: string }>(
              `UPDATE ${c} SET version = version + 1, document = $1 WHERE id = 1 AND version = $2::bigint RETURNING version`,
              [json, expectedVersion],
            );
      if (w.rows[0]) return { ok: true, version: Number(w.rows[0].version) } as const;
      // A new statement sees the winner's committed row (READ COMMITTED).
      const cur = await client.query<ClusterRow>(`SELECT version, document, ${NOW_MS} AS now FROM ${c} WHERE id = 1`);
      return { ok: false, reason: "conflict", current: cur.rows[0] ? toVersioned(cur.rows[0]) : null } as const;
    });
  }
}

function toVersioned(row: ClusterRow): VersionedClusterDocument {
  const version = Number(row.version);
  return { version, document: decodeClusterDocument(row.document, version, row.now) };
}
