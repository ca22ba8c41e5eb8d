import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Backend, PrivateServer } from "./backends.js";
import { ChaosCluster, NodeStartError, sleep } from "./cluster.js";
import { dropNamespace } from "./namespace.js";
import { monoNow, Oracle, type OracleReport } from "../src/testing/oracle.js";
import type { Primary, Scenario } from "./scenarios.js";

/** The outcome of one run of one scenario on one backend. */
export interface RunResult {
  readonly scenario: string;
  readonly backend: string;
  readonly seed: number;
  /** Process and store faults the scenario injected, plus the proxies' faults. */
  readonly faults: number;
  readonly report: OracleReport;
  /**
   * The longest time, from the first fault on, between two requests answered successfully: what
   * users went without service (ms; the load sends a request every few ms).
   */
  readonly unservedMs?: number;
  /** Milliseconds from the first fault to the first request served at a newer epoch; null if none. */
  readonly failoverMs: number | null;
  readonly boundMs: number;
  /** New epochs the upstream saw opened after the first fault. */
  readonly promotions: number;
  /** Promotions where the scenario expects none (L2). */
  readonly falsePromotions: number;
  /** A failover was expected and none was served before the run ended (L1). */
  readonly missedFailover: boolean;
  /** Safety violations that count (overlaps excluded where the scenario documents a hazard). */
  readonly violations: number;
  readonly error: string | null;
  readonly dir: string;
  /** Where the run's time went (ms), for tuning the profiles. */
  readonly phases: string;
  /** Wall-clock start of the run, to match it with what else the machine was doing. */
  readonly startedAt: string;
  /** The git revision of the code under test (set by the runner; results files keep it). */
  readonly revision?: string;
}

/** The longest stretch from `t0` on between successful answers (ms), ending at the last sample. */
export function longestUnserved(samples: readonly { ok: boolean; doneAt: number }[], t0: number): number {
  let last = t0;
  let longest = 0;
  for (const s of [...samples].filter((x) => x.ok && x.doneAt > t0).sort((a, b) => a.doneAt - b.doneAt)) {
    longest = Math.max(longest, s.doneAt - last);
    last = s.doneAt;
  }
  return Math.round(longest);
}

/** A small seeded PRNG (mulberry32): the same seed gives the same fault mix. */
export function seededRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** How long after the faults the run keeps watching (for a failover, or for late misbehaviour). */
const SETTLE_MS = 2000;
/** How long a run waits for an expected failover after the faults ended. */
const FAILOVER_WAIT_MS = 15_000;

/**
 * Runs `scenario` once on `backend`: a fresh oracle, a fresh namespace and a fresh cluster of real
 * processes; load through the webapp during the whole run; the faults; then the oracle's verdict.
 */
export async function runOnce(scenario: Scenario, backend: Backend, seed: number, log: (line: string) => void): Promise<RunResult> {
  return withRestarts(
    () => attempt(scenario, backend, seed, log),
    (error) => log(`  ${scenario.name}/${backend.name} seed ${seed}: ${error}; starting the run again`),
  );
}

/** A run's result, and whether it failed because a node exited before the cluster was ready. */
export type Attempt = RunResult & { nodeStartFailed?: boolean };

/**
 * Runs `attempt`, and again (twice at most) while it fails because a node exited before the
 * cluster was ready: such a cluster is not the one the run meant to test, so the SDK is not
 * judged by a harness accident. What happened is said in the result's `phases`.
 */
export async function withRestarts(attempt: () => Promise<Attempt>, onRestart: (error: string) => void): Promise<RunResult> {
  const restarts: string[] = [];
  for (;;) {
    const r = await attempt();
    if (!(r.error && r.nodeStartFailed) || restarts.length === 2) {
      const { nodeStartFailed: _, ...result } = r;
      return restarts.length
        ? { ...result, phases: `${result.phases}${result.phases ? ", " : ""}started again after: ${restarts.join("; ")}` }
        : result;
    }
    restarts.push(r.error);
    onRestart(r.error);
  }
}

/** The fields every result of a run carries from its start. */
export type RunBase = Pick<RunResult, "scenario" | "backend" | "seed" | "dir" | "startedAt">;

/** The result of a run that failed before it could be judged (`error` says why). */
export function failedRun(base: RunBase, faults: number, report: OracleReport, error: unknown): Attempt {
  return {
    ...base,
    faults,
    report,
    failoverMs: null,
    boundMs: 0,
    promotions: 0,
    falsePromotions: 0,
    missedFailover: false,
    violations: 0,
    error: (error as Error).message,
    phases: "",
    nodeStartFailed: error instanceof NodeStartError,
  };
}

