import type pg from "pg";
import { SystemClock } from "../../core/clock.js";
import { ConfigError } from "../../core/errors.js";
import type { Clock } from "../../core/ports/clock.js";
import type { Store, StoreCapabilities } from "../../core/ports/store.js";
import { checkTablePrefix } from "../table-prefix.js";
import { PgDb } from "./db.js";
import { describeTarget } from "./errors.js";
import { PostgresLeaseStore } from "./leases.js";
import { PostgresLiveness } from "./liveness.js";
import { migrate, purge, recordedVersion, SCHEMA_VERSION } from "./schema.js";
import { PostgresShardMap } from "./shard-map.js";
import { checkHistoryLimit } from "../../core/control-records.js";
import { PostgresClusterDocument } from "./cluster-document.js";
import { PostgresHistory } from "./history.js";

/**
 * Settings of the PostgreSQL store. Give either `url` or the separate fields; when both are given
 * the URL's parts win (node-postgres's rule). Unset fields fall back to the usual `PG*`
 * environment variables, as with `psql`.
 */
export interface PostgresOptions {
  /**
   * A `postgres://user:password@host:port/database` URL. It may hold a password: this adapter
   * never prints it, and error messages name only host, port and database.
   */
  url?: string;
  /** Server host name, IP or Unix socket directory (default `PGHOST`, else "localhost"). */
  host?: string;
  /** Server port (default `PGPORT`, else 5432). */
  port?: number;
  /** Role to log in as (default `PGUSER`, else the OS user). */
  user?: string;
  /** Prefer an environment variable in the config file over a literal secret. */
  password?: string;
  /** Database holding the tables (default `PGDATABASE`, else the user name). */
  database?: string;
  /** Passed to node-postgres as is (`true`, or TLS options such as `ca` and `rejectUnauthorized`). */
  ssl?: pg.ClientConfig["ssl"];
  /** Prefix of every table and of the NOTIFY channel, so clusters can share a database (default "mc_"). */
  tablePrefix?: string;
  /**
   * The most one call may take, connect included (default 2000 ms); past it the call throws
   * `StoreUnavailableError`. Also the server-side `statement_timeout`. Keep it well below the
   * lease TTL, or a slow store can let a lease lapse while its renewal is still waiting.
   */
  operationTimeoutMs?: number;
  /**
   * How long the pool keeps trying to open one connection (default 2000 ms). A call still fails at
   * its own `operationTimeoutMs`; a connection that opens later serves the next call.
   */
  connectTimeoutMs?: number;
  /** Pooled connections per store (default 4), plus one dedicated LISTEN connection per watch. */
  poolSize?: number;
  /** A watcher re-reads the shard map at least this often, even without a notification (default 1000 ms). */
  resyncMs?: number;
  /** How many history events are kept; older ones are deleted by each append (default 1000). */
  historyLimit?: number;
  /** The local clock the watcher sleeps on (default the system's monotonic clock); never used for expiry. */
  clock?: Clock;
}

/** What the PostgreSQL store declares: push notifications, millisecond TTLs, no minimum. */
export const postgresCapabilities: StoreCapabilities = {};

/** The PostgreSQL store: every port over one database, tables named by `tablePrefix`. */
export class PostgresStore implements Store {
  readonly backend = "postgres";
  readonly capabilities = postgresCapabilities;
  readonly leases: PostgresLeaseStore;
  readonly liveness: PostgresLiveness;
  readonly shardMap: PostgresShardMap;
  readonly clusterDocument: PostgresClusterDocument;
  readonly history: PostgresHistory;
  /** The validated table prefix (also names the NOTIFY channel and `application_name`). */
  readonly tablePrefix: string;
  private readonly db: PgDb;
  private closing: Promise<void> | null = null;

  constructor(o: PostgresOptions = {}) {
    this.tablePrefix = checkTablePrefix(o.tablePrefix ?? "mc_");
    const operationTimeoutMs = positive(o.operationTimeoutMs, 2000, "store.operation_timeout_ms");
    this.db = new PgDb({
      connection: connectionConfig(o),
      prefix: this.tablePrefix,
      operationTimeoutMs,
      connectTimeoutMs: positive(o.connectTimeoutMs, 2000, "store.connect_timeout_ms"),
      poolSize: positive(o.poolSize, 4, "store.pool_size"),
    });
    this.leases = new PostgresLeaseStore(this.db);
    this.liveness = new PostgresLiveness(this.db);
    this.shardMap = new PostgresShardMap(this.db, o.clock ?? new SystemClock(), positive(o.resyncMs, 1000, "store.resync_ms"));
    this.clusterDocument = new PostgresClusterDocument(this.db);
    this.history = new PostgresHistory(this.db, checkHistoryLimit(o.historyLimit));
  }

  /** "postgres host:port/database", for logs and the CLI (never the password). */
  describe(): string {
    return describeTarget(this.db.target);
  }

  readonly schemaVersion = SCHEMA_VERSION;

  migrate(): Promise<void> {
    return migrate(this.db);
  }

  recordedSchemaVersion(): Promise<number | null> {
    return recordedVersion(this.db);
  }

  purge(): Promise<string[]> {
    return purge(this.db);
  }

  /** Closes every watch, then the pool. Idempotent; bounded by the operation timeout. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.shardMap.closeWatches();
      await this.db.close();
    })();
    return this.closing;
  }
}

/** The options node-postgres reads for where and how to connect; unset keys are left out. */
function connectionConfig(o: PostgresOptions): pg.ClientConfig {
  const c: pg.ClientConfig = {};
  if (o.url !== undefined) c.connectionString = o.url;
  if (o.host !== undefined) c.host = o.host;
  if (o.port !== undefined) c.port = positive(o.port, 5432, "store.port");
  if (o.user !== undefined) c.user = o.user;
  if (o.password !== undefined) c.password = o.password;
  if (o.database !== undefined) c.database = o.database;
  if (o.ssl !== undefined) c.ssl = o.ssl;
  return c;
}

/** A whole positive number of milliseconds (or a count), or `fallback` when unset. */
function positive(value: number | undefined, fallback: number, key: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) throw new ConfigError(key, `must be a positive whole number, got ${value}`);
  return value;
}
