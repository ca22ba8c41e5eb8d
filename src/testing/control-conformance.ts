import { ClusterDocumentError, StoreUnavailableError } from "../core/errors.js";
import type { ClusterDocumentInput } from "../core/ports/cluster-document.js";
import type { HistoryEventInput } from "../core/ports/history.js";
import { MASTER_LEASE, type Lease } from "../core/ports/leases.js";
import type { Store } from "../core/ports/store.js";
import { DEFAULT_SETTINGS } from "../core/timing.js";
import { randomNamespace, startBlackhole } from "./net.js";
import { skewWallClock, type ConformanceOptions, type ConformanceTestApi } from "./store-conformance.js";

/** What the control-plane suite needs: the store suite's options, with an `open` that takes store options. */
export interface ControlConformanceOptions {
  /** Opens a store on its own namespace; `historyLimit` is passed to the adapter's option of that name. */
  open(namespace: string, options?: { historyLimit?: number }): Promise<Store>;
  /** The same declared limits as the store suite's (`ttlMs`, `openAt`, …). */
  capabilities: ConformanceOptions["capabilities"];
  /** Per-test timeout in ms (default 30 000): tests wait for real lease and pause expiries. */
  readonly timeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const doc = (over: Partial<ClusterDocumentInput> = {}): ClusterDocumentInput => ({
  settings: DEFAULT_SETTINGS,
  shardCount: 4,
  pauses: [],
  ...over,
});

const event = (over: Partial<HistoryEventInput> = {}): HistoryEventInput => ({
  type: "promoted",
  shard: 0,
  cause: "unhealthy: no heartbeat answer",
  evidence: { silenceMs: 31_250, livenessAgeMs: 4_020 },
  epochs: { master: 3, shard: 9 },
  node: "master-1.abc",
  ...over,
});

/**
 * The control-plane conformance suite: registers, with the given test functions, every test of the
 * cluster document (versioned compare-and-set fenced by the master lease, pauses timed by the
 * store's clock) and the history (fenced appends, bounded, paged listing), plus (with `openAt`)
 * their behaviour against an unreachable store. Every backend runs exactly these tests against a
 * real server; limits come from declared capabilities only. Call it at the top level of a test file:
 *
 * ```ts
 * import { afterEach, describe, expect, it } from "vitest";
 * controlConformance({ describe, it, afterEach, expect }, "mystore", { open: …, capabilities: { ttlMs: 1000 } });
 * ```
 */
export function controlConformance(t: ConformanceTestApi, backend: string, options: ControlConformanceOptions): void {
  const { describe, expect } = t;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const it = (name: string, body: () => Promise<void>) => t.it(name, body, timeoutMs);
  let skew: { restore(): void } | null = null;
  const { ttlMs } = options.capabilities;
  const expiryLagMs = options.capabilities.expiryLagMs ?? 0;
  const wholeSecondMs = options.capabilities.ttlWholeSeconds ? 1000 : 0;
  /** The shortest pause worth testing expiry with on this store. */
  const pauseMs = Math.max(400, options.capabilities.minTtlMs ?? 0);
  const opened: Store[] = [];
  const open = async (ns: string, o?: { historyLimit?: number }) => {
    const store = await options.open(ns, o);
    opened.push(store);
    return store;
  };
  const openPair = async (o?: { historyLimit?: number }) => {
    const ns = randomNamespace();
    const a = await open(ns, o);
    await a.migrate();
    return [a, await open(ns, o)] as const;
  };
  const master = async (store: Store, holder = "m1", ttl = ttlMs * 20): Promise<Lease> => {
    const r = await store.leases.acquire(MASTER_LEASE, holder, ttl);
    if (!r.acquired) throw new Error("setup: master lease not acquired");
    return r.lease;
  };
  /** A master whose lease has lapsed by the store's clock, and a successor's live lease. */
  const deposed = async (a: Store, b: Store) => {
    const old = await master(a, "m1", ttlMs);
    return {
      old,
      lapse: async () => {
        await sleep(ttlMs + expiryLagMs + 300);
        return master(b, "m2");
      },
    };
  };

  t.afterEach(async () => {
    skew?.restore();
    skew = null;
    await Promise.all(opened.splice(0).map((s) => s.close().catch(() => {})));
  });

  describe(`${backend}: control-plane conformance`, () => {
    describe("cluster document", () => {
      it("read() of a fresh store is null and version() is 0", async () => {
        const [a] = await openPair();
        expect(await a.clusterDocument.read()).toBeNull();
        expect(await a.clusterDocument.version()).toBe(0);
      });

      it("write(0) under the live master lease stores the document that every handle then reads, with a positive version", async () => {
        const [a, b] = await openPair();
        const m = await master(a);
        const settings = { ...DEFAULT_SETTINGS, unhealthyIntervalMs: 20_000, heartbeatQuorum: 3 };
        const r = await a.clusterDocument.write(0, doc({ settings, shardCount: 8 }), m);
        if (!r.ok) throw new Error(`write failed: ${r.reason}`);
        expect(r.version).toBeGreaterThan(0);
        expect(await b.clusterDocument.read()).toEqual({ version: r.version, document: { settings, shardCount: 8, pauses: [] } });
        expect(await b.clusterDocument.version()).toBe(r.version);
      });

      it("write() with a stale expected version returns a conflict with the current document and writes nothing", async () => {
        const [a, b] = await openPair();
        const m = await master(a);
        const first = await a.clusterDocument.write(0, doc(), m);
        if (!first.ok) throw new Error("setup: write failed");
        const current = await a.clusterDocument.read();
        expect(await b.clusterDocument.write(0, doc({ shardCount: 2 }), m)).toEqual({ ok: false, reason: "conflict", current });
        expect(await b.clusterDocument.write(first.version + 5, doc({ shardCount: 2 }), m)).toEqual({
          ok: false,
          reason: "conflict",
          current,
        });
        expect(await a.clusterDocument.read()).toEqual(current);
      });

      it("write() by a master whose lease lapsed, or who was deposed, or with an older tenure's epoch is fenced and writes nothing", async () => {
        const [a, b] = await openPair();
        const { old, lapse } = await deposed(a, b);
        const first = await a.clusterDocument.write(0, doc(), old);
        if (!first.ok) throw new Error("setup: write failed");
        const before = await a.clusterDocument.read();
        const m2 = await lapse();
        expect(await a.clusterDocument.write(first.version, doc({ shardCount: 1 }), old)).toEqual({
          ok: false,
          reason: "fenced",
        });
        expect(await a.clusterDocument.write(first.version, doc({ shardCount: 1 }), { ...m2, epoch: old.epoch })).toEqual({
          ok: false,
          reason: "fenced",
        });
        expect(await b.clusterDocument.read()).toEqual(before);
        expect((await b.clusterDocument.write(first.version, doc({ shardCount: 1 }), m2)).ok).toBe(true);
      });

      it("write() before any master holds the lease is fenced, even for a never-written document", async () => {
        const [a] = await openPair();
        expect(await a.clusterDocument.write(0, doc(), { name: MASTER_LEASE, holder: "m1", epoch: 1 })).toEqual({
          ok: false,
          reason: "fenced",
        });
        expect(await a.clusterDocument.read()).toBeNull();
      });

      it("write() from concurrent writers with the same expected version succeeds exactly once", async () => {
        const [a, b] = await openPair();
        const m = await master(a);
        const first = await a.clusterDocument.write(0, doc(), m);
        if (!first.ok) throw new Error("setup: write failed");
        for (const expected of [0, first.version]) {
          const before = await a.clusterDocument.version();
          const results = await Promise.all(
            Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).clusterDocument.write(expected, doc({ shardCount: 1 + i }), m)),
          );
          const winners = results.filter((r) => r.ok);
          expect(winners).toHaveLength(expected === before ? 1 : 0);
          if (winners[0]?.ok) {
            const won = results.indexOf(winners[0]);
            expect(await a.clusterDocument.read()).toMatchObject({
              version: winners[0].version,
              document: { shardCount: 1 + won },
            });
          }
        }
      });

      it("versions only grow, write after write", async () => {
        const [a] = await openPair();
        const m = await master(a);
        let version = 0;
        for (let i = 1; i <= 5; i++) {
          const r = await a.clusterDocument.write(version, doc({ shardCount: i }), m);
          if (!r.ok) throw new Error("write failed");
          expect(r.version).toBeGreaterThan(version);
          version = r.version;
        }
        expect(await a.clusterDocument.version()).toBe(version);
      });

      it("a pause is stamped by the store, read back with its time left, and ends by itself", async () => {
        const [a, b] = await openPair();
        const m = await master(a);
        const wallBefore = Date.now();
        const r = await a.clusterDocument.write(
          0,
          doc({
            pauses: [
              { shard: null, by: "ops", reason: "maintenance", expiresInMs: pauseMs },
              { shard: 2, by: "ops", reason: "upstream migration", expiresInMs: 600_000 },
            ],
          }),
          m,
        );
        if (!r.ok) throw new Error("setup: write failed");
        const read = await b.clusterDocument.read();
        expect(read?.document.pauses).toHaveLength(2);
        const [cluster, shard2] = read!.document.pauses;
        expect(cluster).toMatchObject({ shard: null, by: "ops", reason: "maintenance" });
        expect(cluster!.expiresInMs).toBeGreaterThan(0);
        expect(cluster!.expiresInMs).toBeLessThanOrEqual(pauseMs + wholeSecondMs);
        expect(shard2).toMatchObject({ shard: 2, by: "ops", reason: "upstream migration" });
        expect(shard2!.expiresInMs).toBeGreaterThan(590_000);
        expect(Math.abs(cluster!.pausedAtMs - wallBefore)).toBeLessThan(5_000);
        await sleep(pauseMs + wholeSecondMs + expiryLagMs + 300);
        const later = await b.clusterDocument.read();
        expect(later?.document.pauses).toEqual([expect.objectContaining({ shard: 2, pausedAtMs: shard2!.pausedAtMs })]);
        // Writing back what was read keeps a pause's start and carries on its time left.
        const again = await a.clusterDocument.write(r.version, later!.document, m);
        if (!again.ok) throw new Error("rewrite failed");
        const kept = (await a.clusterDocument.read())!.document.pauses[0]!;
        expect(kept.pausedAtMs).toBe(shard2!.pausedAtMs);
        // + 1: the store keeps whole milliseconds, rounded up.
        expect(kept.expiresInMs).toBeLessThanOrEqual(later!.document.pauses[0]!.expiresInMs + wholeSecondMs + 1);
      });

      it("pause expiry is judged by the store's clock: a client wall clock an hour ahead or behind changes nothing", async () => {
        const [a, b] = await openPair();
        const m = await master(a);
        const realNow = Date.now();
        const clock = (skew = skewWallClock(3_600_000));
        const r = await a.clusterDocument.write(0, doc({ pauses: [{ shard: null, by: "ops", reason: "", expiresInMs: 60_000 }] }), m);
        if (!r.ok) throw new Error("setup: write failed");
        clock.set(-3_600_000);
        const [p] = (await b.clusterDocument.read())!.document.pauses;
        expect(p!.expiresInMs).toBeGreaterThan(50_000);
        expect(p!.expiresInMs).toBeLessThanOrEqual(60_000 + wholeSecondMs);
        if (!options.capabilities.writerWallClock) expect(Math.abs(p!.pausedAtMs - realNow)).toBeLessThan(5_000);
      });

      it("write() refuses a malformed document or unsafe settings with ClusterDocumentError and writes nothing", async () => {
        const [a] = await openPair();
        const m = await master(a);
        const bad: ClusterDocumentInput[] = [
          doc({ settings: { ...DEFAULT_SETTINGS, unhealthyIntervalMs: 6_000 } }),
          doc({ shardCount: 0 }),
          doc({ pauses: [{ shard: 9, by: "ops", reason: "", expiresInMs: 1000 }] }),
          doc({ pauses: [{ shard: null, by: "ops", reason: "", expiresInMs: 0 }] }),
          doc({
            pauses: [
              { shard: 1, by: "ops", reason: "", expiresInMs: 1000 },
              { shard: 1, by: "ops", reason: "", expiresInMs: 1000 },
            ],
          }),
        ];
        for (const d of bad) {
          const error = await a.clusterDocument.write(0, d, m).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(ClusterDocumentError);
        }
        const unsafe = await a.clusterDocument.write(0, bad[0]!, m).catch((e: Error) => e.message);
        expect(unsafe).toContain("unhealthy_interval");
        expect(await a.clusterDocument.read()).toBeNull();
      });
    });

    describe("history", () => {
      it("append() under the live master lease stores the event with a growing sequence and the store's time; list() is newest first", async () => {
        const [a, b] = await openPair();
        const m = await master(a);
        const wallBefore = Date.now();
        const appended = [];
        for (let i = 0; i < 3; i++) {
          const r = await a.history.append(event({ shard: i, epochs: { master: m.epoch, shard: 10 + i } }), m);
          if (!r.ok) throw new Error("append failed");
          appended.push(r.event);
        }
        for (let i = 1; i < appended.length; i++) expect(appended[i]!.seq).toBeGreaterThan(appended[i - 1]!.seq);
        expect(Math.abs(appended[0]!.atMs - wallBefore)).toBeLessThan(5_000);
        const list = await b.history.list();
        expect(list).toEqual([...appended].reverse());
        expect(list[2]).toMatchObject({
          type: "promoted",
          shard: 0,
          cause: "unhealthy: no heartbeat answer",
          evidence: { silenceMs: 31_250, livenessAgeMs: 4_020 },
          epochs: { master: m.epoch, shard: 10 },
          node: "master-1.abc",
        });
      });

      it("append() by a master whose lease lapsed or who was deposed is fenced and stores nothing", async () => {
        const [a, b] = await openPair();
        const { old, lapse } = await deposed(a, b);
        expect((await a.history.append(event(), old)).ok).toBe(true);
        await lapse();
        expect(await a.history.append(event({ cause: "stale" }), old)).toEqual({ ok: false, reason: "fenced" });
        const list = await b.history.list();
        expect(list).toHaveLength(1);
        expect(list[0]!.cause).not.toBe("stale");
      });

      it("the history keeps only the newest historyLimit events, and sequence numbers keep growing past the bound", async () => {
        const [a] = await openPair({ historyLimit: 5 });
        const m = await master(a);
        const seqs: number[] = [];
        for (let i = 0; i < 9; i++) {
          const r = await a.history.append(event({ cause: `e${i}` }), m);
          if (!r.ok) throw new Error("append failed");
          seqs.push(r.event.seq);
        }
        const list = await a.history.list();
        expect(list.map((e) => e.cause)).toEqual(["e8", "e7", "e6", "e5", "e4"]);
        expect(list.map((e) => e.seq)).toEqual(seqs.slice(4).reverse());
        expect(await a.history.list({ limit: 50 })).toHaveLength(5);
      });

      it("list() filters by shard, limits, and pages with before", async () => {
        const [a] = await openPair();
        const m = await master(a);
        for (let i = 0; i < 10; i++) {
          const r = await a.history.append(event({ shard: i % 3 === 0 ? null : i % 3, cause: `e${i}` }), m);
          if (!r.ok) throw new Error("append failed");
        }
        expect((await a.history.list({ shard: 1 })).map((e) => e.cause)).toEqual(["e7", "e4", "e1"]);
        expect((await a.history.list({ limit: 2 })).map((e) => e.cause)).toEqual(["e9", "e8"]);
        const page1 = await a.history.list({ limit: 4 });
        const page2 = await a.history.list({ limit: 4, before: page1.at(-1)!.seq });
        expect(page2.map((e) => e.cause)).toEqual(["e5", "e4", "e3", "e2"]);
        expect((await a.history.list({ shard: 2, before: page1.at(-1)!.seq })).map((e) => e.cause)).toEqual(["e5", "e2"]);
        expect(await a.history.list({ shard: 7 })).toEqual([]);
      });

      it("append() refuses a malformed or oversized event with RangeError and stores nothing", async () => {
        const [a] = await openPair();
        const m = await master(a);
        const bad = [
          event({ type: "exploded" as HistoryEventInput["type"] }),
          event({ shard: -1 }),
          event({ evidence: { blob: "x".repeat(10_000) } }),
          event({ node: "" }),
        ];
        for (const e of bad) await expect(a.history.append(e, m)).rejects.toBeInstanceOf(RangeError);
        expect(await a.history.list()).toEqual([]);
      });
    });

    if (options.capabilities.openAt) {
      const openAt = options.capabilities.openAt;
      it("every control-plane call against a blackholed server throws a retryable StoreUnavailableError within the operation timeout", async () => {
        const operationTimeoutMs = 500;
        const hole = await startBlackhole();
        try {
          const store = await openAt(randomNamespace(), hole.host, hole.port, operationTimeoutMs);
          opened.push(store);
          const lease: Lease = { name: MASTER_LEASE, holder: "m1", epoch: 1 };
          const calls: (() => Promise<unknown>)[] = [
            () => store.clusterDocument.read(),
            () => store.clusterDocument.version(),
            () => store.clusterDocument.write(0, doc(), lease),
            () => store.history.append(event(), lease),
            () => store.history.list(),
          ];
          for (const call of calls) {
            const started = Date.now();
            const error = await call().then(
              () => null,
              (e: unknown) => e,
            );
            expect(error).toBeInstanceOf(StoreUnavailableError);
            expect((error as StoreUnavailableError).retryable).toBe(true);
            expect(Date.now() - started).toBeLessThan(operationTimeoutMs * 3 + 500);
          }
        } finally {
          await hole.close();
        }
      });
    }
  });
}
