import { createConnection } from "mysql2/promise";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MysqlStore } from "../../src/adapters/mysql/index.js";
import { tableNames } from "../../src/adapters/mysql/schema.js";
import { StoreConfigurationError } from "../../src/core/errors.js";
import { randomNamespace } from "../../src/testing/net.js";
import { storeConformance } from "../../src/testing/store-conformance.js";

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

  storeConformance({ describe, it, afterEach, expect }, "mysql", {
    open: async (namespace) => new MysqlStore({ url, tablePrefix: prefixOf(namespace), pollIntervalMs }),
    capabilities: {
      ttlMs,
      pollIntervalMs,
      openAt: async (namespace, host, port, operationTimeoutMs) =>
        new MysqlStore({
          host,
          port,
          user: "root",
          database: "test",
          tablePrefix: prefixOf(namespace),
          operationTimeoutMs,
        }),
    },
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
