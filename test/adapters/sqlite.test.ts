import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../../src/adapters/sqlite/index.js";
import { randomNamespace } from "../../src/testing/net.js";
import { storeConformance } from "../../src/testing/store-conformance.js";
import { ClusterDocumentError } from "../../src/core/errors.js";
import { MASTER_LEASE } from "../../src/core/ports/leases.js";
import { DEFAULT_SETTINGS } from "../../src/core/timing.js";
import { controlConformance } from "../../src/testing/control-conformance.js";
import { schemaConformance } from "../../src/testing/schema-conformance.js";

const dir = mkdtempSync(join(tmpdir(), "mc-sqlite-"));

storeConformance({ describe, it, afterEach, expect }, "sqlite", {
  open: async (namespace) => new SqliteStore({ path: join(dir, "conformance.db"), tablePrefix: `${namespace}_` }),
  capabilities: { ttlMs: 300, pollIntervalMs: 5 },
});

controlConformance({ describe, it, afterEach, expect }, "sqlite", {
  open: async (namespace, o) => new SqliteStore({ path: join(dir, "conformance.db"), tablePrefix: `${namespace}_`, ...o }),
  capabilities: { ttlMs: 300, writerWallClock: true, pollIntervalMs: 5 },
});

describe("sqlite: cluster document", () => {
  it("read() reports a stored document whose settings fail validation with ClusterDocumentError naming the version and the key", async () => {
    const prefix = `${randomNamespace()}_`;
    const file = join(dir, "conformance.db");
    const store = new SqliteStore({ path: file, tablePrefix: prefix });
    try {
      await store.migrate();
      const m = await store.leases.acquire(MASTER_LEASE, "m1", 10_000);
      if (!m.acquired) throw new Error("setup: master lease");
      const w = await store.clusterDocument.write(0, { settings: DEFAULT_SETTINGS, shardCount: 2, pauses: [] }, m.lease);
      if (!w.ok) throw new Error("setup: write");
      // Another tool (or an older SDK) left settings this SDK refuses.
      const raw = new Database(file);
      const unsafe = JSON.stringify({ settings: { ...DEFAULT_SETTINGS, unhealthyIntervalMs: 1_000 }, shardCount: 2, pauses: [] });
      raw.prepare(`UPDATE ${prefix}cluster SET document = ?`).run(unsafe);
      raw.close();
      const error = await store.clusterDocument.read().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ClusterDocumentError);
      expect((error as Error).message).toMatch(new RegExp(`version ${w.version} .*settings\\.unhealthy_interval`));
      expect(await store.clusterDocument.version()).toBe(w.version);
    } finally {
      await store.close();
    }
  });
});
/** A short-lived raw connection to the test file, outside the code under test. */
function raw<T>(fn: (db: Database.Database) => T): T {
  const db = new Database(join(dir, "conformance.db"));
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

schemaConformance({ describe, it, afterEach, expect }, "sqlite", {
  open: async (namespace) => new SqliteStore({ path: join(dir, "conformance.db"), tablePrefix: `${namespace}_` }),
  setSchemaVersion: async (namespace, version) => {
    raw((db) => db.prepare(`UPDATE ${namespace}_meta SET value = ? WHERE key = 'schema_version'`).run(String(version)));
  },
  addUnknown: async (namespace) => {
    raw((db) => db.exec(`CREATE TABLE ${namespace}_future (x INTEGER)`));
  },
  listRaw: async (namespace) =>
    raw((db) =>
      (
        db
          .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, ?) = ? ORDER BY name")
          .all(namespace.length + 1, `${namespace}_`) as { name: string }[]
      ).map((r) => r.name),
    ),
  nested: (namespace) => `${namespace}_x`,
});
