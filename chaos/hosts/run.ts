import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { FaultProxy } from "../../src/testing/fault-proxy.js";
import { monoNow, Oracle } from "../../src/testing/oracle.js";
import { BACKENDS, type Backend } from "../backends.js";
import { CLI, killAllNodes, sleep } from "../cluster.js";
import { dropNamespace } from "../namespace.js";
import { failedRun, seededRng, withRestarts, type Attempt, type RunResult } from "../run-once.js";
import type { Primary } from "../scenarios.js";
import { failed, renderTable, type Cell } from "../table.js";
import { INTERNET, STORE_HOST, create, destroy, droppedPackets, ensureTools, heal, type Host } from "./bed.js";
import { DEFAULT_PORTS } from "../../src/nodes/compose.js";
import { HostCluster } from "./cluster.js";
import { HOST_CI_SCENARIOS, HOST_SCENARIOS, type HostScenario } from "./scenarios.js";

/**
 * `npm run chaos -- --hosts [--profile short|long] [--backend postgres,mysql,redis,etcd]
 * [--scenario a,b|all] [--seed N] [--runs N] [--out results.jsonl] [--report-only]`: the multi-host
 * bed (docs/reliability.md, "The multi-host bed"). Each run builds a cluster of seven hosts — two masters, three
 * coreapps, two webapps, one node per host on the production ports — injects one scenario's
 * partition with iptables (or delay through the store proxy), and judges it with the upstream
 * oracle as chaos/run.ts does. Runs are one at a time: every run uses the same host addresses and
 * ports. Profiles: short = the CI scenarios once; long = every scenario 30 times. Exit code 1 when
 * any run broke safety, promoted falsely, missed a failover or could not run; 2 for bad arguments.
 */
export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      profile: { type: "string", default: "short" },
      backend: { type: "string", default: "postgres,mysql,redis,etcd" },
      scenario: { type: "string" },
      seed: { type: "string" },
      runs: { type: "string" },
      out: { type: "string" },
      "report-only": { type: "boolean", default: false },
    },
  });
  const fail = (message: string): never => {
    process.stderr.write(`chaos --hosts: ${message}\n`);
    process.exit(2);
  };
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const profile = values.profile;
  if (profile !== "short" && profile !== "long") fail("--profile must be short or long");
  const backends: Backend[] = values.backend.split(",").map((b) => {
    const backend = BACKENDS[b.trim() as keyof typeof BACKENDS] ?? fail(`unknown backend ${b}`);
    if (!backend.shared)
      fail(`${b}: the multi-host bed covers networked stores only (SQLite has no network: one file cannot serve several hosts)`);
    return backend;
  });
  const names =
    values.scenario === "all" || (!values.scenario && profile === "long")
      ? HOST_SCENARIOS.map((s) => s.name)
      : (values.scenario?.split(",") ?? HOST_CI_SCENARIOS);
  const scenarios = names.map(
    (n) =>
      HOST_SCENARIOS.find((s) => s.name === n.trim()) ??
      fail(`unknown scenario ${n}; known: ${HOST_SCENARIOS.map((s) => s.name).join(", ")}`),
  );
  const runs = values.runs ? Number(values.runs) : profile === "long" ? 30 : 1;
  const seed = values.seed ? Number(values.seed) : Math.floor(Math.random() * 1_000_000);
  if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) fail("--runs and --seed must be integers");
  if (!values["report-only"]) {
    if (!existsSync(CLI)) fail(`${CLI} is missing; run \`npm run build\` first (npm run chaos does)`);
    const missing = ensureTools();
    if (missing) fail(missing);
  }

  const cells: Cell[] = [];
  const jobs: { scenario: HostScenario; backend: Backend; seed: number }[] = [];
  for (const backend of backends)
    for (const scenario of scenarios) cells.push({ scenario, backend: backend.name, runs: [], notApplicable: null });
  // Run i of every cell before run i + 1 of any: a long profile stopped early (it is long: ~30 s a
  // run, one at a time) leaves every cell with the same number of runs, and `--out` resumes it.
  for (let i = 0; i < runs; i++)
    for (const backend of backends) for (const scenario of scenarios) jobs.push({ scenario, backend, seed: seed + i });
  const key = (j: { scenario: string; backend: string; seed: number }) => `${j.scenario}/${j.backend}/${j.seed}`;
  const cellOf = (r: RunResult) => cells.find((c) => c.scenario.name === r.scenario && c.backend === r.backend)!;
  const done = new Set<string>();
  if (values.out && existsSync(values.out)) {
    if (!values.seed) fail(`${values.out} exists: pass the --seed it was made with to resume it, or choose another --out`);
    const wanted = new Set(jobs.map((j) => key({ ...j, scenario: j.scenario.name, backend: j.backend.name })));
    for (const line of readFileSync(values.out, "utf8").split("\n")) {
      if (!line.trim()) continue;
      const r = JSON.parse(line) as RunResult;
      if (!wanted.has(key(r)) || done.has(key(r))) continue;
      done.add(key(r));
      cellOf(r).runs.push(r);
    }
  }
  const todo = values["report-only"]
    ? []
    : jobs.filter((j) => !done.has(key({ ...j, scenario: j.scenario.name, backend: j.backend.name })));
  log(
    `chaos --hosts: profile ${profile}, ${runs} run(s) per cell, seed ${seed}, ${todo.length} run(s) to do, load ${loadavg()[0]!.toFixed(2)}`,
  );

  // The bed is removed however the runner ends: normal exit, an exception, Ctrl-C or SIGTERM.
  let bedUp = false;
  process.once("exit", () => {
    killAllNodes();
    if (bedUp) destroy();
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(130)); // on: a second signal must not find the default action

  const started = performance.now();
  if (todo.length > 0) {
    const hosts = create(NODE_NAMES.map((n) => `mc-${n}`));
    bedUp = true;
    const hostOf = new Map(NODE_NAMES.map((n, i) => [n, hosts[i]!]));
    for (const [i, job] of todo.entries()) {
      const r = { ...(await runOnce(job.scenario, job.backend, job.seed, hostOf, hosts, log)), revision: revision() };
      cellOf(r).runs.push(r);
      if (values.out) appendFileSync(values.out, `${JSON.stringify(r)}\n`);
      const verdict = r.error ? "ERROR" : r.violations || r.falsePromotions || r.missedFailover ? "FAIL" : "ok";
      log(
        `chaos --hosts [${i + 1}/${todo.length}] ${r.scenario} ${r.backend} seed ${r.seed}: ${verdict} (failover ${r.failoverMs === null ? "-" : Math.round(r.failoverMs)} ms, bound ${r.boundMs}, overlaps ${r.report.overlaps}, ${r.phases}; ${r.dir})`,
      );
    }
    destroy();
    bedUp = false;
  }
  process.stdout.write(`\n${renderTable(cells)}\n\n`);
  process.stdout.write(
    `multi-host bed; seed ${seed}; ${Math.round((performance.now() - started) / 1000)} s; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}; bound = failover_bound_ms from GET /v1/health\n`,
  );
  return cells.some(failed) ? 1 : 0;
}

