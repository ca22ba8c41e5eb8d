import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BACKENDS, type Backend, type PrivateServer } from "./backends.js";
import { ChaosCluster, CLI, killClustersOnExit, signal, signalServer, sleep, type ChaosNode } from "./cluster.js";
import { seededRng } from "./run-once.js";
import { SCENARIOS, type Primary, type Scenario } from "./scenarios.js";
import { startCpuHog, type CpuHog } from "./cpu-hog.js";
import { shardOf } from "../src/core/hash.js";
import type { ClusterStatus } from "../src/nodes/cluster-status.js";
import { monoNow, Oracle, type OracleReport } from "../src/testing/oracle.js";

/**
 * `npm run soak -- [--backend redis,postgres] [--minutes 60] [--fault-every 30] [--seed N]
 * [--sample-every 5] [--cpu-hog N]`: the endurance run of docs/reliability.md. One long-lived
 * cluster per backend (2 masters, 4 coreapps under the watchdog, 1 webapp, 2 shards, on a private
 * store server of the harness's own so the store-restart and store-pause faults apply and the shared
 * server is never touched), steady client traffic through the webapp on keys of both shards, and
 * every `--fault-every` seconds one fault drawn with the seed from the chaos catalogue
 * (chaos/scenarios.ts) against the primary of a shard drawn the same way. The upstream oracle judges
 * the whole run; every fault is judged like a chaos run (failover within the bound where the
 * scenario is bounded, no promotion where it expects none); every node process's RSS, open file
 * descriptors (/proc/PID) and V8 heap (its /metrics) are sampled every `--sample-every` seconds and
 * judged for a growth trend after warm-up (see `judgeResources`). Several backends run at once, each
 * in a process of its own (the oracle's timing must not share an event loop with another cluster's).
 *
 * Exit code 1 on any safety violation, false promotion, missed or late failover, a cluster that did
 * not recover within 60 s of a fault, or a resource judged unbounded. Everything goes to a directory
 * printed at the start: `faults.jsonl` (one line per fault), `resources.jsonl`, `summary.json`, the
 * nodes' logs.
 */
const { values } = parseArgs({
  options: {
    backend: { type: "string", default: "redis,postgres" },
    minutes: { type: "string", default: "60" },
    "fault-every": { type: "string", default: "30" },
    "sample-every": { type: "string", default: "5" },
    seed: { type: "string" },
    "cpu-hog": { type: "string", default: "0" },
    // Internal: which of the backends run at once this process is (i/n), to stagger their faults.
    phase: { type: "string", default: "0/1" },
  },
});

function fail(message: string): never {
  process.stderr.write(`soak: ${message}\n`);
  process.exit(2);
}

const minutes = Number(values.minutes);
const faultEveryMs = Number(values["fault-every"]) * 1000;
const sampleEveryMs = Number(values["sample-every"]) * 1000;
const hogCount = Number(values["cpu-hog"]);
const seed = values.seed ? Number(values.seed) : Math.floor(Math.random() * 1_000_000);
if (!(minutes > 0) || !(faultEveryMs >= 5000) || !(sampleEveryMs >= 500)) {
  fail("--minutes must be positive, --fault-every at least 5 (seconds), --sample-every at least 0.5 (seconds)");
}
if (!Number.isInteger(seed) || !Number.isInteger(hogCount) || hogCount < 0) fail("--seed and --cpu-hog must be integers");
const names = values.backend.split(",").map((b) => b.trim());
for (const n of names) if (!(n in BACKENDS)) fail(`unknown backend ${n}`);
if (!existsSync(CLI)) fail(`${CLI} is missing; run \`npm run build\` first (npm run soak does)`);

const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

if (names.length > 1) {
  // One process per backend: each has its own oracle, load generator and event loop.
  log(`soak: ${names.join(" and ")} at once, seed ${seed}, ${minutes} min; replay one with --backend NAME --seed ${seed}`);
  const own = [
    ...["minutes", "fault-every", "sample-every", "cpu-hog"].flatMap((k) => [`--${k}`, String(values[k as keyof typeof values])]),
    "--seed",
    String(seed),
  ];
  // Staggered: the same seed draws the same faults for every backend, and faults landing on both
  // clusters at the same instant (eight node processes restarting at once, say) would double the
  // peak load on two cores that each cluster's judgement assumes it has to itself.
  const children: ChildProcess[] = names.map((n, i) =>
    spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...own, "--backend", n, "--phase", `${i}/${names.length}`], {
      stdio: "inherit",
    }),
  );
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => children.forEach((c) => c.kill(sig)));
  const codes = await Promise.all(children.map((c) => new Promise<number>((r) => c.once("exit", (code) => r(code ?? 1)))));
  process.exit(Math.max(...codes));
}

