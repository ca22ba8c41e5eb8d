import { loadTlsFiles, type TlsMaterial } from "../adapters/tls-files.js";
import type { Backend, StoreConfig, StoreTlsConfig } from "../config/schema.js";
import type { Clock } from "../core/ports/clock.js";
import type { Store } from "../core/ports/store.js";
import { StoreConfigurationError } from "../core/errors.js";

/** Each backend's adapter, loaded on first use; the driver it needs is named for the error. */
const adapters = {
  sqlite: () => loadAdapter("sqlite", "better-sqlite3", () => import("../adapters/sqlite/index.js")),
  postgres: () => loadAdapter("postgres", "pg", () => import("../adapters/postgres/index.js")),
  mysql: () => loadAdapter("mysql", "mysql2", () => import("../adapters/mysql/index.js")),
  redis: () => loadAdapter("redis", "ioredis", () => import("../adapters/redis/index.js")),
  etcd: () => loadAdapter("etcd", "etcd3", () => import("../adapters/etcd/index.js")),
} satisfies Record<Backend, () => Promise<unknown>>;

/**
 * Loads `backend`'s adapter and driver without opening anything, so that a missing driver is
 * reported before a command starts work (the dev cluster checks before spawning its nodes).
 * Throws `StoreConfigurationError` naming the package to install.
 */
export async function requireStoreDriver(backend: Backend): Promise<void> {
  await adapters[backend]();
}

/**
 * Opens the configured backend. Each adapter is loaded only when chosen, so a backend's driver
 * is never required by a cluster that does not use it (the drivers are optional peer
 * dependencies); a backend that cannot load is an error, never a silent fallback to another one.
 * Throws `StoreConfigurationError` naming the package to install when the backend's driver is
 * missing.
 */
export async function openStore(c: StoreConfig, clock: Clock): Promise<Store> {
  switch (c.backend) {
    case "sqlite": {
      const { SqliteStore } = await adapters.sqlite();
      return new SqliteStore({
        path: c.path,
        tablePrefix: c.table_prefix,
        pollIntervalMs: c.poll_interval,
        historyLimit: c.history_limit,
        clock,
      });
    }
    case "postgres": {
      const { PostgresStore } = await adapters.postgres();
      if (c.hosts === undefined) return new PostgresStore(sqlOptions(c));
      // Several hosts: host and port come from the list (their defaults stay unused).
      const { host: _host, port: _port, ...options } = sqlOptions(c);
      return new PostgresStore({ ...options, hosts: c.hosts });
    }
    case "mysql": {
      const { MysqlStore } = await adapters.mysql();
      return new MysqlStore({ ...sqlOptions(c), pollIntervalMs: c.poll_interval });
    }
    case "redis": {
      const { RedisStore } = await adapters.redis();
      return new RedisStore({
        // With Sentinels the primary's address comes from them; `host` and `port` keep their defaults unused.
        ...(c.sentinels === undefined ? { host: c.host, port: c.port } : {}),
        url: c.url,
        sentinels: c.sentinels,
        sentinelName: c.sentinel_name,
        sentinelUsername: c.sentinel_username,
        sentinelPassword: c.sentinel_password,
        sentinelTls: storeTls(c.sentinel_tls),
        waitReplicas: c.wait_replicas,
        username: c.username,
        password: c.password,
        db: c.db,
        tls: storeTls(c.tls),
        keyPrefix: c.key_prefix,
        operationTimeoutMs: c.operation_timeout,
        connectTimeoutMs: c.connect_timeout,
        historyLimit: c.history_limit,
      });
    }
    case "etcd": {
      const { EtcdStore } = await adapters.etcd();
      return new EtcdStore({
        hosts: c.hosts,
        username: c.username,
        password: c.password,
        tls: storeTls(c.tls),
        keyPrefix: c.key_prefix,
        operationTimeoutMs: c.operation_timeout,
        connectTimeoutMs: c.connect_timeout,
        historyLimit: c.history_limit,
      });
    }
  }
}

/**
 * Imports a backend's adapter, turning "its driver is not installed" into one clear line. Only the
 * driver's own absence is translated: any other load failure (a broken install, a native build
 * that does not match this Node) keeps its original error and stack.
 */
async function loadAdapter<T>(backend: StoreConfig["backend"], driver: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (!isMissingPackage(error, driver)) throw error;
    throw new StoreConfigurationError(
      `store: the ${backend} backend needs the "${driver}" package, which is not installed: run npm install ${driver}`,
      { cause: error },
    );
  }
}

/** Node's ESM loader reports an absent package as ERR_MODULE_NOT_FOUND "Cannot find package 'name' …". */
function isMissingPackage(error: unknown, name: string): boolean {
  const e = error as { code?: unknown; message?: unknown } | null;
  return e?.code === "ERR_MODULE_NOT_FOUND" && typeof e.message === "string" && e.message.includes(`'${name}'`);
}

/** The connection options PostgreSQL and MySQL share, from their config sections. */
function sqlOptions(c: Extract<StoreConfig, { backend: "postgres" | "mysql" }>) {
  return {
    url: c.url,
    host: c.host,
    port: c.port,
    user: c.user,
    password: c.password,
    database: c.database,
    ssl: storeTls(c.tls),
    tablePrefix: c.table_prefix,
    poolSize: c.pool_size,
    operationTimeoutMs: c.operation_timeout,
    connectTimeoutMs: c.connect_timeout,
    historyLimit: c.history_limit,
  };
}

/**
 * A store's `tls` key as the TLS options every driver takes: none (plain), `{}` (TLS, the server
 * verified against the system's CAs) or the files' contents, read and checked now so that a bad
 * file stops the node with an error naming `store.tls.*` and the file.
 */
function storeTls(tls: StoreTlsConfig): TlsMaterial | undefined {
  if (tls === false) return undefined;
  if (tls === true) return {};
  return loadTlsFiles(tls, "store.tls");
}