async function attempt(scenario: Scenario, backend: Backend, seed: number, log: (line: string) => void): Promise<Attempt> {
  const dir = mkdtempSync(join(tmpdir(), `mc-chaos-${scenario.name}-${backend.name}-`));
  const ns = `x${seed.toString(36)}${Math.random().toString(36).slice(2, 7)}_`;
  const oracle = new Oracle(scenario.oracleMode ?? "strict");
  await oracle.start();
  let server: PrivateServer | null = null;
  let cluster: ChaosCluster | null = null;
  let injected = 0;
  let firstFault: number | null = null;
  const notes: string[] = [];
  const base = { scenario: scenario.name, backend: backend.name, seed, dir, startedAt: new Date().toISOString() };
  try {
    if (scenario.privateStore && backend.privateServer) server = await backend.privateServer(dir);
    // A replicated store names all its servers in the store section; the nodes dial them directly.
    const section = server?.storeSection?.bind(server);
    cluster = new ChaosCluster({
      backend: section ? { ...backend, store: (n) => section(n) } : backend,
      dir,
      ns,
      server: section ? null : (server?.endpoint ?? backend.shared),
      inboundProxies: !section,
      oracle: oracle.address,
      watchdog: scenario.watchdog ?? false,
      supervise: scenario.supervise ?? false,
      faketime: scenario.faketime ?? false,
      ...(scenario.settings ? { settings: scenario.settings } : {}),
    });
    const t = monoNow();
    await cluster.start();
    const ready = await cluster.waitReady(scenario.readyMs);
    const phases = [`ready ${Math.round(monoNow() - t)}`];
    const session = await cluster.waitFor(async () => oracle.current(0), 10_000);
    const primary: Primary = { name: session.node, pid: session.pid, epoch: session.epoch };
    cluster.startLoad();
    await sleep(300);
    const c = cluster;
    // Proxy faults count from their first mode change: take the earliest of both as the fault time.
    const proxyFaultsBefore = c.proxyFaults();
    const watchProxies = setInterval(() => {
      if (firstFault === null && c.proxyFaults() > proxyFaultsBefore) firstFault = monoNow();
    }, 5);
    await scenario.inject({
      backend,
      cluster: c,
      oracle,
      ready,
      primary,
      server,
      rng: seededRng(seed),
      fault(what) {
        injected++;
        firstFault ??= monoNow();
        notes.push(`${monoNow().toFixed(1)} ${what}`);
      },
    });
    clearInterval(watchProxies);
    phases.push(`faults ${Math.round(monoNow() - (firstFault ?? monoNow()))}`);
    const t0 = firstFault ?? monoNow();
    await sleep(SETTLE_MS);
    const newer = () => c.samples.find((s) => s.ok && (s.epoch ?? 0) > primary.epoch && s.doneAt > t0) ?? null;
    if (scenario.expect === "failover") await c.waitFor(async () => newer(), FAILOVER_WAIT_MS).catch(() => null);
    await c.stopLoad();
    const served = newer();
    const pids = oracle.sessions.map((s) => s.pid);
    const report = oracle.report();
    const promotions = new Set(
      oracle
        .openedAfter(t0)
        .filter((s) => s.epoch > primary.epoch)
        .map((s) => s.epoch),
    ).size;
    const falsePromotions = scenario.expect === "none" ? promotions : 0;
    const missedFailover = scenario.expect === "failover" && !served;
    const overlaps = scenario.hazard ? 0 : report.overlaps;
    const violations = overlaps + report.staleAccepted + report.epochRegressions + report.outsideSession;
    writeFileSync(join(dir, "oracle.json"), JSON.stringify({ faults: notes, primary, report, sessions: oracle.sessions }, null, 2));
    if (violations > 0 || falsePromotions > 0 || missedFailover) {
      log(`  ${scenario.name}/${backend.name} seed ${seed}: ${report.details.join("; ") || "see below"}\n${c.logs(12)}`);
    }
    const stopping = monoNow();
    await c.stop(pids);
    cluster = null;
    phases.push(`stop ${Math.round(monoNow() - stopping)}`);
    return {
      ...base,
      faults: injected + c.proxyFaults(),
      report,
      failoverMs: served ? served.doneAt - t0 : null,
      unservedMs: longestUnserved(c.samples, t0),
      boundMs: ready.failover_bound_ms,
      promotions,
      falsePromotions,
      missedFailover,
      violations,
      error: null,
      phases: phases.join(", "),
    };
  } catch (error) {
    log(`  ${scenario.name}/${backend.name} seed ${seed}: run failed: ${(error as Error).message}\n${cluster?.logs(12) ?? ""}`);
    return failedRun(base, injected, oracle.report(), error);
  } finally {
    await cluster?.stop(oracle.sessions.map((s) => s.pid));
    await oracle.close();
    await server?.stop();
    if (!server && backend.shared)
      await dropNamespace(backend, ns, backend.shared).catch((e: Error) => log(`  could not drop namespace ${ns}: ${e.message}`));
  }
}
