import { loadTlsFiles, type TlsMaterial } from "../adapters/tls-files.js";
import type { StoreConfig, StoreTlsConfig } from "../config/schema.js";
import type { Clock } from "../core/ports/clock.js";
import type { Store } from "../core/ports/store.js";

/**
 * Opens the configured backend. Each adapter is loaded only when chosen, so a backend's driver
 * is never required by a cluster that does not use it; a backend that cannot load is an error,
 * never a silent fallback to another one.
 */
export async function openStore(c: StoreConfig, clock: Clock): Promise<Store> {
  switch (c.backend) {
    case "sqlite": {
      const { SqliteStore } = await import("../adapters/sqlite/index.js");
      return new SqliteStore({ path: c.path, tablePrefix: c.table_prefix, pollIntervalMs: c.poll_interval, clock });
    }
    case "postgres": {
      const { PostgresStore } = await import("../adapters/postgres/index.js");
      return new PostgresStore(sqlOptions(c));
    }
    case "mysql": {
      const { MysqlStore } = await import("../adapters/mysql/index.js");
      return new MysqlStore({ ...sqlOptions(c), pollIntervalMs: c.poll_interval });
    }
    case "redis": {
      const { RedisStore } = await import("../adapters/redis/index.js");
      return new RedisStore({
        url: c.url,
        host: c.host,
        port: c.port,
        username: c.username,
        password: c.password,
        db: c.db,
        tls: storeTls(c.tls),
        keyPrefix: c.key_prefix,
        operationTimeoutMs: c.operation_timeout,
        connectTimeoutMs: c.connect_timeout,
      });
    }
    case "etcd": {
      const { EtcdStore } = await import("../adapters/etcd/index.js");
      return new EtcdStore({
        hosts: c.hosts,
        username: c.username,
        password: c.password,
        tls: storeTls(c.tls),
        keyPrefix: c.key_prefix,
        operationTimeoutMs: c.operation_timeout,
        connectTimeoutMs: c.connect_timeout,
      });
    }
  }
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