const backend: Backend = BACKENDS[names[0] as keyof typeof BACKENDS];
if (!backend.privateServer) fail(`${backend.name} has no private server in chaos/backends.ts; the soak needs one`);

/**
 * The catalogue the soak draws from. Left out: clock-jump (the soak's nodes do not run under libfaketime); the variants
 * of pause-long that differ only without the watchdog (every soak coreapp runs under it) or with a
 * fencing oracle (the soak's oracle is strict throughout), and the scenarios that need cluster
 * settings of their own (the failsafe variants): the soak's one long-lived cluster runs with the
 * chaos settings, so they would run as their originals and be judged against the wrong outcome.
 */
const catalogue: Scenario[] = SCENARIOS.filter(
  (s) =>
    (s.notApplicable?.(backend) ?? null) === null &&
    !s.faketime &&
    !s.settings &&
    s.name !== "pause-long-nowd" &&
    s.name !== "pause-long-fencing",
);

const SHARDS = 2;
/** Keys that reach both shards, two of each. */
const KEYS = (() => {
  const keys: string[] = [];
  const per = new Map<number, number>();
  for (let i = 0; keys.length < 2 * SHARDS; i++) {
    const k = `soak-${i}`;
    const s = shardOf(k, SHARDS);
    if ((per.get(s) ?? 0) < 2) {
      per.set(s, (per.get(s) ?? 0) + 1);
      keys.push(k);
    }
  }
  return keys;
})();
/** How long after a fault the cluster has to be whole again (every shard served, every node up): generous, since a starved host takes a minute. */
const RECOVER_MS = 120_000;
const SETTLE_MS = 2000;
const FAILOVER_WAIT_MS = 15_000;

/** One fault's verdict, a line of faults.jsonl. */
interface FaultResult {
  readonly at: string;
  readonly n: number;
  readonly scenario: string;
  readonly shard: number;
  readonly target: string | null;
  readonly expect: Scenario["expect"];
  readonly failoverMs: number | null;
  readonly boundMs: number;
  readonly late: boolean;
  readonly missedFailover: boolean;
  readonly promotions: number;
  readonly falsePromotions: number;
  /** Safety violations the oracle counted while this fault ran (its whole report's increase). */
  readonly violations: number;
  readonly recoveredMs: number | null;
  readonly load1: number;
  readonly error: string | null;
}

/** One resource sample of one process, a line of resources.jsonl. */
interface ResourceSample {
  readonly t: number;
  readonly node: string;
  readonly pid: number;
  readonly rssMb: number;
  readonly fds: number;
  readonly heapMb: number | null;
}

const dir = mkdtempSync(join(tmpdir(), `mc-soak-${backend.name}-`));
const rng = seededRng(seed);
const oracle = new Oracle("strict");
let server: PrivateServer | null = null;
let cluster: ChaosCluster | null = null;
let hog: CpuHog | null = null;
killClustersOnExit(() => {
  hog?.stop();
  if (server?.pid) signalServer(server.pid, "SIGKILL");
});
// A crash of the harness itself must not leave a cluster and a store server running for an hour.
process.on("exit", () => {
  for (const n of cluster?.nodes ?? []) n.child.kill("SIGKILL");
  for (const s of oracle.sessions) signal(s.pid, "SIGKILL");
  if (server?.pid) signalServer(server.pid, "SIGKILL");
});

log(`soak ${backend.name}: ${minutes} min, a fault every ${faultEveryMs / 1000} s, seed ${seed}, ${cpus().length} cores; ${dir}`);
log(`soak ${backend.name}: catalogue ${catalogue.map((s) => s.name).join(", ")}`);

