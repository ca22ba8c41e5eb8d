import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { fork, spawnSync, type ChildProcess } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BACKENDS, type Backend } from "./backends.js";
import { CLI, FAKETIME_LIB, killClustersOnExit } from "./cluster.js";
import { startCpuHog } from "./cpu-hog.js";
import { runOnce, type RunResult } from "./run-once.js";
import { CI_SCENARIOS, SCENARIOS as STORE_SCENARIOS, type Scenario } from "./scenarios.js";
import { STORE_HA_BACKENDS, STORE_HA_SCENARIOS } from "./store-ha/scenarios.js";
import { failed, renderTable, type Cell } from "./table.js";
import type { FromWorker, Job, ToWorker } from "./worker.js";

/**
 * `npm run chaos -- [--store-ha] [--profile short|long] [--backend sqlite,postgres,...] [--scenario a,b|all]
 * [--seed N] [--runs N] [--workers N] [--out results.jsonl]`: runs each scenario on each backend with real node processes, the
 * upstream oracle and the fault proxies, and prints one table. Exit code 1 when any run broke
 * safety, promoted below the thresholds, missed an expected failover or could not run.
 *
 * Profiles: short = the CI scenarios once each (all scenarios with `--scenario all`);
 * long = every scenario 30 times. Run i of a scenario uses seed (seed + i): a printed seed replays.
 *
 * `--store-ha` runs the store's own failover instead (chaos/store-ha/scenarios.ts): a 3-member etcd
 * cluster, a Redis primary + replica + 3 Sentinels and a PostgreSQL primary + synchronous standby,
 * each started by the harness for every run; every scenario by default (docs/reliability.md).
 *
 * `--workers N` runs N runs at once, each in a worker process of its own (chaos/worker.ts). Every run
 * has its own ports, namespace and oracle, so runs cannot see each other; but they share the CPU,
 * and a starved host stretches failover times (docs/reliability.md): runs of scenarios judged
 * against the failover bound (`bounded`) therefore run alone, and the footer records the worker count. `--out FILE` appends every result to FILE (JSON lines) and skips the
 * runs already in it, so a long profile can be stopped and resumed with the same arguments;
 * `--report-only` prints the table of what the file holds so far without running anything.
 *
 * `--cpu-hog N` keeps N busy-loop processes running for the whole profile (chaos/cpu-hog.ts): the
 * starved host of docs/reliability.md. N = 4 × the cores is "4× oversubscription"; the footer says N.
 */
// `--hosts`: the multi-host bed on network namespaces, with arguments of its own (chaos/hosts/run.ts).
if (process.argv.includes("--hosts")) {
  const { main } = await import("./hosts/run.js");
  process.exit(await main(process.argv.slice(2).filter((a) => a !== "--hosts")));
}

const { values } = parseArgs({
  options: {
    profile: { type: "string", default: "short" },
    backend: { type: "string" },
    scenario: { type: "string" },
    seed: { type: "string" },
    runs: { type: "string" },
    workers: { type: "string", default: "1" },
    out: { type: "string" },
    "report-only": { type: "boolean", default: false },
    "store-ha": { type: "boolean", default: false },
    "cpu-hog": { type: "string", default: "0" },
  },
});

function fail(message: string): never {
  process.stderr.write(`chaos: ${message}\n`);
  process.exit(2);
}

const profile = values.profile;
if (profile !== "short" && profile !== "long") fail("--profile must be short or long");
// --store-ha: the replicated stores the harness starts itself (chaos/store-ha), and their scenarios.
const storeHa = values["store-ha"];
const SCENARIOS = storeHa ? STORE_HA_SCENARIOS : STORE_SCENARIOS;
const ALL_BACKENDS: Record<string, Backend> = { ...BACKENDS, ...STORE_HA_BACKENDS };
const backendList = values.backend ?? (storeHa ? Object.keys(STORE_HA_BACKENDS).join(",") : "sqlite,postgres,mysql,redis,etcd");
const backends = backendList.split(",").map((b) => ALL_BACKENDS[b.trim()] ?? fail(`unknown backend ${b}`));
const names =
  values.scenario === "all" || (!values.scenario && profile === "long")
    ? SCENARIOS.map((s) => s.name)
    : (values.scenario?.split(",") ?? (storeHa ? SCENARIOS.map((s) => s.name) : CI_SCENARIOS));
