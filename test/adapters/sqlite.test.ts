import Database from "better-sqlite3";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../../src/adapters/sqlite/index.js";
import { schemaConformance } from "../conformance/schema.suite.js";
import { storeConformance } from "../conformance/store.suite.js";

const dir = mkdtempSync(join(tmpdir(), "mc-sqlite-"));

storeConformance("sqlite", {
  open: async (namespace) => new SqliteStore({ path: join(dir, "conformance.db"), tablePrefix: `${namespace}_` }),
  capabilities: { ttlMs: 300, pollIntervalMs: 5 },
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

schemaConformance("sqlite", {
  open: async (namespace) => new SqliteStore({ path: join(dir, "conformance.db"), tablePrefix: `${namespace}_` }),
  setSchemaVersion: async (namespace, version) => {
    raw((db) => db.prepare(`UPDATE ${namespace}_meta SET value = ? WHERE key = 'schema_version'`).run(String(version)));
  },
  addUnknown: async (namespace) => {
    raw((db) => db.exec(`CREATE TABLE ${namespace}_future (x INTEGER)`));
  },
  listRaw: async (namespace) =>
    raw((db) =>
      (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, ?) = ? ORDER BY name").all(
        namespace.length + 1,
        `${namespace}_`,
      ) as { name: string }[]).map((r) => r.name),
    ),
  nested: (namespace) => `${namespace}_x`,
});
