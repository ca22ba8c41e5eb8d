import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll } from "vitest";
import { BACKENDS } from "../../chaos/backends.js";
import { makeCa } from "../support/certs.js";
import { storeTlsSuite } from "./store-tls.suite.js";

/**
 * PostgreSQL over TLS: a private server of this file's own (ssl = on, only `hostssl` entries with
 * `clientcert=verify-ca`, so plain TCP and clients without a certificate are refused), started from
 * the template the chaos harness keeps (one initdb per machine) on a free port and stopped after.
 */
const dir = mkdtempSync(join(tmpdir(), "mc-tls-pg-"));
const ca = makeCa("pg-ca", dir);
const otherCa = makeCa("other-ca", dir);
const server = await BACKENDS.postgres.privateServer!(dir, ca.issue("postgres"));
afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});
const { host, port } = server.endpoint;

storeTlsSuite({
  backend: "postgres",
  address: `${host}:${port}`,
  storeSection: (ns) => ({ backend: "postgres", host, port, user: "postgres", database: "test", table_prefix: `${ns}_` }),
  ca,
  client: ca.issue("client"),
  otherCa,
  requiresClientCert: true,
  encrypted: async (store) => {
    const prefix = (store as unknown as { tablePrefix: string }).tablePrefix;
    // Asked over a connection of our own with the same files: the store's pooled connections are
    // listed in pg_stat_ssl under its application_name.
    const client = new pg.Client({ host, port, user: "postgres", database: "test", ssl: { ...sslFiles() } });
    await client.connect();
    try {
      const r = await client.query<{ ssl: boolean }>(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
        [`multiconnect/${prefix}`],
      );
      return r.rows.length > 0 && r.rows.every((row) => row.ssl);
    } finally {
      await client.end();
    }
  },
  capabilities: { ttlMs: 300 },
});

function sslFiles() {
  const c = ca.issue("probe");
  return { ca: readFileSync(c.ca), cert: readFileSync(c.cert), key: readFileSync(c.key) };
}