const violationsOf = (r: OracleReport) => r.overlaps + r.staleAccepted + r.epochRegressions + r.outsideSession;
const faults: FaultResult[] = [];
const loads: number[] = [];
let exitCode = 0;
try {
  await oracle.start();
  server = await backend.privateServer(dir);
  cluster = new ChaosCluster({
    backend,
    dir,
    ns: `soak${seed.toString(36)}_`,
    server: server.endpoint,
    oracle: oracle.address,
    masters: 2,
    coreapps: 4,
    shards: SHARDS,
    watchdog: true,
    opsPorts: true,
  });
  if (hogCount > 0) hog = startCpuHog(hogCount);
  const c = cluster;
  const formed = monoNow();
  await c.start();
  // On a starved host the watchdog may kill a coreapp before the cluster formed (docs/reliability.md,
  // finding 11): start what died again while waiting, as after a fault.
  for (let tries = 0; ; tries++) {
    try {
      await waitWhole(c, 30_000);
      break;
    } catch (e) {
      if (tries === 5) throw e;
      const restarted = await respawnDead(c, new Set(((await c.health())?.nodes ?? []).map((x) => x.id)));
      if (restarted.length) log(`soak ${backend.name}: not formed yet; started again: ${restarted.map((r) => r.name).join(", ")}`);
    }
  }
  log(`soak ${backend.name}: cluster formed in ${Math.round(monoNow() - formed)} ms`);
  c.startLoad(50, 400, KEYS);
  const started = monoNow();
  const end = started + minutes * 60_000;
  const sampler = startSampler(c, started);
  const [phase, phases] = values.phase.split("/").map(Number) as [number, number];
  let next = started + Math.min(faultEveryMs, 10_000) + (faultEveryMs * phase) / phases;
  for (let n = 1; monoNow() + 60_000 < end; n++) {
    await sleep(Math.max(0, next - monoNow()));
    next += faultEveryMs;
    // A recovery that ran past the next slot must not make the faults come back to back.
    next = Math.max(next, monoNow() + faultEveryMs);
    const r = await oneFault(c, n);
    faults.push(r);
    appendFileSync(join(dir, "faults.jsonl"), `${JSON.stringify(r)}\n`);
    const bad = r.violations || r.falsePromotions || r.missedFailover || r.late || r.recoveredMs === null || r.error;
    log(
      `soak ${backend.name} [${n}, ${Math.round((monoNow() - started) / 60_000)}/${minutes} min] ${r.scenario} shard ${r.shard}: ${bad ? "FAIL" : "ok"}` +
        ` (failover ${r.failoverMs === null ? "-" : Math.round(r.failoverMs)}/${r.boundMs} ms, promotions ${r.promotions}, recovered ${r.recoveredMs ?? "never"} ms, load ${r.load1.toFixed(1)}${r.error ? `, ${r.error}` : ""})`,
    );
    // Resource samples drain the load generator's answers: an hour of them need not stay in memory.
    if (monoNow() + faultEveryMs > end) await sleep(Math.max(0, end - monoNow()));
  }
  await sampler.stop();
  await c.stopLoad();
  const report = oracle.report();
  const resources = judgeResources(sampler.samples, minutes * 60_000);
  const requests = sampler.requests;
  const summary = {
    backend: backend.name,
    seed,
    minutes,
    cores: cpus().length,
    cpuHog: hogCount,
    faults: faults.length,
    byScenario: Object.fromEntries(catalogue.map((s) => [s.name, faults.filter((f) => f.scenario === s.name).length])),
    violations: violationsOf(report),
    oracle: { ...report, details: report.details.slice(0, 20) },
    falsePromotions: faults.reduce((a, f) => a + f.falsePromotions, 0),
    missedFailovers: faults.filter((f) => f.missedFailover).length,
    lateFailovers: faults
      .filter((f) => f.late)
      .map((f) => ({ n: f.n, scenario: f.scenario, failoverMs: f.failoverMs, boundMs: f.boundMs, load1: f.load1 })),
    unrecovered: faults.filter((f) => f.recoveredMs === null).map((f) => f.n),
    errors: faults.filter((f) => f.error).map((f) => `${f.n}: ${f.error}`),
    failoverMs: stats(faults.flatMap((f) => (f.failoverMs === null ? [] : [f.failoverMs]))),
    boundedFailoverMs: stats(
      faults.flatMap((f) => (f.failoverMs !== null && SCENARIOS.find((s) => s.name === f.scenario)?.bounded ? [f.failoverMs] : [])),
    ),
    requests,
    load1: stats(loads),
    resources,
  };
  writeFileSync(join(dir, "summary.json"), JSON.stringify(summary, null, 2));
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  const unbounded = resources.filter((r) => !r.bounded);
  exitCode =
    summary.violations ||
    summary.falsePromotions ||
    summary.missedFailovers ||
    summary.lateFailovers.length ||
    summary.unrecovered.length ||
    summary.errors.length ||
    unbounded.length
      ? 1
      : 0;
  log(`soak ${backend.name}: ${exitCode ? "FAIL" : "ok"}; summary in ${join(dir, "summary.json")}`);
} catch (error) {
  log(`soak ${backend.name}: broken: ${(error as Error).stack ?? String(error)}\n${cluster?.logs(15) ?? ""}`);
  exitCode = 1;
} finally {
  hog?.stop();
  await cluster?.stop(oracle.sessions.map((s) => s.pid));
  await oracle.close();
  await server?.stop();
}
process.exit(exitCode);

