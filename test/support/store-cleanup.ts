import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import pg from "pg";
import { EtcdClient } from "../../src/adapters/etcd/client.js";
import { tableNames as mysqlTableNames } from "../../src/adapters/mysql/schema.js";
import { schemaTables as postgresTables } from "../../src/adapters/postgres/schema.js";

/**
 * Deleting what one namespace left on a shared server — the tests', the benchmarks' and the chaos
 * harness's — by the adapters' own table and key layout, so that nothing else on the server is
 * touched (never DROP DATABASE, FLUSHDB or a bare prefix of someone else's).
 */

/** Drops the tables of one SQL table prefix. `url`: postgres://… or mysql://… */
export async function dropTables(backend: "postgres" | "mysql", url: string, prefix: string): Promise<void> {
  if (backend === "postgres") {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    client.on("error", () => {});
    await client.connect();
    try {
      await client.query(`DROP TABLE IF EXISTS ${Object.values(postgresTables(prefix)).join(", ")}`);
    } finally {
      await client.end().catch(() => {});
    }
    return;
  }
  const conn = await mysql.createConnection({ uri: url, connectTimeout: 5000 });
  try {
    await conn.query(
      `DROP TABLE IF EXISTS ${mysqlTableNames(prefix)
        .map((t) => `\`${t}\``)
        .join(", ")}`,
    );
  } finally {
    await conn.end().catch(() => {});
  }
}

/** Deletes the keys of one Redis key prefix (`{prefix}...`, the adapter's layout) with SCAN, or those matching `pattern`. */
export async function deleteRedisKeys(url: string, prefix: string, pattern = `{${prefix}}*`): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, commandTimeout: 5000 });
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

/** Deletes every key under an etcd prefix, revoking the leases behind them so none lingers until it expires. */
export async function deleteEtcdPrefix(hosts: string[], prefix: string): Promise<void> {
  const client = new EtcdClient({ hosts, operationTimeoutMs: 5000, connectTimeoutMs: 5000 });
  try {
    const kvs = await client.range(prefix, true, client.deadline());
    const leases = new Set(kvs.map((kv) => kv.lease).filter((l) => l !== "0"));
    await Promise.all([...leases].map((l) => client.revoke(l, client.deadline())));
    await client.txn([], [{ delete: prefix, prefix: true }], [], client.deadline());
  } finally {
    client.close();
  }
}
