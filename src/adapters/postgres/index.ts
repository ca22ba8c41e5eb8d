import type pg from "pg";
import { SystemClock } from "../../core/clock.js";
import { withoutCredentials } from "../../config/redact.js";
import { ConfigError } from "../../core/errors.js";
import type { Clock } from "../../core/ports/clock.js";
import type { Store, StoreCapabilities } from "../../core/ports/store.js";
import { checkTablePrefix } from "../table-prefix.js";
import { PgDb } from "./db.js";
import { describeTarget } from "./errors.js";
import { StoreConfigurationError } from "../../core/errors.js";
import type { PgHost } from "./db.js";
import { PostgresLeaseStore } from "./leases.js";
import { PgListener } from "./listener.js";
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
   * A `postgres://user:password@host:port/database` URL (or `postgresql://`). It may hold a
   * password: this adapter never prints it, and error messages name only host, port and database.
   * Percent-encode `/ ? # @` in the user and password; a URL with an `@` after the host is refused.
   */
  url?: string;
  /** Server host name, IP or Unix socket directory (default `PGHOST`, else "localhost"); no `user@` part. */
  host?: string;
  /** Server port (default `PGPORT`, else 5432). */
  port?: number;
  /**
   * A primary and its standbys, "host:port" each (a list or one comma-separated string), instead of
   * `host`/`port`: the adapter dials whichever is writable and moves on after a promotion. Needs
   * synchronous replication, checked by `migrate()`: docs/configuration.md.
   */
  hosts?: string | string[];
  /** Role to log in as (default `PGUSER`, else the OS user). */
  user?: string;
  /** Prefer an environment variable in the config file over a literal secret. */
  password?: string;
  /** Database holding the tables (default `PGDATABASE`, else the user name). */
  database?: string;
  /** Passed to node-postgres as is (`true`, or TLS options such as `ca` and `rejectUnauthorized`). */
  ssl?: pg.ClientConfig["ssl"];
  /** Prefix of every table and NOTIFY channel, so clusters can share a database (default "mc_"). */
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
  /** Pooled connections per store (default 4), plus one dedicated LISTEN connection while any watch is open (all share it). */
  poolSize?: number;
  /**
   * A watcher re-reads the shard map at least this often, even without a notification (default
   * 1000 ms); the LISTEN connection is probed as often.
   */
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
  /** The validated table prefix (also names the NOTIFY channels and `application_name`). */
  readonly tablePrefix: string;
  private readonly db: PgDb;
  private readonly listener: PgListener;
  private closing: Promise<void> | null = null;

  constructor(o: PostgresOptions = {}) {
    this.tablePrefix = checkTablePrefix(o.tablePrefix ?? "mc_");
    const operationTimeoutMs = positive(o.operationTimeoutMs, 2000, "store.operation_timeout");
    this.db = new PgDb({
      connection: connectionConfig(o),
      prefix: this.tablePrefix,
      operationTimeoutMs,
      connectTimeoutMs: positive(o.connectTimeoutMs, 2000, "store.connect_timeout"),
      poolSize: positive(o.poolSize, 4, "store.pool_size"),
      ...(o.hosts === undefined ? {} : { hosts: parseHosts(o) }),
    });
    const resyncMs = positive(o.resyncMs, 1000, "PostgresOptions.resyncMs");
    this.listener = new PgListener(this.db, resyncMs);
    this.leases = new PostgresLeaseStore(this.db, this.listener);
    this.liveness = new PostgresLiveness(this.db);
    this.shardMap = new PostgresShardMap(this.db, this.listener, o.clock ?? new SystemClock(), resyncMs);
    this.clusterDocument = new PostgresClusterDocument(this.db);
    this.history = new PostgresHistory(this.db, checkHistoryLimit(o.historyLimit));
  }

  /** "postgres host:port/database", for logs and the CLI (never the password). */
  describe(): string {
    return describeTarget(this.db.target);
  }

  readonly schemaVersion = SCHEMA_VERSION;

  /**
   * Creates or upgrades the tables; with several hosts, the first call of this store first refuses
   * asynchronous replication. Only the first: a master runs this again on every election, and after
   * a failover the promoted standby has no synchronous standby of its own until the failover tool
   * gives it one, which must not stop a running cluster (a node started meanwhile is refused).
   */
  async migrate(): Promise<void> {
    if (this.db.multiHost && !this.replicationChecked) {
      await checkSynchronousReplication(this.db);
      this.replicationChecked = true;
    }
    return migrate(this.db);
  }

  private replicationChecked = false;

  recordedSchemaVersion(): Promise<number | null> {
    return recordedVersion(this.db);
  }

  purge(): Promise<string[]> {
    return purge(this.db);
  }

  /** Closes every watch, then the LISTEN connection and the pool. Idempotent; bounded by the operation timeout. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.shardMap.closeWatches();
      await this.listener.close();
      await this.db.close();
    })();
    return this.closing;
  }
}

/** The options node-postgres reads for where and how to connect; unset keys are left out. */
function connectionConfig(o: PostgresOptions): pg.ClientConfig {
  const c: pg.ClientConfig = {};
  if (o.url !== undefined) c.connectionString = checkUrl(o.url);
  // A host name never holds an `@` (a socket directory may): one there is a misplaced login, which messages would show.
  if (o.host !== undefined && o.host.includes("@") && !o.host.startsWith("/")) {
    throw new ConfigError("store.host", "holds a user or password: give them in store.user and store.password");
  }
  if (o.host !== undefined) c.host = o.host;
  if (o.port !== undefined) c.port = positive(o.port, 5432, "store.port");
  if (o.user !== undefined) c.user = o.user;
  if (o.password !== undefined) c.password = o.password;
  if (o.database !== undefined) c.database = o.database;
  if (o.ssl !== undefined) c.ssl = o.ssl;
  return c;
}