const scenarios: Scenario[] = names.map(
  (n) => SCENARIOS.find((s) => s.name === n.trim()) ?? fail(`unknown scenario ${n}; known: ${SCENARIOS.map((s) => s.name).join(", ")}`),
);
const runs = values.runs ? Number(values.runs) : profile === "long" ? 30 : 1;
const seed = values.seed ? Number(values.seed) : Math.floor(Math.random() * 1_000_000);
const workers = Number(values.workers);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) fail("--runs and --seed must be integers");
if (!Number.isInteger(workers) || workers < 1) fail("--workers must be a positive integer");
const hogs = Number(values["cpu-hog"]);
if (!Number.isInteger(hogs) || hogs < 0) fail("--cpu-hog must be a non-negative integer");
if (!existsSync(CLI)) fail(`${CLI} is missing; run \`npm run build\` first (npm run chaos does)`);

/** Installs Debian's faketime when a clock-jump scenario needs it and it is missing. */
function ensureFaketime(): string | null {
  if (existsSync(FAKETIME_LIB)) return null;
  const r = spawnSync("sh", ["-c", "apt-get install -y -qq faketime || (apt-get update -qq && apt-get install -y -qq faketime)"], {
    stdio: "ignore",
  });
  return r.status === 0 && existsSync(FAKETIME_LIB) ? null : "libfaketime is not installed (apt-get install faketime)";
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const workerProcesses = new Set<ChildProcess>();
killClustersOnExit(() => {
  hog?.stop();
  for (const w of workerProcesses) w.kill("SIGTERM");
});
const faketimeMissing = scenarios.some((s) => s.faketime) ? ensureFaketime() : null;
const hog = hogs > 0 ? startCpuHog(hogs) : null;
const started = performance.now();
/**
 * The SDK code a run exercised (kept with every result): the last commit that changed src/, marked
 * when src/ differs from it. Harness and docs commits do not change it, so a profile resumed after
 * them still counts as one revision.
 */
const revision = (() => {
  const head = spawnSync("git", ["log", "-1", "--format=%h", "--", "src"], { encoding: "utf8" }).stdout.trim() || "unknown";
  const dirty = spawnSync("git", ["status", "--porcelain", "--untracked-files=no", "src"], { encoding: "utf8" }).stdout.trim() !== "";
  return dirty ? `${head}+changes` : head;
})();
log(
  `chaos: profile ${profile}, ${runs} run(s) per cell, seed ${seed}, ${workers} worker(s), ${cpus().length} cores, node ${process.version}${hogs ? `, cpu hog ${hogs}` : ""}`,
);
log(
  `chaos: replay with: npm run chaos -- --profile ${profile} ${storeHa ? "--store-ha " : ""}--backend ${backendList} --scenario ${names.join(",")} --seed ${seed}${values.runs ? ` --runs ${runs}` : ""}${hogs ? ` --cpu-hog ${hogs}` : ""}`,
);

const jobs: Job[] = [];
const cells: Cell[] = [];
for (const backend of backends) {
  for (const scenario of scenarios) {
    const na = scenario.notApplicable?.(backend) ?? (scenario.faketime ? faketimeMissing : null);
    if (storeHa && na) continue; // each replicated store has scenarios of its own: no n/a rows
    cells.push({ scenario, backend: backend.name, runs: [], notApplicable: na });
    if (!na) for (let i = 0; i < runs; i++) jobs.push({ scenario: scenario.name, backend: backend.name, seed: seed + i });
  }
}
const cellOf = (r: RunResult) => cells.find((c) => c.scenario.name === r.scenario && c.backend === r.backend);
const jobKey = (j: { scenario: string; backend: string; seed: number }) => `${j.scenario}/${j.backend}/${j.seed}`;

// A results file makes a long profile resumable: runs already in it are not run again.
const done = new Set<string>();
if (values.out && existsSync(values.out)) {
  if (!values.seed) fail(`${values.out} exists: pass the --seed it was made with to resume it, or choose another --out`);
  const wanted = new Set(jobs.map(jobKey));
  for (const line of readFileSync(values.out, "utf8").split("\n")) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as RunResult;
    if (!wanted.has(jobKey(r)) || done.has(jobKey(r))) continue;
    done.add(jobKey(r));
    (cellOf(r)!.runs as RunResult[]).push(r);
  }
  log(`chaos: ${done.size} run(s) already in ${values.out}; ${jobs.length - done.size} to go`);
}
// --report-only prints the table of what FILE holds so far, running nothing.
const todo = values["report-only"] ? [] : jobs.filter((j) => !done.has(jobKey(j)));
if (values["report-only"] && !values.out) fail("--report-only needs --out FILE");

