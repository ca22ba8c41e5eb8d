import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CLI, monoNow, ProcessCluster, sleep } from "../support/process-cluster.js";

/**
 * The control plane with real node processes on SQLite, driven by the CLI as an operator would:
 * live settings, pause and resume, and the history.
 */
const dir = mkdtempSync(join(tmpdir(), "mc-control-"));
let cluster: ProcessCluster | null = null;

afterEach(async (ctx) => {
  if (!cluster) return;
  if (ctx.task.result?.state === "fail") console.error(cluster.logs());
  await cluster.stop();
  cluster = null;
});

function cli(c: ProcessCluster, ...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI, ...args, "--config", c.config], { encoding: "utf8", timeout: 30_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

async function started(settings: Record<string, string>): Promise<ProcessCluster> {
  cluster = new ProcessCluster({
    store: { backend: "sqlite", path: join(dir, `c${Math.random().toString(36).slice(2, 9)}.db`) },
    settings,
  });
  await cluster.start();
  await cluster.waitReady();
  return cluster;
}

/** kill -9 of the connected coreapp; resolves with how long until a standby served through the webapp. */
async function killPrimaryAndMeasure(c: ProcessCluster, timeoutMs: number): Promise<{ ms: number; from: string; to: string }> {
  const old = (await c.health())!.nodes.find((n) => n.gateway_status === "connected")!;
  c.kill9(old.name);
  const killedAt = monoNow();
  const served = await c.waitFor(
    async () => {
      const r = await c.send();
      return r.ok && r.node !== old.name ? r : null;
    },
    timeoutMs,
    10,
  );
  return { ms: monoNow() - killedAt, from: old.name, to: served.node! };
}

describe("control plane with real processes (sqlite)", { timeout: 120_000 }, () => {
  it("settings set lowers unhealthy_interval on a running cluster: health shows the new bound and a kill -9 fails over inside it", async () => {
    const c = await started({
      heartbeat_interval: "250ms",
      unhealthy_interval: "8s",
      db_heartbeat_interval: "500ms",
      db_unhealthy_interval: "16s",
    });
    const before = (await c.health())!;
    const set = cli(c, "settings", "set", "unhealthy_interval=1500ms", "db_unhealthy_interval=3s", "--by", "itest");
    expect(set.status, set.out).toBe(0);
    expect(set.out).toMatch(/settings changed \(cluster document version \d+\)/);
    const after = await c.waitFor(async () => {
      const h = await c.health();
      return h && h.settings.version > before.settings.version ? h : null;
    }, 10_000);
    expect(after.settings).toMatchObject({ unhealthy_interval: 1500, db_unhealthy_interval: 3000 });
    expect(after.failover_bound_ms).toBeLessThan(before.failover_bound_ms / 3);
    // Every lease takes the new TTL at its next renewal: at most one old renewal interval (~2.6 s).
    await sleep(3000);
    const failover = await killPrimaryAndMeasure(c, 30_000);
    console.log(
      `sqlite: kill -9 after lowering unhealthy_interval 8s -> 1.5s: served in ${failover.ms.toFixed(0)} ms (bound ${after.failover_bound_ms} ms, was ${before.failover_bound_ms} ms)`,
    );
    expect(failover.ms).toBeLessThanOrEqual(after.failover_bound_ms);
    const history = cli(c, "history", "--json");
    const events = JSON.parse(history.out) as { type: string; cause: string; evidence: Record<string, unknown> }[];
    expect(events.find((e) => e.type === "settings_changed" && e.cause === "changed by itest")).toBeTruthy();
    expect(events.find((e) => e.type === "promoted" && e.cause.startsWith("heartbeat detector"))).toBeTruthy();
    expect(c.overlaps()).toEqual([]);
  });

  it("pause: a killed primary is not replaced while paused; resume lets the failover happen; status and history show it", async () => {
    const c = await started({
      heartbeat_interval: "250ms",
      unhealthy_interval: "1500ms",
      db_heartbeat_interval: "500ms",
      db_unhealthy_interval: "3s",
    });
    const paused = cli(c, "pause", "--for", "10m", "--reason", "store maintenance", "--by", "itest");
    expect(paused.status, paused.out).toBe(0);
    await c.waitFor(async () => ((await c.health())?.pauses.length ? true : null), 5000);
    const status = cli(c, "status");
    expect(status.out).toMatch(/PAUSED \(whole cluster\) by itest at .*: store maintenance; ends in/);
    const old = (await c.health())!.nodes.find((n) => n.gateway_status === "connected")!;
    c.kill9(old.name);
    await sleep(5000); // > 3 × the failover bound
    expect((await c.send()).ok).toBe(false);
    expect((await c.health())!.shards[0]!.owner_name).toBe(old.name);

    expect(cli(c, "resume", "--by", "itest").status).toBe(0);
    const served = await c.waitFor(
      async () => {
        const r = await c.send();
        return r.ok ? r : null;
      },
      10_000,
      20,
    );
    expect(served.node).not.toBe(old.name);
    const events = JSON.parse(cli(c, "history", "--json").out) as { type: string }[];
    const types = events.map((e) => e.type).reverse();
    expect(types.indexOf("paused")).toBeGreaterThanOrEqual(0);
    expect(types.indexOf("resumed")).toBeGreaterThan(types.indexOf("paused"));
    expect(types.lastIndexOf("promoted")).toBeGreaterThan(types.indexOf("resumed"));
    expect(c.overlaps()).toEqual([]);
  });
});