/** Min, median, 95th percentile and max of `xs` (null when empty). */
function stats(xs: number[]): { n: number; min: number; p50: number; p95: number; max: number } | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10;
  return { n: s.length, min: at(0), p50: at(0.5), p95: at(0.95), max: at(1) };
}

/**
 * Waits until the cluster is whole: a primary master, every running master healthy, every shard
 * owned by a connected coreapp, every running coreapp registered and up. Throws after `ms`.
 */
async function waitWhole(
  c: ChaosCluster,
  ms: number,
  fresh: readonly { name: string; notIds: Set<string> }[] = [],
): Promise<ClusterStatus> {
  return c.waitFor(
    async () => {
      const h = await c.health();
      if (!h?.primary_master) return null;
      // A restarted node counts once its new process registered (the dead one's record lingers).
      if (!fresh.every((f) => h.nodes.some((n) => n.name === f.name && n.healthy && !f.notIds.has(n.id)))) return null;
      const up = (role: string) => h.nodes.filter((n) => n.healthy && n.role.endsWith(role));
      if (up("master").length < c.running("master").length) return null;
      if (up("coreapp").length < c.running("coreapp").length) return null;
      const connected = h.nodes.filter((n) => n.gateway_status === "connected").length;
      return connected === h.shards.length && h.shards.every((s) => s.owner) ? h : null;
    },
    ms,
    100,
  );
}

/**
 * Starts again every node whose latest process died (a fault killed it), under the same name;
 * returns the names restarted, each with the ids its earlier processes had.
 */
async function respawnDead(c: ChaosCluster, known: Set<string>): Promise<{ name: string; notIds: Set<string> }[]> {
  const latest = new Map<string, ChaosNode>();
  for (const n of c.nodes) latest.set(n.name, n);
  const restarted: { name: string; notIds: Set<string> }[] = [];
  for (const n of latest.values()) {
    if (n.child.exitCode === null && n.child.signalCode === null) continue;
    await Promise.all([n.storeProxy?.close(), n.inbound?.close()]);
    await c.spawn(n.role, n.name);
    restarted.push({ name: n.name, notIds: known });
  }
  return restarted;
}

