import Database from "better-sqlite3";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/adapters/sqlite/index.js";
import { SystemClock } from "../../src/core/clock.js";
import { SchemaTooNewError } from "../../src/core/errors.js";
import type { Logger } from "../../src/core/ports/logger.js";
import { prepareSchema } from "../../src/nodes/deps.js";

/** Who upgrades the schema at start, on a real SQLite file: only the primary master; others wait. */
const dir = mkdtempSync(join(tmpdir(), "mc-prepare-"));
const file = join(dir, "cluster.db");
const opened: SqliteStore[] = [];
const open = (prefix: string) => {
  const s = new SqliteStore({ path: file, tablePrefix: prefix });
  opened.push(s);
  return s;
};
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});
const stamp = (prefix: string, version: number) => {
  const db = new Database(file);
  db.prepare(`UPDATE ${prefix}meta SET value = ? WHERE key = 'schema_version'`).run(String(version));
  db.close();
};
const said: string[] = [];
const log: Logger = { debug: () => {}, info: (_f, m) => said.push(m), warn: () => {}, error: () => {}, child: () => log };
const clock = new SystemClock();
let n = 0;
const prefix = () => `p${Date.now().toString(36)}${n++}_`;

describe("prepareSchema()", () => {
  it("creates a missing schema from any role (the cluster's first start)", async () => {
    const p = prefix();
    const s = open(p);
    await prepareSchema(s, clock, new AbortController().signal, log, "coreapp");
    expect(await s.recordedSchemaVersion()).toBe(s.schemaVersion);
  });

  it("an older schema: a master leaves it to its tenure; a coreapp waits, saying so, until the primary master upgraded it", async () => {
    const p = prefix();
    const s = open(p);
    await s.migrate();
    stamp(p, 0);
    await prepareSchema(s, clock, new AbortController().signal, log, "master");
    expect(await s.recordedSchemaVersion()).toBe(0);

    said.length = 0;
    let done = false;
    const waiting = prepareSchema(open(p), clock, new AbortController().signal, log, "coreapp").then(() => (done = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(done).toBe(false);
    expect(said.join("\n")).toMatch(/schema version 0 is older than this SDK's \d+; waiting for the primary master/);
    await open(p).migrate(); // what the primary master does in its tenure
    await waiting;
    expect(await s.recordedSchemaVersion()).toBe(s.schemaVersion);
  });

  it("a newer schema is refused with SchemaTooNewError, whatever the role", async () => {
    const p = prefix();
    const s = open(p);
    await s.migrate();
    stamp(p, 99);
    for (const role of ["master", "coreapp", "webapp"] as const) {
      await expect(prepareSchema(open(p), clock, new AbortController().signal, log, role)).rejects.toBeInstanceOf(SchemaTooNewError);
    }
  });
});
