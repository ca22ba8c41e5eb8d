import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfigFile } from "../../src/config/load.js";
import { SystemClock } from "../../src/core/clock.js";
import { MASTER_LEASE, shardLeaseName } from "../../src/core/ports/leases.js";
import type { Store } from "../../src/core/ports/store.js";
import { openStore } from "../../src/nodes/open-store.js";
import { monoNow, ProcessCluster, TEST_SETTINGS, type ClusterOptions } from "../support/process-cluster.js";

/** The product's default intervals: without the supervisor a crash takes about 30 s to fail over. */
const DEFAULT_SETTINGS = {
  heartbeat_interval: "5s",
  unhealthy_interval: "30s",
  db_heartbeat_interval: "60s",
  db_unhealthy_interval: "120s",
};

/**
 * Crash failover (docs/safety.md, L3) with real node processes under `multiconnect start`'s
 * supervisor, against one backend: a dead child's leases are released at once and a standby serves;
 * a process that is not known dead (its supervisor died with it, or it froze) keeps the timeout
 * path. Every scenario asserts S1 from the example app's event log. The deadlines below are
 * generous waits, not timing assertions: at the default intervals the timeout path needs ≥ 25 s,
 * so a standby serving within 15 s shows the fast path without asserting how fast it is.
 */
export function crashFailoverScenarios(backend: string, store: (namespace: string) => Record<string, unknown>): void {
  let cluster: ProcessCluster | null = null;
  let opened: Store | null = null;
  const start = async (o: Partial<ClusterOptions>) => {
    cluster = new ProcessCluster({ store: store(`c${Math.random().toString(36).slice(2, 9)}_`), supervise: true, ...o });
    await cluster.start();
    const ready = await cluster.waitReady(60_000);
    cluster.learnNodePids();
    opened = await openStore(loadConfigFile(cluster.config).store, new SystemClock());
    return { c: cluster, ready, s: opened };
  };
  const servedByAnother = (c: ProcessCluster, old: string, timeoutMs: number) =>
    c.waitFor(
      async () => {
        const r = await c.send();
        return r.ok && r.node !== old ? r : null;
      },
      timeoutMs,
      10,
    );

  afterEach(async (ctx) => {
    await opened?.close();
    opened = null;
    if (!cluster) return;
    if (ctx.task.result?.state === "fail") console.error(cluster.logs());
    await cluster.stop();
    cluster = null;
  });

  describe(`${backend}: crash failover under the supervisor`, { timeout: 150_000 }, () => {
    it("kill -9 of a supervised primary coreapp, then of the primary master, at the default intervals: each replaced at once, leases and records released, never two primaries", async () => {
      const { c, ready, s } = await start({ settings: DEFAULT_SETTINGS });
      const old = ready.nodes.find((n) => n.gateway_status === "connected")!;
      expect((await c.send()).node).toBe(old.name);
      c.kill9Node(old.name);
      const killedAt = monoNow();
      const served = await servedByAnother(c, old.name, 15_000);
      console.log(`${backend}: crash failover (coreapp) served in ${(monoNow() - killedAt).toFixed(0)} ms at the default intervals`);
      expect(served.epoch).toBe(old.epoch! + 1);
      const lease = await s.leases.current(shardLeaseName(0));
      expect(lease?.holder.startsWith(`${old.id}#`)).toBe(false);
      expect((await s.liveness.list()).map((n) => n.id)).not.toContain(old.id);
      const promoted = await c.waitFor(
        async () => (await s.history.list({ shard: 0 })).find((e) => e.type === "promoted" && e.epochs["to"] === served.epoch) ?? null,
        10_000,
      );
      expect(promoted.cause).toMatch(/supervisor saw the process exit \(killed by SIGKILL\)/);
      expect(c.overlaps()).toEqual([]);

      const primary = ready.nodes.find((n) => n.role === "primary_master")!;
      c.kill9Node(primary.name);
      const masterKilledAt = monoNow();
      const after = await c.waitFor(async () => {
        const m = await s.leases.current(MASTER_LEASE);
        return m && m.holder !== primary.id ? m : null;
      }, 15_000);
      console.log(`${backend}: crash failover (primary master) took the lease in ${(monoNow() - masterKilledAt).toFixed(0)} ms`);
      // The history is appended in the background: wait for it.
      const elected = await c.waitFor(
        async () => (await s.history.list()).find((e) => e.type === "master_elected" && e.epochs["master"] === after.epoch) ?? null,
        10_000,
      );
      expect(elected.cause).toMatch(/given back when .* process exited/);
      expect((await c.send()).ok).toBe(true);
      expect(c.overlaps()).toEqual([]);
    });

    it("kill -9 of the supervisor and its child together: nobody releases, the timeout path fails over, never two primaries", async () => {
      const { c, ready, s } = await start({ settings: TEST_SETTINGS });
      const old = ready.nodes.find((n) => n.gateway_status === "connected")!;
      c.kill9Both(old.name);
      const served = await servedByAnother(c, old.name, 30_000);
      expect(served.epoch).toBe(old.epoch! + 1);
      const promoted = await c.waitFor(
        async () => (await s.history.list({ shard: 0 })).find((e) => e.type === "promoted" && e.epochs["to"] === served.epoch) ?? null,
        10_000,
      );
      expect(promoted.cause).toMatch(/detector|no liveness record/);
      expect(promoted.cause).not.toMatch(/supervisor/);
      expect(c.overlaps()).toEqual([]);
    });

    it("a frozen child under --watchdog: the timeout path ends in the watchdog's kill, then its leases are released; never two primaries", async () => {
      const { c, ready } = await start({ settings: TEST_SETTINGS, watchdog: true });
      const old = ready.nodes.find((n) => n.gateway_status === "connected")!;
      c.pauseNode(old.name);
      const served = await servedByAnother(c, old.name, 30_000);
      expect(served.epoch).toBe(old.epoch! + 1);
      await c.waitFor(
        async () => (/\(watchdog\); released/.test(readFileSync(join(c.dir, `${old.name}.log`), "utf8")) ? true : null),
        10_000,
      );
      expect(c.overlaps()).toEqual([]);
    });
  });
}
