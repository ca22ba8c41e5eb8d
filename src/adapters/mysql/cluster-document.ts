import { decodeClusterDocument, encodeClusterDocument } from "../../core/control-records.js";
import type {
  ClusterDocumentInput,
  ClusterDocumentStore,
  ClusterDocumentWriteResult,
  VersionedClusterDocument,
} from "../../core/ports/cluster-document.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import { NOW, type MysqlDb } from "./db.js";

/** A DATETIME(6) in UTC as whole µs since the Unix epoch (an integer: exact in a JS number). */
const epochUs = (column: string) => `TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', ${column})`;

interface ClusterRow {
  version: number;
  document: string;
  written_us: number;
  now_us: number;
}

/**
 * The cluster document, one row (`id = 1`; version 0 is an invisible placeholder).
 *
 * `write()` is one multi-table `UPDATE` joining the document row with the master lease row, as
 * `assign()` does for a shard: the version, the master's holder and epoch, and the lease's liveness
 * by the server's clock are checked by the statement that writes, and InnoDB's shared lock on the
 * lease row orders any takeover entirely before or after it. The same statement stamps
 * `written_at` with the server's clock; pause expiries and new pauses' start are stored relative to
 * it, so no statement has to read the clock first.
 */
export class MysqlClusterDocument implements ClusterDocumentStore {
  constructor(private readonly db: MysqlDb) {}

  async read(): Promise<VersionedClusterDocument | null> {
    const row = await this.db.run(async (sql) => (await sql<ClusterRow[]>(this.selectSql()))[0]);
    return row && row.version > 0 ? toVersioned(row) : null;
  }

  async version(): Promise<number> {
    const rows = await this.db.run((sql) => sql<{ version: number }[]>(`SELECT version FROM ${this.db.p}cluster WHERE id = 1`));
    return Number(rows[0]?.version ?? 0);
  }

  async write(expectedVersion: number, doc: ClusterDocumentInput, master: Lease): Promise<ClusterDocumentWriteResult> {
    const json = JSON.stringify(encodeClusterDocument(doc, 0, null));
    const p = this.db.p;
    return this.db.run(async (sql) => {
      if (expectedVersion === 0) {
        // IGNORE: another writer may have inserted the placeholder first.
        await sql(`INSERT IGNORE INTO ${p}cluster (id, version, document, written_at) VALUES (1, 0, '', ${NOW})`);
      }
      const r = await sql<{ affectedRows: number }>(
        `UPDATE ${p}cluster AS c
           JOIN ${p}leases AS l ON l.name = ? AND l.holder = ? AND l.epoch = ? AND l.expires_at > ${NOW}
            SET c.version = c.version + 1, c.document = ?, c.written_at = ${NOW}
          WHERE c.id = 1 AND c.version = ?`,
        [MASTER_LEASE, master.holder, master.epoch, json, expectedVersion],
      );
      if (r.affectedRows === 1) return { ok: true, version: expectedVersion + 1 } as const;
      // Nothing was written; say why. A lapsed or superseded master lease never becomes live again
      // at the same epoch, so a later read tells.
      const [fence] = await sql<{ ok: number }[]>(
        `SELECT EXISTS(SELECT 1 FROM ${p}leases WHERE name = ? AND holder = ? AND epoch = ? AND expires_at > ${NOW}) AS ok`,
        [MASTER_LEASE, master.holder, master.epoch],
      );
      if (!fence?.ok) return { ok: false, reason: "fenced" } as const;
      const row = (await sql<ClusterRow[]>(this.selectSql()))[0];
      return { ok: false, reason: "conflict", current: row && row.version > 0 ? toVersioned(row) : null } as const;
    });
  }

  private selectSql(): string {
    return `SELECT version, CONVERT(document USING utf8mb4) AS document, ${epochUs("written_at")} AS written_us, ${epochUs(NOW)} AS now_us
              FROM ${this.db.p}cluster WHERE id = 1`;
  }
}

function toVersioned(row: ClusterRow): VersionedClusterDocument {
  const version = Number(row.version);
  const writtenMs = Number(row.written_us) / 1000;
  // Pause expiries are ms after the write: judge them by the time elapsed since, on the server's clock.
  return { version, document: decodeClusterDocument(row.document, version, Number(row.now_us) / 1000 - writtenMs, writtenMs) };
}
