import { SystemClock } from "../../core/clock.js";
import { checkTablePrefix } from "../table-prefix.js";
import type { Clock } from "../../core/ports/clock.js";
import type { Store, StoreCapabilities } from "../../core/ports/store.js";
import { SqliteDb } from "./db.js";
import { SCHEMA_VERSION } from "./schema.js";
import { SqliteLeaseStore } from "./leases.js";
import { SqliteLiveness } from "./liveness.js";
import { SqliteShardMap } from "./shard-map.js";
import { checkHistoryLimit } from "../../core/control-records.js";
import { SqliteClusterDocument } from "./cluster-document.js";
import { SqliteHistory } from "./history.js";

/** Settings of the embedded SQLite store. */
export interface SqliteOptions {
  /** The database file, shared by every node process on this machine. */
  path: string;
  /** Prefix of every table, so several clusters can share one file (default "mc_"). */
  tablePrefix?: string;
  /** How often watchers poll for other processes' commits (default 5 ms). */
  pollIntervalMs?: number;
  /** How long a write waits for another process's lock before failing as retryable (default 25 ms). */
  busyTimeoutMs?: number;
  /** How many history events are kept; older ones are deleted by each append (default 1000). */
  historyLimit?: number;
  clock?: Clock;
}

export function sqliteCapabilities(o: Pick<SqliteOptions, "pollIntervalMs">): StoreCapabilities {
  return { pollIntervalMs: o.pollIntervalMs ?? 5, writerWallClock: true };
}

/** The embedded store: every port over one SQLite file. */
export class SqliteStore implements Store {
  readonly backend = "sqlite";
  readonly capabilities: StoreCapabilities;
  readonly leases: SqliteLeaseStore;
  readonly liveness: SqliteLiveness;
  readonly shardMap: SqliteShardMap;
  readonly clusterDocument: SqliteClusterDocument;
  readonly history: SqliteHistory;
  private readonly db: SqliteDb;

  constructor(o: SqliteOptions) {
    this.db = new SqliteDb(o.path, checkTablePrefix(o.tablePrefix ?? "mc_"), o.busyTimeoutMs ?? 25);
    this.leases = new SqliteLeaseStore(this.db);
    this.liveness = new SqliteLiveness(this.db);
    this.capabilities = sqliteCapabilities(o);
    this.shardMap = new SqliteShardMap(this.db, o.clock ?? new SystemClock(), this.capabilities.pollIntervalMs!);
    this.clusterDocument = new SqliteClusterDocument(this.db);
    this.history = new SqliteHistory(this.db, checkHistoryLimit(o.historyLimit));
  }

  readonly schemaVersion = SCHEMA_VERSION;

  migrate(): Promise<void> {
    return this.db.migrate();
  }

  async recordedSchemaVersion(): Promise<number | null> {
    return this.db.recordedVersion();
  }

  async purge(): Promise<string[]> {
    return this.db.purge();
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
