import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../../src/adapters/sqlite/index.js";
import { controlConformance } from "../conformance/control.suite.js";
import { storeConformance } from "../conformance/store.suite.js";

const dir = mkdtempSync(join(tmpdir(), "mc-sqlite-"));

storeConformance("sqlite", {
  open: async (namespace) => new SqliteStore({ path: join(dir, "conformance.db"), tablePrefix: `${namespace}_` }),
  capabilities: { ttlMs: 300, pollIntervalMs: 5 },
});

controlConformance("sqlite", {
  open: async (namespace, o) => new SqliteStore({ path: join(dir, "conformance.db"), tablePrefix: `${namespace}_`, ...o }),
  capabilities: { ttlMs: 300, writerWallClock: true, pollIntervalMs: 5 },
});
