import { spawnSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { CLI, monoNow, ProcessCluster, sleep } from "../support/process-cluster.js";

/**
 * The failover scenarios of docs/safety.md with real node processes started from the built CLI, run
 * against one backend. `store(namespace)` returns the config's `store:` section for a fresh
 * namespace. Every scenario asserts S1 from the example app's event log.
 */
export function failoverScenarios(backend: string, store: (namespace: string) => Record<string, unknown>): void {
  let cluster: ProcessCluster | null = null;
  const start = async (o: { masters?: number } = {}) => {
    cluster = new ProcessCluster({ store: store(`f${Math.random().toString(36).slice(2, 9)}_`), ...o });
    await cluster.start();
    const ready = await cluster.waitReady();
    return { c: cluster, ready };
  };
  const connected = async (c: ProcessCluster) => {
    const h = await c.health();
    return h?.nodes.find((n) => n.gateway_status === "connected") ?? null;
  };

  afterEach(async (ctx) => {
    if (!cluster) return;
    if (ctx.task.result?.state === "fail") console.error(cluster.logs());
    await cluster.stop();
    cluster = null;
  });

  describe(`${backend}: failover with real processes`, { timeout: 90_000 }, () => {
    it("kill -9 of the primary coreapp: a standby serves the shard within the computed bound, one epoch higher, never two at once", async () => {
      const { c, ready } = await start();
      const old = ready.nodes.find((n) => n.gateway_status === "connected")!;
      expect((await c.send()).node).toBe(old.name);
      c.kill9(old.name);
      const killedAt = monoNow();
      const served = await c.waitFor(
        async () => {
          const r = await c.send();
          return r.ok && r.node !== old.name ? r : null;
        },
        30_000,
        10,
      );
      const failoverMs = monoNow() - killedAt;
      console.log(`${backend}: failover after kill -9 served in ${failoverMs.toFixed(0)} ms (bound ${ready.failover_bound_ms} ms)`);
      expect(served.epoch).toBe(old.epoch! + 1);
      expect(failoverMs).toBeLessThanOrEqual(ready.failover_bound_ms);
      expect(c.overlaps()).toEqual([]);
    });

    it("kill -9 of the primary master: a secondary master takes the lease and no coreapp failover happens", async () => {
      const { c, ready } = await start();
      const primary = ready.nodes.find((n) => n.role === "primary_master")!;
      const owner = ready.shards[0]!;
      c.kill9(primary.name);
      const after = await c.waitFor(async () => {
        const h = await c.health();
        return h?.primary_master && h.primary_master.id !== primary.id ? h : null;
      }, 30_000);
      await sleep(3000);
      const later = (await c.health())!;
      expect(after.shards[0]).toMatchObject({ owner: owner.owner, epoch: owner.epoch });
      expect(later.shards[0]).toMatchObject({ owner: owner.owner, epoch: owner.epoch });
      expect((await c.send()).ok).toBe(true);
      expect(c.overlaps()).toEqual([]);
    });

    it("every master stopped: requests are still served", async () => {
      const { c } = await start();
      for (const n of c.nodes.filter((x) => x.role === "master")) c.kill9(n.name);
      await sleep(5000);
      const results = await Promise.all(Array.from({ length: 5 }, (_, i) => c.send(`k${i}`)));
      expect(results.every((r) => r.ok)).toBe(true);
      expect(c.overlaps()).toEqual([]);
    });

    it("SIGSTOP of the primary coreapp past unhealthy_interval, then SIGCONT: it does not act as primary again and the new primary keeps the shard", async () => {
      const { c, ready } = await start();
      const old = ready.nodes.find((n) => n.gateway_status === "connected")!;
      c.pause(old.name);
      const next = await c.waitFor(
        async () => {
          const r = await c.send();
          return r.ok && r.node !== old.name ? r : null;
        },
        30_000,
        20,
      );
      c.resume(old.name);
      const resumedAt = monoNow();
      await sleep(3000);
      for (let i = 0; i < 5; i++) expect(await c.send()).toMatchObject({ ok: true, node: next.node, epoch: next.epoch });
      const afterResume = c.events().filter((e) => e.node === old.name && e.type === "request" && e.t > resumedAt);
      expect(afterResume).toEqual([]);
      expect((await connected(c))?.name).toBe(next.node);
      expect(c.overlaps()).toEqual([]);
    });

    it("switchover moves the shard with no request failing at the client", async () => {
      const { c, ready } = await start();
      const old = ready.nodes.find((n) => n.gateway_status === "connected")!;
      const failures: string[] = [];
      const nodes = new Set<string>();
      let running = true;
      const load = (async () => {
        while (running) {
          const r = await c.send();
          if (r.ok) nodes.add(r.node!);
          else failures.push(`${r.status} ${r.text}`);
        }
      })();
      await sleep(300);
      const cli = spawnSync(process.execPath, [CLI, "switchover", "--config", c.config, "--shard", "0"], {
        encoding: "utf8",
        timeout: 30_000,
      });
      await sleep(500);
      running = false;
      await load;
      expect(cli.status, cli.stderr).toBe(0);
      expect(cli.stdout).toMatch(/shard 0: .* -> .* at epoch/);
      expect(failures).toEqual([]);
      expect(nodes.has(old.name)).toBe(true);
      expect(nodes.size).toBe(2);
      expect((await connected(c))?.name).not.toBe(old.name);
      expect(c.overlaps()).toEqual([]);
      const status = spawnSync(process.execPath, [CLI, "status", "--config", c.config], { encoding: "utf8", timeout: 30_000 });
      expect(status.status, status.stderr).toBe(0);
      expect(status.stdout).toMatch(/primary_master/);
      expect(status.stdout).toMatch(new RegExp(`^0\\s+${[...nodes].find((n) => n !== old.name)}\\s+\\d+`, "m"));
    });
  });
}