let finished = 0;
function record(run: RunResult, worker: string): void {
  const r = { ...run, revision };
  (cellOf(r)!.runs as RunResult[]).push(r);
  if (values.out) appendFileSync(values.out, `${JSON.stringify(r)}\n`);
  finished++;
  const verdict = r.error ? "ERROR" : r.violations || r.falsePromotions || r.missedFailover ? "FAIL" : "ok";
  const elapsed = performance.now() - started;
  const eta = Math.round(((elapsed / finished) * (todo.length - finished)) / 60_000);
  log(
    `chaos:${worker} [${finished}/${todo.length}, ~${eta} min left] ${r.scenario} ${r.backend} seed ${r.seed}: ${verdict}` +
      ` (failover ${r.failoverMs === null ? "-" : Math.round(r.failoverMs)} ms, overlaps ${r.report.overlaps}, ${r.phases}; ${r.dir})`,
  );
}

if (workers === 1) {
  for (const j of todo)
    record(
      await runOnce(
        SCENARIOS.find((s) => s.name === j.scenario)!,
        ALL_BACKENDS[j.backend]!,
        j.seed,
        log,
      ),
      "",
    );
} else {
  // Each worker takes the next run when it finishes one, so long and short scenarios even out. A run
  // judged against the failover bound runs alone: the bound is for a host with CPU to spare
  // (docs/reliability.md, findings), and a second cluster booting beside it would stretch it.
  const solo = (j: Job) => SCENARIOS.find((s) => s.name === j.scenario)!.bounded === true;
  const backendOrder = backends.map((b) => b.name);
  const queue = [...todo].sort(
    (x, y) => backendOrder.indexOf(x.backend) - backendOrder.indexOf(y.backend) || Number(solo(y)) - Number(solo(x)),
  );
  const idle: ((m: ToWorker) => void)[] = [];
  let running = 0;
  let soloRunning = false;
  const dispatch = () => {
    while (idle.length > 0 && queue.length > 0 && !soloRunning) {
      const job = queue[0]!;
      if (solo(job) && running > 0) return; // wait for the others to finish first
      queue.shift();
      running++;
      soloRunning = solo(job);
      idle.shift()!({ kind: "run", job });
    }
    if (queue.length === 0) for (const give of idle.splice(0)) give({ kind: "stop" });
  };
  await Promise.all(
    Array.from(
      { length: Math.min(workers, todo.length) },
      (_, w) =>
        new Promise<void>((resolve, reject) => {
          const child = fork(fileURLToPath(new URL("./worker.ts", import.meta.url)), {
            env: { ...process.env, MC_CHAOS_WORKER: String(w + 1) },
          });
          workerProcesses.add(child);
          const ready = () => {
            idle.push((m) => child.send(m));
            dispatch();
          };
          child.on("message", (m: FromWorker) => {
            if (m.kind === "result") {
              record(m.result, ` w${w + 1}`);
              running--;
              soloRunning = false;
            }
            ready();
          });
          child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`chaos worker ${w + 1} exited with ${code}`))));
        }),
    ),
  );
}

hog?.stop();
process.stdout.write(`\n${renderTable(cells)}\n\n`);
const revisions = new Map<string, number>();
for (const r of cells.flatMap((c) => c.runs)) revisions.set(r.revision ?? "unknown", (revisions.get(r.revision ?? "unknown") ?? 0) + 1);
process.stdout.write(
  `seed ${seed}; ${Math.round((performance.now() - started) / 1000)} s; ${workers} worker(s); ` +
    `code: ${[...revisions].map(([rev, n]) => `${rev} (${n} runs)`).join(", ")}; bound = failover_bound_ms from GET /v1/health\n`,
);
process.exit(cells.some(failed) ? 1 : 0);
