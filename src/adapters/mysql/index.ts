import type { PoolOptions } from "mysql2/promise";
import { SystemClock } from "../../core/clock.js";
import { ConfigError } from "../../core/errors.js";
import type { Clock } from "../../core/ports/clock.js";
import type { Store, StoreCapabilities } from "../../core/ports/store.js";
import { checkTablePrefix } from "../table-prefix.js";
import { MysqlDb, type MysqlLimits, type MysqlTarget } from "./db.js";
import { MysqlLeaseStore } from "./leases.js";
import { MysqlLiveness } from "./liveness.js";
import { migrate, purge, recordedVersion, SCHEMA_VERSION } from "./schema.js";
import { MysqlShardMap } from "./shard-map.js";
import { checkHistoryLimit } from "../../core/control-records.js";
import { MysqlClusterDocument } from "./cluster-document.js";
import { MysqlHistory } from "./history.js";

/**
 * Settings of the MySQL / MariaDB store. Give `url`, or `host` with the separate fields. When both
 * are given, what the url names wins and the separate fields fill in what it leaves out (so a
 * configuration may keep the password out of the url, in an environment variable).
 *
 * Expiry is judged by the server's clock only, so the cluster tolerates client clocks that disagree
 * but not a server whose clock steps: keep the database server on NTP with slewing.
 */
export interface MysqlOptions {
  /** `mysql://user:password@host:port/database` (`mariadb://` too); parts are URL-decoded. */
  url?: string;
  /** Server host name or address. */
  host?: string;
  /** Server port (default 3306). */
  port?: number;
  /** Account name. */
  user?: string;
  /** Account password (default none). Never appears in our error messages. */
  password?: string;
  /** The database (schema) that holds the tables; required, in `url` or here. */
  database?: string;
  /**
   * TLS: handed to mysql2 (a profile name or `{ ca, cert, key, ... }`); `true` means TLS with the
   * system's CAs, `false` or absent plain TCP. The server's certificate is verified against the CA
   * and, when `host` is a name, against that name (mysql2 only checks the CA unless told otherwise).
   */
  ssl?: PoolOptions["ssl"] | boolean;
  /** Prefix of every table, so several clusters can share one database (default "mc_"). */
  tablePrefix?: string;
  /**
   * The most one store call may take, including waiting for a pooled connection, connecting and
   * every statement (default 2000 ms). Past it the call throws `StoreUnavailableError` and its
   * connection is destroyed. Keep it well below the lease TTL: a renewal that may take this long
   * must still land before the lease lapses.
   */
  operationTimeoutMs?: number;
  /** How long the TCP connect and MySQL handshake of one new connection may take (default 2000 ms). */
  connectTimeoutMs?: number;
  /** Connections kept per store (default 4). Each watcher polls through the same pool. */
  poolSize?: number;
  /** How often shard-map watchers re-read the map (default 50 ms): the delay of a change, at most. */
  pollIntervalMs?: number;
  /** How many history events are kept; older ones are deleted by each append (default 1000). */
  historyLimit?: number;
  /** Paces the watchers' polling (default: the system clock). */
  clock?: Clock;
}

const DEFAULTS = { tablePrefix: "mc_", operationTimeoutMs: 2000, connectTimeoutMs: 2000, poolSize: 4, pollIntervalMs: 50 };

/** What the MySQL store declares about itself: shard-map changes are polled. */
export function mysqlCapabilities(o: Pick<MysqlOptions, "pollIntervalMs">): StoreCapabilities {
  return { pollIntervalMs: o.pollIntervalMs ?? DEFAULTS.pollIntervalMs };
}

/** The store on a MySQL or MariaDB server (tested on MariaDB 10.11): every port over one connection pool. */
export class MysqlStore implements Store {
  readonly backend = "mysql";
  readonly capabilities: StoreCapabilities;
  readonly leases: MysqlLeaseStore;
  readonly liveness: MysqlLiveness;
  readonly shardMap: MysqlShardMap;
  readonly clusterDocument: MysqlClusterDocument;
  readonly history: MysqlHistory;
  private readonly db: MysqlDb;
  private readonly limits: MysqlLimits;

