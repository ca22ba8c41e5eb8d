import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../../src/adapters/sqlite/index.js";
import { storeConformance } from "../../src/testing/store-conformance.js";

const dir = mkdtempSync(join(tmpdir(), "mc-sqlite-"));

storeConformance({ describe, it, afterEach, expect }, "sqlite", {
  open: async (namespace) => new SqliteStore({ path: join(dir, "conformance.db"), tablePrefix: `${namespace}_` }),
  capabilities: { ttlMs: 300, pollIntervalMs: 5 },
});