/** Injects one fault drawn with the seed, judges it, and brings the cluster back to whole. */
async function oneFault(c: ChaosCluster, n: number): Promise<FaultResult> {
  const scenario = catalogue[Math.floor(rng() * catalogue.length)]!;
  const shard = Math.floor(rng() * SHARDS);
  const load1 = loadavg()[0]!;
  loads.push(load1);
  const before = violationsOf(oracle.report());
  const base = { at: new Date().toISOString(), n, scenario: scenario.name, shard, expect: scenario.expect, load1 };
  let firstFault: number | null = null;
  let ready: ClusterStatus | null = null;
  let primary: Primary | null = null;
  let error: string | null = null;
  const epochsBefore = new Map<number, number>();
  for (let s = 0; s < SHARDS; s++) epochsBefore.set(s, oracle.current(s)?.epoch ?? 0);
  try {
    ready = await waitWhole(c, 60_000);
    const session = oracle.current(shard);
    if (!session) throw new Error(`shard ${shard} has no session at the oracle`);
    primary = { name: session.node, pid: session.pid, epoch: session.epoch };
    const proxyFaultsBefore = c.proxyFaults();
    const watch = setInterval(() => {
      if (firstFault === null && c.proxyFaults() > proxyFaultsBefore) firstFault = monoNow();
    }, 5);
    try {
      await scenario.inject({
        backend,
        cluster: c,
        oracle,
        ready,
        primary,
        server,
        rng,
        fault() {
          firstFault ??= monoNow();
        },
      });
    } finally {
      clearInterval(watch);
    }
  } catch (e) {
    error = (e as Error).message;
  }
  const t0 = firstFault ?? monoNow();
  await sleep(SETTLE_MS);
  const p = primary;
  const newer = () =>
    p ? (c.samples.find((s) => s.ok && shardOf(s.key, SHARDS) === shard && (s.epoch ?? 0) > p.epoch && s.doneAt > t0) ?? null) : null;
  if (scenario.expect === "failover" && p) await c.waitFor(async () => newer(), FAILOVER_WAIT_MS).catch(() => null);
  const served = newer();
  const opened = oracle.openedAfter(t0).filter((s) => s.epoch > (epochsBefore.get(s.shard) ?? 0));
  const promotions = new Set(opened.map((s) => `${s.shard}:${s.epoch}`)).size;
  const failoverMs = served ? served.doneAt - t0 : null;
  const boundMs = ready?.failover_bound_ms ?? 0;
  // Recovery: restart what the fault killed, then wait for the whole cluster again. The store
  // server is checked too: its death outside a store-restart fault is said, then mended.
  const healing = monoNow();
  if (server?.pid && !alive(server.pid)) {
    log(`soak ${backend.name}: the store server is gone after fault ${n} (${scenario.name}); starting it again`);
    error ??= "the store server died";
    await server.start().catch((e: Error) => log(`soak ${backend.name}: cannot restart the store: ${e.message}`));
  }
  let recoveredMs: number | null = null;
  try {
    const known = new Set(((await c.health())?.nodes ?? ready?.nodes ?? []).map((x) => x.id));
    await waitWhole(c, RECOVER_MS, await respawnDead(c, known));
    recoveredMs = Math.round(monoNow() - healing);
  } catch (e) {
    error ??= `not whole ${RECOVER_MS} ms after the fault: ${(e as Error).message}`;
    log(`soak ${backend.name}: fault ${n} (${scenario.name}) left the cluster broken:\n${c.logs(10)}`);
  }
  // Judge only what this fault's window saw: drop the answers before it (memory stays flat).
  c.samples.splice(0, c.samples.length);
  return {
    ...base,
    target: primary?.name ?? null,
    failoverMs,
    boundMs,
    late: scenario.bounded === true && failoverMs !== null && failoverMs > boundMs,
    missedFailover: scenario.expect === "failover" && !served && primary !== null,
    promotions,
    falsePromotions: scenario.expect === "none" ? promotions : 0,
    violations: violationsOf(oracle.report()) - before,
    recoveredMs,
    error,
  };
}

/** True while process (group, when negative) `pid` exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Reads one process's RSS (MiB) and open file descriptors from /proc; null when it is gone. */
function procSample(pid: number): { rssMb: number; fds: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
    return { rssMb: rss / 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return null;
  }
}

/** The direct children of `pid` (a supervised coreapp's worker), from /proc. */
function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((t) =>
      readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

/** The V8 heap in use (MiB) from a node's /metrics, or null. */
async function heapOf(port: number | null): Promise<number | null> {
  if (!port) return null;
  try {
    const r = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) });
    const m = /^nodejs_heap_size_used_bytes\S* ([0-9.e+]+)$/m.exec(await r.text());
    return m ? Number(m[1]) / 2 ** 20 : null;
  } catch {
    return null;
  }
}

/**
 * Samples every running node every `sampleEveryMs`: the node's own process and its children (a
 * supervised coreapp's worker is the process doing the work; the supervisor serves no /metrics, so
 * the heap is the worker's). Also counts the load generator's answers before each fault drains them.
 */
function startSampler(c: ChaosCluster, t0: number) {
  const samples: ResourceSample[] = [];
  const requests = { sent: 0, ok: 0 };
  let counted = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      await sampleOnce().catch((e: Error) => log(`soak ${backend.name}: sampling failed: ${e.message}`));
      await sleep(sampleEveryMs);
    }
  })();
  async function sampleOnce(): Promise<void> {
    {
      const t = Math.round(monoNow() - t0);
      for (const node of c.running()) {
        const pid = node.child.pid!;
        const kids = childrenOf(pid);
        const heap = await heapOf(node.opsPort);
        for (const [i, p] of [pid, ...kids].entries()) {
          const s = procSample(p);
          if (!s) continue;
          const label = i === 0 ? node.name : `${node.name}/worker`;
          // The heap belongs to whichever process serves /metrics: the worker when there is one.
          const heapMb = kids.length === 0 || i > 0 ? heap : null;
          const sample = { t, node: label, pid: p, rssMb: round1(s.rssMb), fds: s.fds, heapMb: heapMb === null ? null : round1(heapMb) };
          samples.push(sample);
          appendFileSync(join(dir, "resources.jsonl"), `${JSON.stringify(sample)}\n`);
        }
      }
      // The samples array is drained at each fault; count what arrived since the last look.
      if (c.samples.length < counted) counted = 0;
      for (const s of c.samples.slice(counted)) {
        requests.sent++;
        if (s.ok) requests.ok++;
      }
      counted = c.samples.length;
    }
  }
  return {
    samples,
    requests,
    stop() {
      running = false;
      return loop;
    },
  };
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** One process's resource verdict (see `judgeResources`). */
interface ResourceVerdict {
  readonly node: string;
  readonly pid: number;
  readonly minutes: number;
  readonly rssMb: { early: number; late: number; max: number; slopeMbPerHour: number };
  readonly heapMb: { early: number; late: number; max: number; slopeMbPerHour: number } | null;
  readonly fds: { early: number; late: number; max: number };
  readonly bounded: boolean;
  readonly why: string;
}

