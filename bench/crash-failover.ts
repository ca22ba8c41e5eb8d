/**
 * Item 7: crash failover (docs/safety.md, L3) — kill -9 at the product's DEFAULT intervals
 * (heartbeat 5 s, unhealthy 30 s, db 60 s / 120 s), with and without `multiconnect start`'s
 * supervisor, on every backend:
 * - a shard's primary coreapp: kill → the first request through the webapp answered by another
 *   coreapp (a client sending one request at a time, 10 ms apart);
 * - the primary master: kill → a secondary master's `became primary master` log line.
 * Supervised, the kill goes to the node process (the supervisor's child), as the OOM killer or a
 * crash would end it; the supervisor sees it die, releases its leases and tells the masters.
 * Unsupervised (`--no-supervise`), the detectors' timeout path decides: ≈ unhealthy_interval for
 * a coreapp, ≈ the master lease's TTL (25 s) for a master.
 */
import { monoNow, randomDelay, sleep, wallMinusMono, wallToMono } from "./support/clock.js";
import { ClientLoop } from "./support/client-loop.js";
import { BenchCluster, type Settings } from "./support/cluster.js";
import type { BenchProfile } from "./support/profiles.js";
import { table, verdict, type Headline, type ItemReport } from "./support/report.js";
import { ms, spreadMs, summarize } from "./support/stats.js";
import { BACKENDS, benchStore, type Backend } from "./support/stores.js";

/** The product's default intervals (docs/configuration.md). */
export const PRODUCT_DEFAULTS: Settings = {
  heartbeat_interval: "5s",
  unhealthy_interval: "30s",
  db_heartbeat_interval: "60s",
  db_unhealthy_interval: "120s",
};

/** Issue 12's target: a standby serves within 500 ms (p99) of the kill, at the default intervals. */
export const CRASH_TARGET_MS = 500;

/** How long a new node needs at the default intervals to be seen by every master: 5 s + 5 s + margin. */
const SETTLE_MS = 10_500;

/** One backend's figures. */
interface CrashSession {
  readonly backend: Backend;
  coreapp: number[];
  master: number[];
  unsupervisedCoreapp: number[];
  unsupervisedMaster: number[];
  errors: string[];
  overlaps: number;
}

/** Kills the primary coreapp of shard 0; resolves with ms from the kill to the first answer by another coreapp. */
async function killCoreapp(c: BenchCluster, loop: ClientLoop, supervised: boolean): Promise<number> {
  await c.waitSteady(90_000);
  // Every master must have listed the newest coreapp (one 5 s liveness period) and heard it answer
  // (one 5 s heartbeat period) before it counts as a standby; then a random phase of heartbeats.
  await sleep(SETTLE_MS + randomDelay(1000));
  const steady = await c.waitSteady(90_000);
  const owner = steady.nodes.find((n) => n.id === steady.shards[0]!.owner)!;
  loop.drain();
  const kill = supervised ? c.kill9Node(owner.name) : c.kill9(owner.name);
  try {
    const first = await loop.waitFor((r) => r.ok && r.recv > kill.mono && r.node !== undefined && r.node !== owner.name, 60_000);
    if (!first) throw new Error(`no answer from another coreapp within 60 s after killing ${owner.name}; logs in ${c.dir}`);
    return first.recv - kill.mono;
  } finally {
    c.spawnCoreapp();
  }
}

/** Kills the primary master; resolves with ms from the kill to a secondary's `became primary master` line. */
async function killMaster(c: BenchCluster, supervised: boolean): Promise<number> {
  const steady = await c.waitFor(async () => {
    const h = await c.health();
    const masters = h?.nodes.filter((n) => n.role === "primary_master" || n.role === "secondary_master") ?? [];
    return h?.primary_master && masters.length >= 2 && masters.every((m) => m.healthy) ? h : null;
  }, 90_000);
  await sleep(randomDelay(1000));
  const primary = steady.nodes.find((n) => n.id === steady.primary_master!.id)!;
  const offset = wallMinusMono();
  for (const m of c.nodes) if (m.role === "master") m.log.poll();
  const seen = new Set(c.nodes.filter((n) => n.role === "master").flatMap((m) => m.log.lines));
  const kill = supervised ? c.kill9Node(primary.name) : c.kill9(primary.name);
  try {
    for (const end = monoNow() + 60_000; monoNow() < end; await sleep(20)) {
      for (const m of c.nodes) {
        if (m.role !== "master" || m.name === primary.name) continue;
        m.log.poll();
        const line = m.log.lines.find((l) => !seen.has(l) && l.msg === "became primary master");
        if (line) return wallToMono(line.time, offset) - kill.mono;
      }
    }
    throw new Error(`no secondary master became primary within 60 s after killing ${primary.name}; logs in ${c.dir}`);
  } finally {
    c.spawnNode("master");
  }
}

