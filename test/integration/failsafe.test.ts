import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { LocalCluster, LOCAL_CLUSTER_SETTINGS, randomNamespace } from "../../src/testing/index.js";
import { deleteRedisKeys, dropTables } from "../support/store-cleanup.js";

/**
 * Failsafe mode with real node processes on real stores (PostgreSQL and Redis), judged by the
 * upstream oracle: every node's store link is blackholed for longer than three leases (the lease
 * TTL is 2.5 s with LOCAL_CLUSTER_SETTINGS). With every master vouching, the primary keeps its one
 * upstream session and serves throughout, no one else is promoted, and afterwards it holds its lease
 * at the same epoch. With a master frozen during the outage, a promise is missing: the primary stops
 * by its earliest promise, and the oracle sees no overlap when the next tenure starts.
 */
const PG_URL = process.env.MC_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL = "redis://127.0.0.1:6379";
const OUTAGE_MS = 8000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const stores = {
  postgres: (prefix: string) => ({
    store: { backend: "postgres", host: "127.0.0.1", port: 5432, user: "postgres", database: "test", table_prefix: prefix },
    clean: () => dropTables("postgres", PG_URL, prefix),
  }),
  redis: (prefix: string) => ({
    store: { backend: "redis", host: "127.0.0.1", port: 6379, key_prefix: prefix },
    clean: () => deleteRedisKeys(REDIS_URL, prefix),
  }),
} as const;

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
  cleanup = [];
});

async function failsafeCluster(backend: keyof typeof stores, failsafe = true): Promise<LocalCluster> {
  const prefix = `fs${randomNamespace()}_`;
  const s = stores[backend](prefix);
  const cluster = new LocalCluster({
    app: "test/kit/upstream-app.mjs",
    masters: 2,
    coreapps: 2,
    store: s.store,
    settings: { ...LOCAL_CLUSTER_SETTINGS, failsafe_mode: failsafe, failsafe_max: "60s" },
  });
  cleanup.push(s.clean, () => cluster.stop());
  await cluster.start();
  await cluster.waitReady();
  // Let every coreapp publish the masters it would ask (its liveness beats, every db_heartbeat_interval).
  await sleep(3000);
  return cluster;
}

/** Blackholes every node's store link (the store "away" for everyone) until the returned heal(). */
function storeAway(cluster: LocalCluster): () => void {
  const links = cluster.nodes.flatMap((n) => (n.storeLink ? [n.storeLink] : []));
  expect(links.length).toBe(5);
  for (const l of links) l.set({ kind: "blackhole" });
  return () => {
    for (const l of links) l.set({ kind: "pass" });
  };
}

/**
 * Sends a request through the webapp every 50 ms for `ms`, one at a time; counts answers by status
 * and measures the longest stretch between two successful answers (what a user went without).
 */
async function load(cluster: LocalCluster, ms: number): Promise<{ ok: number; failed: number; unservedMs: number }> {
  const out = { ok: 0, failed: 0, unservedMs: 0 };
  let last = Date.now();
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) {
    const r = await cluster.request("/send", { body: "x" }).catch(() => null);
    if (r?.status === 200) {
      out.ok++;
      out.unservedMs = Math.max(out.unservedMs, Date.now() - last);
      last = Date.now();
    } else out.failed++;
  }
  out.unservedMs = Math.max(out.unservedMs, Date.now() - last);
  return out;
}

/** The machine's 1-minute load average, printed beside every timing. */
const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0];

/**
 * The store away for everyone for {@link OUTAGE_MS} under load, then back for `afterMs` more of
 * it; logs what the client went without, under `label`, and returns both stretches' counts.
 */
