import { createConnection } from "mysql2/promise";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MysqlStore } from "../../src/adapters/mysql/index.js";
import { tableNames } from "../../src/adapters/mysql/schema.js";
import { StoreConfigurationError } from "../../src/core/errors.js";
import { FaultProxy } from "../../src/testing/fault-proxy.js";
import { randomNamespace } from "../../src/testing/net.js";
import { storeConformance } from "../../src/testing/store-conformance.js";
import { controlConformance } from "../../src/testing/control-conformance.js";
import { schemaConformance } from "../../src/testing/schema-conformance.js";

/**
 * The MySQL/MariaDB adapter against a real server (`MC_MYSQL_URL`, default the local MariaDB).
 * Every test works in its own random table prefix and only its own tables are dropped afterwards.
 * An unreachable server fails this file; `MC_SKIP_MYSQL=1` skips it on purpose.
 */
const url = process.env.MC_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";
const server = new URL(url);
/** The URL as it may be printed: without its password. */
const shown = server.password ? url.replace(`:${server.password}@`, ":***@") : url;
const ttlMs = 400;
const pollIntervalMs = 50;

const namespaces = new Set<string>();
const prefixOf = (namespace: string) => {
  namespaces.add(namespace);
  return `${namespace}_`;
};

/** A plain connection for probing and cleaning up, outside the code under test. */
async function adminConnection() {
  return createConnection({ uri: url, connectTimeout: 3000 });
}