/** Runs the item: per backend, a supervised cluster, then (if asked) an unsupervised one. */
export async function crashFailoverItem(p: BenchProfile, dir: string, say: (m: string) => void): Promise<ItemReport> {
  const sessions: CrashSession[] = [];
  for (const backend of BACKENDS) {
    if (!p.crash.backends.includes(backend)) continue;
    const s: CrashSession = { backend, coreapp: [], master: [], unsupervisedCoreapp: [], unsupervisedMaster: [], errors: [], overlaps: 0 };
    sessions.push(s);
    for (const supervised of [true, false]) {
      const coreappRuns = supervised ? p.crash.runs : p.crash.unsupervisedRuns;
      const masterRuns = supervised ? p.crash.masterRuns : Math.min(1, p.crash.unsupervisedRuns);
      if (coreappRuns + masterRuns === 0) continue;
      const c = new BenchCluster({
        store: benchStore(backend, dir),
        settings: PRODUCT_DEFAULTS,
        parentDir: dir,
        eventLog: false,
        supervise: supervised,
      });
      const label = `${backend} ${supervised ? "supervised" : "unsupervised"}`;
      say(`${label}: starting a cluster at the product's default intervals (${c.dir})`);
      await c.start();
      const loop = new ClientLoop(c.webappPort, { concurrency: 1, paceMs: 10 });
      try {
        await c.waitSteady(90_000);
        loop.start();
        for (let i = 0; i < coreappRuns; i++) {
          try {
            const t = await killCoreapp(c, loop, supervised);
            (supervised ? s.coreapp : s.unsupervisedCoreapp).push(t);
            say(`${label} coreapp kill ${i + 1}/${coreappRuns}: served again in ${t.toFixed(0)} ms`);
          } catch (error) {
            s.errors.push(`${label} coreapp: ${String((error as Error).message)}`);
            say(`${label} coreapp kill ${i + 1}: ${String(error)}`);
          }
        }
        for (let i = 0; i < masterRuns; i++) {
          try {
            const t = await killMaster(c, supervised);
            (supervised ? s.master : s.unsupervisedMaster).push(t);
            say(`${label} primary master kill ${i + 1}/${masterRuns}: a secondary took over in ${t.toFixed(0)} ms`);
          } catch (error) {
            s.errors.push(`${label} master: ${String((error as Error).message)}`);
            say(`${label} master kill ${i + 1}: ${String(error)}`);
          }
        }
      } finally {
        await loop.close();
        await c.stop();
      }
    }
  }
  return crashReport(sessions);
}

function crashReport(sessions: CrashSession[]): ItemReport {
  const headlines: Headline[] = [];
  const rows: string[][] = [];
  for (const s of sessions) {
    const sup = summarize(s.coreapp);
    const mas = summarize(s.master);
    const un = summarize(s.unsupervisedCoreapp);
    const unm = summarize(s.unsupervisedMaster);
    rows.push([
      s.backend,
      `${s.coreapp.length}`,
      spreadMs(sup),
      ms(sup?.p99),
      verdict(sup ? sup.p99 < CRASH_TARGET_MS : false),
      `${s.master.length}: ${spreadMs(mas)}`,
      `${s.unsupervisedCoreapp.length}: ${spreadMs(un)}`,
      `${s.unsupervisedMaster.length}: ${spreadMs(unm)}`,
    ]);
    headlines.push({
      item: "7 crash failover",
      figure: `${s.backend}, default intervals, supervised kill -9 of the primary coreapp: p99 (median)`,
      measured: `${ms(sup?.p99)} (${ms(sup?.median)})`,
      target: `< ${ms(CRASH_TARGET_MS)}`,
      met: sup ? sup.p99 < CRASH_TARGET_MS : false,
    });
    headlines.push({
      item: "7 crash failover",
      figure: `${s.backend}, default intervals, supervised kill -9 of the primary master: p99 (median)`,
      measured: `${ms(mas?.p99)} (${ms(mas?.median)})`,
      target: `< ${ms(CRASH_TARGET_MS)}`,
      met: mas ? mas.p99 < CRASH_TARGET_MS : false,
    });
  }
  const errors = sessions.flatMap((s) => s.errors.map((e) => `- ${e}`));
  const body = [
    "kill -9 at the product's **default** intervals (heartbeat 5 s, unhealthy 30 s, db 60 s / 120 s; lease TTL 25 s):",
    "2 masters, 3 coreapps, 1 webapp, 1 shard, each started from the built CLI. *Supervised*: every node runs under",
    "`multiconnect start`'s supervisor and the kill goes to the node process itself (as an OOM kill or a crash would end",
    "it); the supervisor releases its leases (compare-and-delete on their tokens) and sends the masters an exit notice.",
    "*Unsupervised* (`--no-supervise`): the failure detectors' timeout path. Coreapp: kill → first answer from another",
    "coreapp through the webapp (a client sending one request at a time, 10 ms apart). Master: kill → a secondary's",
    "`became primary master` log line. Anchors: the model product and every peer fail over after `unhealthy_interval`",
    "(30 s) at these settings.",
    "",
    table(
      [
        "backend",
        "coreapp kills (supervised)",
        "median (p10–p90, max)",
        "p99",
        `target < ${ms(CRASH_TARGET_MS)}`,
        "primary master kills (supervised): runs: median (p10–p90, max)",
        "coreapp, unsupervised",
        "primary master, unsupervised",
      ],
      rows,
    ),
    ...(errors.length ? ["", "Runs that did not complete:", ...errors] : []),
  ].join("\n");
  return { id: 7, title: "Crash failover at the default intervals (kill -9, with and without the supervisor)", headlines, body };
}
