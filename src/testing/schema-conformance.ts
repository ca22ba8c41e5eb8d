import { SchemaTooNewError } from "../core/errors.js";
import { MASTER_LEASE } from "../core/ports/leases.js";
import type { Store } from "../core/ports/store.js";
import { randomNamespace } from "./net.js";
import type { ConformanceTestApi } from "./store-conformance.js";

/**
 * The schema-lifecycle conformance suite: what upgrades and `multiconnect reset` rely on, run
 * against every real backend. Each backend's test file gives raw access to its own namespace
 * (what an older or newer SDK, or another tool, would have written there).
 */
export interface SchemaConformanceOptions {
  /** Opens a store on its own namespace (table or key prefix). */
  open(namespace: string): Promise<Store>;
  /** Writes `version` as the namespace's recorded schema version, as a newer SDK would. */
  setSchemaVersion(namespace: string, version: number): Promise<void>;
  /** Creates one table or key under the namespace's prefix that this SDK does not know (a later version's). */
  addUnknown(namespace: string): Promise<void>;
  /** The raw names (tables or keys) under the namespace's prefix, as the backend lists them. */
  listRaw(namespace: string): Promise<string[]>;
  /**
   * The namespace of a second cluster whose prefix starts with `namespace`'s (e.g. "mc_" and
   * "mc_x_"), which purging `namespace` must leave alone.
   */
  nested(namespace: string): string;
  /** Per-test timeout in ms (default 30 000). */
  readonly timeoutMs?: number;
}

/**
 * The schema-lifecycle conformance suite: registers, with the given test functions, the tests of
 * `migrate()` against older and newer recorded schema versions and of `purge()` (everything under
 * the prefix goes, a nested prefix stays). Run it against a real server. Call it at the top level
 * of a test file:
 *
 * ```ts
 * import { afterEach, describe, expect, it } from "vitest";
 * schemaConformance({ describe, it, afterEach, expect }, "mystore", { open: …, setSchemaVersion: …, addUnknown: …, listRaw: …, nested: … });
 * ```
 */
export function schemaConformance(t: ConformanceTestApi, backend: string, options: SchemaConformanceOptions): void {
  const { describe, expect } = t;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const it = (name: string, body: () => Promise<void>) => t.it(name, body, timeoutMs);
  const opened: Store[] = [];
  const open = async (ns: string) => {
    const store = await options.open(ns);
    opened.push(store);
    return store;
  };

  t.afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close().catch(() => {})));
  });

  describe(`${backend}: schema lifecycle conformance`, () => {
    it("migrate() refuses a schema recorded by a newer SDK with SchemaTooNewError naming both versions, and writes nothing", async () => {
      const ns = randomNamespace();
      const first = await open(ns);
      expect(await first.recordedSchemaVersion()).toBeNull();
      await first.migrate();
      expect(await first.recordedSchemaVersion()).toBe(first.schemaVersion);
      await options.setSchemaVersion(ns, 99);
      expect(await first.recordedSchemaVersion()).toBe(99);
      const second = await open(ns);
      const error = await second.migrate().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SchemaTooNewError);
      const e = error as SchemaTooNewError;
      expect(e.code).toBe("schema_too_new");
      expect(e.found).toBe(99);
      expect(e.supported).toBeGreaterThanOrEqual(1);
      expect(e.supported).toBeLessThan(99);
      expect(e.message).toContain("99");
      expect(e.message).toContain(String(e.supported));
      // Refused again: the first refusal did not write its own version over the newer one.
      await expect((await open(ns)).migrate()).rejects.toBeInstanceOf(SchemaTooNewError);
    });

    it("migrate() accepts the schema it wrote, and an older recorded version (upgrading it)", async () => {
      const ns = randomNamespace();
      const first = await open(ns);
      await first.migrate();
      await first.migrate();
      await options.setSchemaVersion(ns, 0);
      expect(await first.recordedSchemaVersion()).toBe(0);
      await (await open(ns)).migrate();
      await (await open(ns)).migrate();
      expect(await first.recordedSchemaVersion()).toBe(first.schemaVersion);
    });

    it("purge() removes every table or key of the prefix, unknown ones included, returns them, and leaves a nested prefix alone", async () => {
      const ns = randomNamespace();
      const other = options.nested(ns);
      const store = await open(ns);
      await store.migrate();
      const m = await store.leases.acquire(MASTER_LEASE, "m1", 30_000);
      if (!m.acquired) throw new Error("setup: master lease not acquired");
      await store.shardMap.assign(0, 0, "c1", m.lease);
      await store.liveness.beat({ id: "c1", name: "c1", role: "coreapp", address: "h:1", meta: {} });
      await options.addUnknown(ns);
      const before = await options.listRaw(ns);
      expect(before.length).toBeGreaterThan(1);
      const neighbour = await open(other);
      await neighbour.migrate();
      await neighbour.liveness.beat({ id: "n1", name: "n1", role: "coreapp", address: "h:2", meta: {} });
      const neighbourBefore = await options.listRaw(other);
      expect(neighbourBefore.length).toBeGreaterThan(0);

      const removed = await store.purge();
      expect(removed).toEqual([...before].sort());
      // What is left under the prefix (if the backend's listing includes the nested one) is the neighbour's.
      for (const name of await options.listRaw(ns)) expect(neighbourBefore).toContain(name);
      expect(await options.listRaw(other)).toEqual(neighbourBefore);
      expect((await neighbour.liveness.list()).map((n) => n.id)).toEqual(["n1"]);
      expect(await store.purge()).toEqual([]);

      // The namespace starts again from scratch.
      await store.migrate();
      expect(await store.liveness.list()).toEqual([]);
      expect(await store.shardMap.read()).toEqual([]);
    });
  });
}
