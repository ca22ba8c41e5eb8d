import { decodeClusterDocument, encodeClusterDocument } from "../../core/control-records.js";
import type {
  ClusterDocumentInput,
  ClusterDocumentStore,
  ClusterDocumentWriteResult,
  VersionedClusterDocument,
} from "../../core/ports/cluster-document.js";
import type { Lease } from "../../core/ports/leases.js";
import { bootId } from "./clock.js";
import type { SqliteDb } from "./db.js";

/** This boot's id: the store clock (CLOCK_MONOTONIC) restarts with every boot. */
const BOOT = bootId();

interface ClusterRow {
  version: number;
  document: string;
  boot: string;
}

/**
 * The cluster document, one row (`id = 1`). Pause expiries are on the store's clock, this
 * machine's monotonic clock, which restarts at boot: a row written on another boot has every pause
 * ended (a reboot ends pauses early, which re-enables failover: the safe direction). `pausedAtMs`
 * is this machine's wall clock, the store's machine's. The write is one `BEGIN IMMEDIATE`
 * transaction that checks the master lease, then the version.
 */
export class SqliteClusterDocument implements ClusterDocumentStore {
  constructor(private readonly db: SqliteDb) {}

  async read(): Promise<VersionedClusterDocument | null> {
    return this.db.read((sql, now) => {
      const row = sql.prepare(`SELECT version, document, boot FROM ${this.db.p}cluster WHERE id = 1`).get() as ClusterRow | undefined;
      return row ? toVersioned(row, now) : null;
    });
  }

  async version(): Promise<number> {
    return this.db.read(
      (sql) => (sql.prepare(`SELECT version FROM ${this.db.p}cluster WHERE id = 1`).get() as { version: number } | undefined)?.version ?? 0,
    );
  }

  async write(expectedVersion: number, doc: ClusterDocumentInput, master: Lease): Promise<ClusterDocumentWriteResult> {
    encodeClusterDocument(doc, 0, null); // refuse a malformed document before touching the store
    const written = await this.db.writeAsMaster(master, (sql, now) => {
      const row = sql.prepare(`SELECT version, document, boot FROM ${this.db.p}cluster WHERE id = 1`).get() as ClusterRow | undefined;
      if ((row?.version ?? 0) !== expectedVersion) {
        return { ok: false, reason: "conflict", current: row ? toVersioned(row, now) : null } as const;
      }
      const version = expectedVersion + 1;
      sql
        .prepare(
          `INSERT INTO ${this.db.p}cluster (id, version, document, boot) VALUES (1, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET version = excluded.version, document = excluded.document, boot = excluded.boot`,
        )
        .run(version, JSON.stringify(encodeClusterDocument(doc, now, Date.now())), BOOT);
      return { ok: true, version } as const;
    });
    return written === "fenced" ? { ok: false, reason: "fenced" } : written;
  }
}

function toVersioned(row: ClusterRow, now: number): VersionedClusterDocument {
  return { version: row.version, document: decodeClusterDocument(row.document, row.version, row.boot === BOOT ? now : Infinity) };
}