if (process.env.MC_SKIP_MYSQL === "1") {
  const why = `mysql adapter tests skipped: MC_SKIP_MYSQL=1 (server ${shown} not used)`;
  console.warn(why);
  // An empty, skipped suite: no tests run, the reason shows in the report, and vitest does not
  // fail the file for having no suite at all.
  describe.skip(why, () => {});
} else {
  beforeAll(async () => {
    const conn = await adminConnection().catch((error: unknown) => {
      throw new Error(
        `mysql: cannot reach ${shown} (${String((error as Error).message)}). Start the server, point MC_MYSQL_URL at one, ` +
          `or set MC_SKIP_MYSQL=1 to skip these tests on purpose.`,
      );
    });
    await conn.end();
  });

  afterAll(async () => {
    if (namespaces.size === 0) return;
    const conn = await adminConnection();
    try {
      const tables = [...namespaces].flatMap((ns) => tableNames(`${ns}_`));
      await conn.query(`DROP TABLE IF EXISTS ${tables.map((t) => `\`${t}\``).join(", ")}`);
    } finally {
      await conn.end();
    }
  });

  const openAt = async (namespace: string, host: string, port: number, operationTimeoutMs: number) =>
    new MysqlStore({ host, port, user: "root", database: "test", tablePrefix: prefixOf(namespace), operationTimeoutMs });
  const sql = async <T>(statement: string, values: unknown[] = []): Promise<T> => {
    const conn = await adminConnection();
    try {
      return (await conn.query(statement, values))[0] as T;
    } finally {
      await conn.end();
    }
  };
  schemaConformance({ describe, it, afterEach, expect }, "mysql", {
    open: async (namespace) => new MysqlStore({ url, tablePrefix: prefixOf(namespace), pollIntervalMs }),
    setSchemaVersion: async (namespace, version) => {
      await sql(`UPDATE \`${namespace}_meta\` SET v = ? WHERE k = 'schema_version'`, [String(version)]);
    },
    addUnknown: async (namespace) => {
      await sql(`CREATE TABLE \`${namespace}_future\` (x INT) ENGINE = InnoDB`);
    },
    listRaw: async (namespace) =>
      (
        await sql<{ name: string }[]>(
          `SELECT table_name AS name FROM information_schema.tables
           WHERE table_schema = DATABASE() AND BINARY LEFT(table_name, CHAR_LENGTH(?)) = BINARY ? ORDER BY name`,
          [`${namespace}_`, `${namespace}_`],
        )
      ).map((r) => String(r.name)),
    nested: (namespace) => `${namespace}_x`,
  });

  storeConformance({ describe, it, afterEach, expect }, "mysql", {
    open: async (namespace) => new MysqlStore({ url, tablePrefix: prefixOf(namespace), pollIntervalMs }),
    capabilities: { ttlMs, pollIntervalMs, openAt },
  });

  controlConformance({ describe, it, afterEach, expect }, "mysql", {
    open: async (namespace, o) => new MysqlStore({ url, tablePrefix: prefixOf(namespace), pollIntervalMs, ...o }),
    capabilities: { ttlMs, pollIntervalMs, openAt },
  });

  describe("mysql: a slow link", () => {
    it("an operation that outlives its deadline costs no connection: it waits out of the pool for its late answer, then serves again", async () => {
      // Round trip 700 ms against a 500 ms deadline (ample on a loaded machine once the link is fast again): every operation times out while the link is slow.
      const proxy = new FaultProxy(server.hostname, Number(server.port || 3306), "mysql");
      await proxy.start();
      const store = await openAt(randomNamespace(), "127.0.0.1", proxy.port, 500);
      try {
        await store.migrate();
        const taken = await store.leases.acquire("slow", "h", 60_000);
        if (!taken.acquired) throw new Error("the lease was not taken");
        proxy.set({ kind: "delay", delayMs: 350 });
        for (let i = 0; i < 10; i++) await expect(store.leases.renew(taken.lease, 60_000)).rejects.toThrow(/no answer within 500 ms/);
        proxy.set({ kind: "pass" });
        // Every late answer is read by the operation that asked (none reaches the next caller's) …
        for (let i = 0; i < 8; i++) {
          expect(await store.leases.current("slow")).toEqual(taken.lease);
          expect(await store.leases.renew(taken.lease, 60_000)).toBe(true);
        }
        // … and no connection was thrown away: the pool (4) never had to open a fifth.
        expect(proxy.accepted).toBeLessThanOrEqual(4);
      } finally {
        await store.close();
        await proxy.close();
      }
    });
  });

  describe("mysql: schema upgrade", () => {
    it("migrate() upgrades a version-1 schema: the control-plane tables appear and the recorded version becomes 2", async () => {
      const prefix = prefixOf(randomNamespace());
      const store = new MysqlStore({ url, tablePrefix: prefix });
      const conn = await adminConnection();
      try {
        await store.migrate();
        // Back to what a version-1 SDK left: no control-plane tables, version 1 recorded.
        await conn.query(`DROP TABLE \`${prefix}cluster\`, \`${prefix}history\``);
        await conn.query(`UPDATE \`${prefix}meta\` SET v = '1' WHERE k = 'schema_version'`);
        await store.migrate();
        const [rows] = await conn.query(`SELECT v FROM \`${prefix}meta\` WHERE k = 'schema_version'`);
        expect((rows as { v: string }[])[0]?.v).toBe("2");
        expect(await store.clusterDocument.read()).toBeNull();
        expect(await store.history.list()).toEqual([]);
      } finally {
        await conn.end();
        await store.close();
      }
    });
  });

  describe("mysql: credentials", () => {
    const secret = "Wr0ng-S3cret-Pa55";

    const attempt = async (user: string) => {
      const bad = new URL(url);
      bad.username = user;
      bad.password = secret;
      const store = new MysqlStore({
        url: bad.toString(),
        tablePrefix: prefixOf(randomNamespace()),
        operationTimeoutMs: 3000,
      });
      try {
        return await store.leases.current("l").then(
          () => null,
          (e: unknown) => e,
        );
      } finally {
        await store.close();
      }
    };

    it("a wrong password or an unknown user gives StoreConfigurationError naming mysql and the host, never the password", async () => {
      for (const user of ["mc_no_such_user", decodeURIComponent(server.username) || "root"]) {
        const error = await attempt(user);
        expect(error, `user ${user}`).toBeInstanceOf(StoreConfigurationError);
        const e = error as StoreConfigurationError;
        expect(e.retryable).toBe(false);
        expect(e.message).toContain("mysql");
        expect(e.message).toContain(server.hostname);
        expect(e.message).not.toContain(secret);
        expect(JSON.stringify({ ...e, message: e.message, stack: e.stack })).not.toContain(secret);
      }
    });
  });
}
