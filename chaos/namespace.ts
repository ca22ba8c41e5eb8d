import { createConnection } from "mysql2/promise";
import pg from "pg";
import { Redis } from "ioredis";
import { EtcdClient } from "../src/adapters/etcd/client.js";
import { tableNames as mysqlTables } from "../src/adapters/mysql/schema.js";
import { schemaTables as postgresTables } from "../src/adapters/postgres/schema.js";
import type { Backend, Endpoint } from "./backends.js";

/**
 * Removes what one run left on a shared store server: its tables (PostgreSQL, MariaDB), its keys
 * (Redis) or its key prefix and the leases behind it (etcd). A long profile makes thousands of runs;
 * without this the shared `test` database would collect four tables per run. The prefix is read
 * from the run's own `store:` section, so this never touches another run's or another suite's data.
 */
export async function dropNamespace(backend: Backend, ns: string, server: Endpoint): Promise<void> {
  const section = backend.store(ns, server, "");
  const { host, port } = server;
  switch (backend.name) {
    case "postgres": {
      const client = new pg.Client({ host, port, user: "postgres", database: "test", connectionTimeoutMillis: 5000 });
      await client.connect();
      try {
        await client.query(`DROP TABLE IF EXISTS ${Object.values(postgresTables(String(section["table_prefix"]))).join(", ")}`);
      } finally {
        await client.end();
      }
      return;
    }
    case "mysql": {
      const conn = await createConnection({ host, port, user: "root", database: "test", connectTimeout: 5000 });
      try {
        await conn.query(`DROP TABLE IF EXISTS ${mysqlTables(String(section["table_prefix"])).map((t) => `\`${t}\``).join(", ")}`);
      } finally {
        await conn.end();
      }
      return;
    }
    case "redis": {
      const client = new Redis({ host, port, lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000 });
      await client.connect();
      try {
        const pattern = `{${String(section["key_prefix"])}}*`;
        let cursor = "0";
        do {
          const [next, keys] = await client.scan(cursor, "MATCH", pattern, "COUNT", 1000);
          if (keys.length > 0) await client.del(...keys);
          cursor = next;
        } while (cursor !== "0");
      } finally {
        client.disconnect();
      }
      return;
    }
    case "etcd": {
      const client = new EtcdClient({ hosts: [`http://${host}:${port}`], operationTimeoutMs: 5000, connectTimeoutMs: 5000 });
      try {
        const prefix = String(section["key_prefix"]);
        const kvs = await client.range(prefix, true, client.deadline());
        const leases = new Set(kvs.map((kv) => kv.lease).filter((l) => l !== "0"));
        await Promise.all([...leases].map((l) => client.revoke(l, client.deadline())));
        await client.txn([], [{ delete: prefix, prefix: true }], [], client.deadline());
      } finally {
        client.close();
      }
      return;
    }
    case "sqlite":
      return; // the database file lives in the run's directory
  }
}