/** The last commit that changed src/ (marked when src/ differs from it): the SDK code a run exercised. */
function revision(): string {
  const head = spawnSync("git", ["log", "-1", "--format=%h", "--", "src"], { encoding: "utf8" }).stdout.trim() || "unknown";
  const dirty = spawnSync("git", ["status", "--porcelain", "--untracked-files=no", "src"], { encoding: "utf8" }).stdout.trim() !== "";
  return dirty ? `${head}+changes` : head;
}

/** One node per host. */
const NODE_NAMES = ["master-1", "master-2", "coreapp-1", "coreapp-2", "coreapp-3", "webapp-1", "webapp-2"];

/** How long after the faults the run keeps watching, and how long it waits for an expected failover. */
const SETTLE_MS = 2000;
const FAILOVER_WAIT_MS = 15_000;

function runOnce(
  scenario: HostScenario,
  backend: Backend,
  seed: number,
  hostOf: ReadonlyMap<string, Host>,
  hosts: readonly Host[],
  log: (line: string) => void,
): Promise<RunResult> {
  return withRestarts(
    () => attempt(scenario, backend, seed, hostOf, hosts, log),
    (error) => log(`  ${scenario.name}/${backend.name} seed ${seed}: ${error}; starting the run again`),
  );
}

async function attempt(
  scenario: HostScenario,
  backend: Backend,
  seed: number,
  hostOf: ReadonlyMap<string, Host>,
  hosts: readonly Host[],
  log: (line: string) => void,
): Promise<Attempt> {
  const dir = mkdtempSync(join(tmpdir(), `mc-chaos-hosts-${scenario.name}-${backend.name}-`));
  const ns = `h${seed.toString(36)}${Math.random().toString(36).slice(2, 7)}_`;
  const shared = backend.shared!;
  const oracle = new Oracle("strict");
  await oracle.start(INTERNET);
  // The store host: the store's own port on 10.77.0.2, relayed to the machine's server.
  const storeProxy = new FaultProxy(shared.host, shared.port, "store host");
  await storeProxy.start(shared.port, STORE_HOST);
  let cluster: HostCluster | null = null;
  const dropsBefore = droppedPackets();
  let firstFault: number | null = null;
  let injected = 0;
  const notes: string[] = [];
  const base = { scenario: scenario.name, backend: backend.name, seed, dir, startedAt: new Date().toISOString() };
  try {
    cluster = new HostCluster({ backend, dir, ns, store: { host: "store", port: shared.port }, oracle: oracle.address, hosts: hostOf });
    const t = monoNow();
    await cluster.start();
    const ready = await cluster.waitReady();
    // The production layout: every node advertises its host's name and its role's default port.
    const wrong = ready.nodes.flatMap((n) => {
      const role = n.role === "primary_master" || n.role === "secondary_master" ? "master" : n.role;
      const want = `${hostOf.get(n.name)?.name}:${DEFAULT_PORTS[role as keyof typeof DEFAULT_PORTS]}`;
      return n.address === want ? [] : [`${n.name} advertises ${n.address}, not ${want}`];
    });
    if (wrong.length > 0) throw new Error(`addresses: ${wrong.join("; ")}`);
    const phases = [`ready ${Math.round(monoNow() - t)}`, `load ${loadavg()[0]!.toFixed(1)}`];
    const session = await cluster.waitFor(async () => oracle.current(0), 10_000);
    const primary: Primary = { name: session.node, pid: session.pid, epoch: session.epoch };
    cluster.clientWebapps = [...(scenario.clientWebapps ?? ["webapp-1"])];
    cluster.startLoad();
    await sleep(300);
    const c = cluster;
    let faultEnd = 0;
    await scenario.inject({
      backend,
      cluster: c,
      oracle,
      ready,
      primary,
      storeProxy,
      hosts,
      rng: seededRng(seed),
      fault(what) {
        injected++;
        firstFault ??= monoNow();
        notes.push(`${monoNow().toFixed(1)} ${what}`);
      },
    });
    faultEnd = monoNow();
    const t0 = firstFault ?? faultEnd;
    phases.push(`faults ${Math.round(faultEnd - t0)}`);
    await sleep(SETTLE_MS);
    const newer = () => c.samples.find((s) => s.ok && (s.epoch ?? 0) > primary.epoch && s.doneAt > t0) ?? null;
    if (scenario.expect === "failover") await c.waitFor(async () => newer(), FAILOVER_WAIT_MS).catch(() => null);
    await c.stopLoad();
    const served = newer();
    const report = oracle.report();
    const promotions = new Set(
      oracle
        .openedAfter(t0)
        .filter((s) => s.epoch > primary.epoch)
        .map((s) => s.epoch),
    ).size;
    // A webapp that must keep serving: the longest stretch during the fault with no answer from it.
    let serviceError: string | null = null;
    if (scenario.servedThrough) {
      const { webapp, maxGapMs } = scenario.servedThrough;
      const oks = c.samples.filter((s) => s.ok && s.webapp === webapp).map((s) => s.doneAt);
      let gap = 0;
      let last = t0;
      for (const at of [...oks.filter((x) => x > t0 && x < faultEnd), faultEnd]) {
        gap = Math.max(gap, at - last);
        last = at;
      }
      phases.push(`${webapp} longest gap ${Math.round(gap)}`);
      if (gap > maxGapMs) serviceError = `${webapp} served nothing for ${Math.round(gap)} ms during the fault (limit ${maxGapMs} ms)`;
    }
    const falsePromotions = scenario.expect === "none" ? promotions : 0;
    const missedFailover = scenario.expect === "failover" && !served;
    const overlaps = scenario.hazard ? 0 : report.overlaps;
    const violations = overlaps + report.staleAccepted + report.epochRegressions + report.outsideSession;
    await Promise.all(hosts.map(heal));
    const drops = droppedPackets() - dropsBefore;
    writeFileSync(join(dir, "oracle.json"), JSON.stringify({ faults: notes, primary, report, sessions: oracle.sessions }, null, 2));
    if (violations > 0 || falsePromotions > 0 || missedFailover || serviceError) {
      log(
        `  ${scenario.name}/${backend.name} seed ${seed}: ${[serviceError, ...report.details].filter(Boolean).join("; ") || "see below"}\n${c.logs(12)}`,
      );
    }
    phases.push(`dropped packets ${drops}`);
    return {
      ...base,
      faults: injected + storeProxy.faults,
      report,
      failoverMs: served ? served.doneAt - t0 : null,
      boundMs: ready.failover_bound_ms,
      promotions,
      falsePromotions,
      missedFailover,
      violations,
      error: serviceError,
      phases: phases.join(", "),
    };
  } catch (error) {
    log(`  ${scenario.name}/${backend.name} seed ${seed}: run failed: ${(error as Error).message}\n${cluster?.logs(12) ?? ""}`);
    return failedRun(base, injected, oracle.report(), error);
  } finally {
    await Promise.all(hosts.map(heal)).catch((e: Error) => log(`  could not heal the partitions: ${e.message}`));
    await cluster?.stop(oracle.sessions.map((s) => s.pid));
    await oracle.close();
    await storeProxy.close();
    await dropNamespace(backend, ns, shared).catch((e: Error) => log(`  could not drop namespace ${ns}: ${e.message}`));
  }
}
