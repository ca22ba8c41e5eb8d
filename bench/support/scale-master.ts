/**
 * The primary master alone in its own process, for item 5's scale test: its CPU (process.cpuUsage),
 * memory and store operations are then its own. Default intervals.
 *
 * Usage: scale-master.ts '{"shards":s,"section":{...}|null,"warmupS":w,"windowS":x}'.
 * - With a real store (`section`), the bench has already seeded the shard map (holding the master
 *   lease as "bench-primary", which this master then keeps: acquire is idempotent for its holder).
 * - With the memory store (`section` null) the store lives here: the first stdin line brings the
 *   simulated coreapps ({"sims":[{id,address}]}); this process seeds their liveness records, a
 *   secondary master's record and the map itself, through a handle whose operations are not counted.
 * Prints {"primary":true} once it holds the lease, then the measurement as one JSON line.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import type { MemoryStorage } from "../../src/adapters/memory/index.js";
import { parseConfig } from "../../src/config/load.js";
import { MASTER_LEASE } from "../../src/core/ports/leases.js";
import { monoNow, sleep } from "./clock.js";
import { buildNode, nodeStore } from "./in-process.js";
import { sdk } from "./sdk.js";

// tsx turns source-mapped stack traces on; the CLI runs without them, and every Error (undici makes
// one per closed connection) would cost a source-map lookup here that it does not cost in production.
process.setSourceMapsEnabled(false);

const { MemoryStorage: Storage, MemoryStore, deriveTiming } = sdk;

const o = JSON.parse(process.argv[2]!) as { shards: number; section: Record<string, unknown> | null; warmupS: number; windowS: number };
const config = parseConfig({
  cluster_name: "bench",
  secret: "benchmark-secret-0123456789abcdef",
  shards: o.shards,
  store: o.section ?? { backend: "sqlite" },
});
const timing = deriveTiming(config.settings);
let memory: MemoryStorage | null = null;

if (!o.section) {
  memory = new Storage();
  const seed = new MemoryStore(memory);
  const first = await new Promise<string>((resolve) => createInterface({ input: process.stdin }).once("line", resolve));
  const sims = (JSON.parse(first) as { sims: { id: string; address: string }[] }).sims;
  const beat = async () => {
    for (const [i, s] of sims.entries()) {
      const shard = i < o.shards ? i : null;
      await seed.liveness.beat({
        id: s.id,
        name: s.id,
        role: "coreapp",
        address: s.address,
        meta: { shard, epoch: shard === null ? null : 1, serving: shard !== null },
      });
    }
  };
  // A secondary master's record, so the heartbeat detector is armed as with two masters running.
  const secondary = () =>
    seed.liveness.beat({ id: "bench-secondary", name: "secondary", role: "master", address: "", meta: { view: {}, primary: false } });
  await beat();
  await secondary();
  setInterval(() => void beat(), timing.dbHeartbeatIntervalMs).unref();
  setInterval(() => void secondary(), timing.masterBeatIntervalMs).unref();
  const lease = await seed.leases.acquire(MASTER_LEASE, "bench-primary", timing.leaseTtlMs);
  if (!lease.acquired) throw new Error("cannot seed the master lease");
  for (let shard = 0; shard < o.shards; shard++) await seed.shardMap.assign(shard, 0, sims[shard]!.id, lease.lease);
}

const master = await buildNode("master", "primary", config, await nodeStore(config, memory), "bench-primary");
// Before anything is written to stdout: the parent sends SIGTERM as soon as it reads the figures, and
// a write to a pipe is synchronous, so a handler added after it could come too late. The default
// action then killed this process without writing its CPU profile (--cpu-prof writes at exit).
process.on("SIGTERM", () => void master.stop().finally(() => process.exit(0)));
await master.node.start();
for (let i = 0; i < 600 && master.node.role !== "primary_master"; i++) await sleep(50);
process.stdout.write(`${JSON.stringify({ primary: master.node.role === "primary_master" })}\n`);
await sleep(o.warmupS * 1000);

master.ops.reset();
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
const cpu0 = process.cpuUsage();
const t0 = monoNow();
await sleep(o.windowS * 1000);
const cpu = process.cpuUsage(cpu0);
const t1 = monoNow();
const elapsed = (t1 - t0) / 1000;
delay.disable();
const mem = process.memoryUsage();
const ops = master.ops.snapshot();
process.stdout.write(
  `${JSON.stringify({
    role: master.node.role,
    cpuPct: ((cpu.user + cpu.system) / 1e6 / elapsed) * 100,
    rssMiB: mem.rss / 2 ** 20,
    heapMiB: mem.heapUsed / 2 ** 20,
    opsPerS: master.ops.total() / elapsed,
    ops,
    elapsedS: elapsed,
    window: { from: t0, to: t1 },
    loopDelayP99Ms: delay.percentile(99) / 1e6,
    loopDelayMaxMs: delay.max / 1e6,
  })}\n`,
);