  /** Validates the options (throws `ConfigError`); connects lazily, on the first call. */
  constructor(o: MysqlOptions) {
    this.limits = {
      operationTimeoutMs: positive(o.operationTimeoutMs, DEFAULTS.operationTimeoutMs, "store.operation_timeout"),
      connectTimeoutMs: positive(o.connectTimeoutMs, DEFAULTS.connectTimeoutMs, "store.connect_timeout"),
      poolSize: positive(o.poolSize, DEFAULTS.poolSize, "store.pool_size", true),
    };
    const pollMs = positive(o.pollIntervalMs, DEFAULTS.pollIntervalMs, "store.poll_interval");
    this.db = new MysqlDb(resolveTarget(o), checkTablePrefix(o.tablePrefix ?? DEFAULTS.tablePrefix), this.limits);
    this.leases = new MysqlLeaseStore(this.db);
    this.liveness = new MysqlLiveness(this.db);
    this.shardMap = new MysqlShardMap(this.db, o.clock ?? new SystemClock(), pollMs);
    this.clusterDocument = new MysqlClusterDocument(this.db);
    this.history = new MysqlHistory(this.db, checkHistoryLimit(o.historyLimit));
    this.capabilities = mysqlCapabilities({ pollIntervalMs: pollMs });
  }

  readonly schemaVersion = SCHEMA_VERSION;

  migrate(): Promise<void> {
    return migrate(this.db, this.limits.operationTimeoutMs);
  }

  recordedSchemaVersion(): Promise<number | null> {
    return recordedVersion(this.db);
  }

  purge(): Promise<string[]> {
    return purge(this.db, this.limits.operationTimeoutMs);
  }

  async close(): Promise<void> {
    await this.shardMap.closeWatches();
    await this.db.close();
  }
}

/** A positive number (an integer where asked), or the default when absent. */
function positive(value: number | undefined, fallback: number, key: string, integer = false): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new ConfigError(key, `must be a positive ${integer ? "integer" : "number"}, got ${String(value)}`);
  }
  return value;
}

/** The connection target from `url` and/or the separate fields; the password is never echoed. */
function resolveTarget(o: MysqlOptions): MysqlTarget {
  const port = positive(o.port, 3306, "store.port", true);
  // A host name never holds an `@`: one there is a misplaced login, which messages would show.
  if (o.host?.includes("@")) throw new ConfigError("store.host", "holds a user or password: give them in store.user and store.password");
  if (o.url === undefined) {
    if (!o.host) throw new ConfigError("store.host", "is required (or give store.url)");
    if (!o.database) throw new ConfigError("store.database", "is required");
    return { host: o.host, port, user: o.user, password: o.password ?? "", database: o.database, ssl: tls(o.ssl) };
  }
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    // The URL may hold a password: say what is wrong, not what it was.
    throw new ConfigError("store.url", "is not a valid URL (expected mysql://user:password@host:port/database)");
  }
  if (url.protocol !== "mysql:" && url.protocol !== "mariadb:") {
    // Without `//` the "scheme" is the user of `user:password@host`: show it only when it is one.
    const scheme = o.url.startsWith(`${url.protocol}//`) ? `, got ${url.protocol}//` : "";
    throw new ConfigError("store.url", `must start with mysql:// or mariadb://${scheme}`);
  }
  if (!url.hostname) throw new ConfigError("store.url", "names no host");
  // An unencoded `/` in the password can end the host part early; the rest becomes the database name, which server errors quote.
  if (url.pathname.includes("@")) {
    throw new ConfigError("store.url", "has an @ after the host: percent-encode / ? # @ in the user and password (%2F %3F %23 %40)");
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, "")) || o.database;
  if (!database) throw new ConfigError("store.url", "names no database (…/database), and store.database is not set");
  return {
    // IPv6 literals come bracketed from URL; the socket API wants them bare.
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port ? Number(url.port) : port,
    user: url.username ? decodeURIComponent(url.username) : o.user,
    password: url.password ? decodeURIComponent(url.password) : (o.password ?? ""),
    database,
    ssl: tls(o.ssl),
  };
}

/** mysql2 wants an object for TLS; its defaults verify the CA, `verifyIdentity` adds the host name. */
function tls(ssl: MysqlOptions["ssl"]): MysqlTarget["ssl"] {
  if (ssl === undefined || ssl === false) return undefined;
  if (ssl === true) return { verifyIdentity: true };
  return typeof ssl === "string" ? ssl : { verifyIdentity: true, ...ssl };
}