/**
 * `url`, refused where node-postgres would read part of the password as the database name, which
 * messages show: without a scheme (`user:password@host/db` parses as scheme `user:`), or with an
 * `@` after the host (an unencoded `/` in the password ends the host part early).
 */
function checkUrl(url: string): string {
  if (!/^postgres(ql)?:\/\//i.test(url)) {
    throw new ConfigError("store.url", "must start with postgres:// or postgresql:// (give a Unix socket directory in store.host)");
  }
  let pathname: string;
  try {
    pathname = new URL(url).pathname;
  } catch {
    return url; // node-postgres refuses it too, and its message is not shown (see db.ts)
  }
  if (pathname.includes("@")) {
    throw new ConfigError("store.url", "has an @ after the host: percent-encode / ? # @ in the user and password (%2F %3F %23 %40)");
  }
  return url;
}

/** A whole positive number of milliseconds (or a count), or `fallback` when unset. */
function positive(value: number | undefined, fallback: number, key: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) throw new ConfigError(key, `must be a positive whole number, got ${value}`);
  return value;
}

/** The `hosts` option as host and port pairs; `url`, `host` and `port` must then be unset. */
function parseHosts(o: PostgresOptions): PgHost[] {
  if (o.url !== undefined || o.host !== undefined || o.port !== undefined) {
    throw new ConfigError("store.hosts", "cannot be combined with store.url, store.host or store.port");
  }
  const list = (Array.isArray(o.hosts) ? o.hosts : o.hosts!.split(",")).map((h) => h.trim());
  const hosts: PgHost[] = [];
  list.forEach((entry, i) => {
    if (entry === "") return;
    // Named by position; what precedes an `@` (a login put in the wrong place) is never shown.
    if (entry.includes("@")) {
      const shown = JSON.stringify(withoutCredentials(entry));
      throw new ConfigError("store.hosts", `entry [${i}] (${shown}) holds a user or password: give them in store.user and store.password`);
    }
    const m = /^(\[[^\]]+\]|[^:\s]+)(?::(\d{1,5}))?$/.exec(entry);
    const port = m?.[2] === undefined ? 5432 : Number(m[2]);
    if (!m || port < 1 || port > 65535) {
      throw new ConfigError("store.hosts", `entry [${i}] (${JSON.stringify(entry)}) must be host or host:port`);
    }
    hosts.push({ host: m[1]!.replace(/^\[(.*)\]$/, "$1"), port });
  });
  if (hosts.length === 0) throw new ConfigError("store.hosts", "needs at least one host:port");
  return hosts;
}

/**
 * With several hosts a standby may be promoted. Under asynchronous replication it may lack the
 * last commits — a lease renewal (the lease then lapses early on the promoted server and goes to a
 * second holder while the first still acts) or an epoch (issued again). So the primary must name
 * its synchronous standbys, and commits must wait for them (the adapter sets `synchronous_commit =
 * on` on its sessions; a server that forces `local` or `off` is refused).
 */
async function checkSynchronousReplication(db: PgDb): Promise<void> {
  const r = await db.query<{ names: string; commit: string }>(
    "check replication",
    "SELECT current_setting('synchronous_standby_names') AS names, current_setting('synchronous_commit') AS commit",
  );
  const { names, commit } = r.rows[0]!;
  const where = describeTarget(db.target);
  if (names.trim() === "") {
    throw new StoreConfigurationError(
      `${where}: synchronous_standby_names is empty on the primary, so its standbys replicate asynchronously and a promoted one may lack the last lease renewals and epochs (two coreapps could serve one shard). Set synchronous_standby_names on the primary (e.g. 'ANY 1 (standby1, standby2)'), or give a single host`,
    );
  }
  if (commit === "off" || commit === "local") {
    throw new StoreConfigurationError(
      `${where}: synchronous_commit is ${commit} for this role or database, so commits do not wait for the synchronous standby; allow it to be on (ALTER ROLE … RESET synchronous_commit)`,
    );
  }
}
