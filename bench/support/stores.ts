import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { StoreCapabilities } from "../../src/core/ports/store.js";
import { deleteEtcdPrefix, deleteRedisKeys, dropTables } from "../../test/support/store-cleanup.js";

/** The five real backends, in the order the report lists them. */
export const BACKENDS = ["sqlite", "postgres", "mysql", "redis", "etcd"] as const;
/** One of the five real backends. */
export type Backend = (typeof BACKENDS)[number];

/** The shared servers (the same variables and defaults as the test suite). */
export const SERVERS = {
  postgres: process.env["MC_PG_URL"] ?? "postgres://postgres@127.0.0.1:5432/test",
  mysql: process.env["MC_MYSQL_URL"] ?? "mysql://root@127.0.0.1:3306/test",
  redis: process.env["MC_REDIS_URL"] ?? "redis://127.0.0.1:6379",
  etcd: process.env["MC_ETCD_HOSTS"] ?? "http://127.0.0.1:2379",
};

/** A fresh namespace on one backend: the config's `store:` section, and how to delete it afterwards. */
export interface BenchStore {
  readonly backend: Backend;
  /** The `store:` section of a config file (snake_case keys, as users write it). */
  readonly section: Record<string, unknown>;
  /** Deletes exactly what this namespace created (tables, keys, file); never anything shared. */
  cleanup(): Promise<void>;
}

/** A random namespace name: letters and digits, valid as a table prefix and a key prefix. */
export function namespace(): string {
  return `b${randomBytes(4).toString("hex")}`;
}

/** A new namespace on `backend`; SQLite files go under `dir`. */
export function benchStore(backend: Backend, dir: string): BenchStore {
  const ns = namespace();
  switch (backend) {
    case "sqlite": {
      const path = join(dir, `${ns}.db`);
      return {
        backend,
        section: { backend, path },
        cleanup: async () => {
          for (const suffix of ["", "-wal", "-shm"]) rmSync(`${path}${suffix}`, { force: true });
        },
      };
    }
    case "postgres": {
      const prefix = `bench_${ns}_`;
      return {
        backend,
        section: { backend, url: SERVERS.postgres, table_prefix: prefix },
        cleanup: () => dropTables("postgres", SERVERS.postgres, prefix),
      };
    }
    case "mysql": {
      const prefix = `bench_${ns}_`;
      return {
        backend,
        section: { backend, url: SERVERS.mysql, table_prefix: prefix },
        cleanup: () => dropTables("mysql", SERVERS.mysql, prefix),
      };
    }
    case "redis": {
      const prefix = `mc-bench:${ns}:`;
      return {
        backend,
        section: { backend, url: SERVERS.redis, key_prefix: prefix },
        cleanup: () => deleteRedisKeys(SERVERS.redis, prefix),
      };
    }
    case "etcd": {
      const prefix = `mc-bench/${ns}/`;
      return {
        backend,
        section: { backend, hosts: SERVERS.etcd, key_prefix: prefix },
        cleanup: () => deleteEtcdPrefix(SERVERS.etcd.split(","), prefix),
      };
    }
  }
}

/** What each backend declares about its timing limits (the same values its adapter reports). */
export async function capabilitiesOf(backend: Backend | "memory"): Promise<StoreCapabilities> {
  switch (backend) {
    case "memory":
      return {};
    case "sqlite":
      return (await import("../../src/adapters/sqlite/index.js")).sqliteCapabilities({});
    case "postgres":
      return (await import("../../src/adapters/postgres/index.js")).postgresCapabilities;
    case "mysql":
      return (await import("../../src/adapters/mysql/index.js")).mysqlCapabilities({});
    case "redis":
      return (await import("../../src/adapters/redis/index.js")).redisCapabilities;
    case "etcd":
      return (await import("../../src/adapters/etcd/index.js")).etcdCapabilities;
  }
}
