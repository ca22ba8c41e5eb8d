import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { afterAll } from "vitest";
import { BACKENDS } from "../../chaos/backends.js";
import { makeCa } from "../support/certs.js";
import { storeTlsSuite } from "./store-tls.suite.js";

/**
 * MariaDB over TLS: a private mariadbd of this file's own with TLS on, started from the chaos
 * harness's template on a free port and stopped after. It runs without grant tables, so it can
 * neither demand client certificates nor refuse plain clients (`require_secure_transport` is not
 * enforced then): the suite's client sends a certificate anyway, and those two refusals are not
 * tested here. That the store's connections are encrypted is shown by the server's own counter.
 */
const dir = mkdtempSync(join(tmpdir(), "mc-tls-mysql-"));
const ca = makeCa("mysql-ca", dir);
const otherCa = makeCa("other-ca", dir);
const server = await BACKENDS.mysql.privateServer!(dir, ca.issue("mariadb"));
afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});
const { host, port } = server.endpoint;
const pollIntervalMs = 20;

storeTlsSuite({
  backend: "mysql",
  address: `${host}:${port}`,
  storeSection: (ns) => ({
    backend: "mysql",
    host,
    port,
    user: "root",
    database: "test",
    table_prefix: `${ns}_`,
    poll_interval: pollIntervalMs,
  }),
  ca,
  client: ca.issue("client"),
  otherCa,
  requiresClientCert: false,
  refusesPlain: false,
  encrypted: async () => {
    // The server counts TLS handshakes it accepted (global status): the suite's stores made them.
    const conn = await mysql.createConnection({ host, port, user: "root", database: "test" });
    try {
      const [rows] = await conn.query("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'");
      return Number((rows as { Value: string }[])[0]?.Value) > 0;
    } finally {
      await conn.end();
    }
  },
  capabilities: { ttlMs: 300, pollIntervalMs },
});