async function outageUnderLoad(cluster: LocalCluster, label: string, afterMs: number) {
  const heal = storeAway(cluster);
  const during = await load(cluster, OUTAGE_MS);
  heal();
  const after = await load(cluster, afterMs);
  console.log(
    `${label}: store away ${OUTAGE_MS} ms; longest without service ${Math.max(during.unservedMs, after.unservedMs)} ms ` +
      `(${during.failed + after.failed} failed of ${during.ok + during.failed + after.ok + after.failed}); load average ${loadAverage()}`,
  );
  return { during, after };
}

for (const backend of ["postgres", "redis"] as const) {
  describe(`failsafe mode on ${backend}`, { timeout: 240_000 }, () => {
    it("the store away for everyone: the primary serves throughout on the masters' promises, no one else is promoted, and it keeps its epoch", async () => {
      const cluster = await failsafeCluster(backend);
      const primary = await cluster.primary(0);
      const session = cluster.oracle.current(0)!;
      expect(session.node).toBe(primary);
      const { during } = await outageUnderLoad(cluster, `failsafe on, ${backend}`, 5000);
      await cluster.waitReady();
      expect(await cluster.primary(0)).toBe(primary);
      expect(cluster.oracle.current(0)?.epoch).toBe(session.epoch);
      // Every request during the outage was answered by the primary (the webapp routes from its cached map).
      expect(during.failed).toBe(0);
      expect(during.ok).toBeGreaterThan(10);
      await cluster.stop();
      const report = cluster.oracle.report();
      expect(report.details).toEqual([]);
      expect(report.overlaps).toBe(0);
      expect(report.epochRegressions).toBe(0);
      // No upstream session opened after the one the outage began with (the cluster's start may have had others before).
      expect(cluster.oracle.sessions.filter((s) => s.openedAt > session.openedAt)).toEqual([]);
    });

    it("a master frozen during the outage: its promise is missing, so the primary stops in time and the next tenure never overlaps it", async () => {
      const cluster = await failsafeCluster(backend);
      const primary = await cluster.primary(0);
      const session = cluster.oracle.current(0)!;
      const heal = storeAway(cluster);
      await sleep(1500);
      const master = cluster.nodes.find((n) => n.role === "master")!;
      cluster.pause(master.name);
      // The primary holds promises of one lease TTL (2.5 s) at most: it has closed its session well before the heal.
      await cluster.waitFor(async () => (!cluster.oracle.current(0) ? true : null), 15_000, "the primary to close its session");
      heal();
      cluster.resume(master.name);
      await cluster.waitReady();
      await cluster.waitFor(async () => ((cluster.oracle.current(0)?.epoch ?? 0) > session.epoch ? true : null), 60_000, "a new tenure");
      await cluster.stop();
      const report = cluster.oracle.report();
      expect(report.details).toEqual([]);
      expect(report.overlaps).toBe(0);
      expect(report.staleAccepted).toBe(0);
      expect(report.epochRegressions).toBe(0);
      expect(cluster.oracle.sessions[0]!.node).toBe(primary);
    });
  });
}

/**
 * The control: without failsafe the same outage stops the primary. Run on one backend only: what
 * a store outage does without failsafe is the core's rule, the same on every store, and the chaos
 * profiles' store-cut scenarios show it on each (docs/reliability.md).
 */
describe("failsafe mode off on postgres", { timeout: 240_000 }, () => {
  it("failsafe off (the baseline): the same outage stops the primary until the store is back, and a new tenure serves", async () => {
    const backend = "postgres";
    const cluster = await failsafeCluster(backend, false);
    const session = cluster.oracle.current(0)!;
    const { during } = await outageUnderLoad(cluster, `failsafe off, ${backend}`, 10_000);
    expect(during.failed).toBeGreaterThan(0);
    await cluster.waitFor(async () => ((cluster.oracle.current(0)?.epoch ?? 0) > session.epoch ? true : null), 60_000, "a new tenure");
    await cluster.stop();
    const report = cluster.oracle.report();
    expect(report.details).toEqual([]);
    expect(report.overlaps).toBe(0);
  });
});