/**
 * Judges every process that lived through at least half of the run (the masters, the webapp and
 * the coreapps no fault killed; a process a fault restarted has too short a life to show a trend).
 * After a warm-up of a fifth of the run (at most 10 minutes: JIT, pools and caches filling), the
 * remaining samples are cut into thirds, and the medians of the first and last thirds compared:
 * medians, not maxima, because the V8 heap saw-tooths with every collection. Bounded means
 * RSS(late) ≤ 1.15 × RSS(early) + 10 MiB, heap(late) ≤ 1.2 × heap(early) + 5 MiB and open file
 * descriptors(late max) ≤ fds(early max) + 8 (a store reconnect can hold a few more for a while). The
 * least-squares slope after warm-up is reported beside it, to read, not to judge (a restart of the
 * store tilts it for a while).
 */
function judgeResources(all: ResourceSample[], runMs: number): ResourceVerdict[] {
  const byProcess = new Map<string, ResourceSample[]>();
  for (const s of all) {
    const k = `${s.node}:${s.pid}`;
    byProcess.set(k, [...(byProcess.get(k) ?? []), s]);
  }
  const warmUp = Math.min(runMs / 5, 600_000);
  const verdicts: ResourceVerdict[] = [];
  for (const samples of byProcess.values()) {
    const life = samples.at(-1)!.t - samples[0]!.t;
    if (life < runMs / 2) continue;
    const after = samples.filter((s) => s.t >= samples[0]!.t + warmUp);
    if (after.length < 6) continue;
    const third = Math.floor(after.length / 3);
    const early = after.slice(0, third);
    const late = after.slice(-third);
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const slope = (pick: (s: ResourceSample) => number) => {
      const xs = after.map((s) => s.t / 3_600_000);
      const ys = after.map(pick);
      const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
      const my = ys.reduce((a, b) => a + b, 0) / ys.length;
      const num = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0);
      const den = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
      return den === 0 ? 0 : round1(num / den);
    };
    const rss = {
      early: med(early.map((s) => s.rssMb)),
      late: med(late.map((s) => s.rssMb)),
      max: Math.max(...after.map((s) => s.rssMb)),
      slopeMbPerHour: slope((s) => s.rssMb),
    };
    const withHeap = after.filter((s) => s.heapMb !== null);
    const heap =
      withHeap.length >= 6
        ? {
            early: med(early.flatMap((s) => (s.heapMb === null ? [] : [s.heapMb]))),
            late: med(late.flatMap((s) => (s.heapMb === null ? [] : [s.heapMb]))),
            max: Math.max(...withHeap.map((s) => s.heapMb!)),
            slopeMbPerHour: slope((s) => s.heapMb ?? 0),
          }
        : null;
    const fds = {
      early: Math.max(...early.map((s) => s.fds)),
      late: Math.max(...late.map((s) => s.fds)),
      max: Math.max(...after.map((s) => s.fds)),
    };
    const why: string[] = [];
    if (rss.late > 1.15 * rss.early + 10) why.push(`RSS grew ${rss.early} → ${rss.late} MiB`);
    if (heap && !Number.isNaN(heap.early) && heap.late > 1.2 * heap.early + 5) why.push(`heap grew ${heap.early} → ${heap.late} MiB`);
    if (fds.late > fds.early + 8) why.push(`open fds grew ${fds.early} → ${fds.late}`);
    verdicts.push({
      node: samples[0]!.node,
      pid: samples[0]!.pid,
      minutes: round1(life / 60_000),
      rssMb: rss,
      heapMb: heap,
      fds,
      bounded: why.length === 0,
      why: why.join("; ") || "flat after warm-up",
    });
  }
  return verdicts;
}
