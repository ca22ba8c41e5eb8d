import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import pg from "pg";
import type { StoreCapabilities } from "../../src/core/ports/store.js";

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
      return { backend, section: { backend, url: SERVERS.postgres, table_prefix: prefix }, cleanup: () => dropPostgres(prefix) };
    }
    case "mysql": {
      const prefix = `bench_${ns}_`;
      return { backend, section: { backend, url: SERVERS.mysql, table_prefix: prefix }, cleanup: () => dropMysql(prefix) };
    }
    case "redis": {
      const prefix = `mc-bench:${ns}:`;
      return { backend, section: { backend, url: SERVERS.redis, key_prefix: prefix }, cleanup: () => deleteRedis(prefix) };
    }
    case "etcd": {
      const prefix = `mc-bench/${ns}/`;
      return { backend, section: { backend, hosts: SERVERS.etcd, key_prefix: prefix }, cleanup: () => deleteEtcd(prefix) };
    }
  }
}

const TABLES = ["meta", "leases", "shards", "nodes"];

async function dropPostgres(prefix: string): Promise<void> {
  const client = new pg.Client({ connectionString: SERVERS.postgres, connectionTimeoutMillis: 5000 });
  client.on("error", () => {});
  await client.connect();
  try {
    await client.query(`DROP TABLE IF EXISTS ${TABLES.map((t) => `"${prefix}${t}"`).join(", ")}`);
  } finally {
    await client.end().catch(() => {});
  }
}

async function dropMysql(prefix: string): Promise<void> {
  const conn = await mysql.createConnection({ uri: SERVERS.mysql, connectTimeout: 5000 });
  try {
    await conn.query(`DROP TABLE IF EXISTS ${TABLES.map((t) => `\`${prefix}${t}\``).join(", ")}`);
  } finally {
    await conn.end().catch(() => {});
  }
}

/** Deletes the keys of one Redis namespace (`{prefix}...`, see the adapter's key layout) with SCAN, never FLUSH*. */
export async function deleteRedis(prefix: string, pattern = `{${prefix}}*`): Promise<void> {
  const client = new Redis(SERVERS.redis, { lazyConnect: true, maxRetriesPerRequest: 1, commandTimeout: 5000 });
  client.on("error", () => {});
  try {
    await client.connect();
    let cursor = "0";
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  } finally {
    client.disconnect();
  }
}

/** Deletes every key under an etcd prefix. */
export async function deleteEtcd(prefix: string): Promise<void> {
  const client = new Etcd3({ hosts: SERVERS.etcd.split(",") });
  try {
    await client.delete().prefix(prefix);
  } finally {
    client.close();
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
