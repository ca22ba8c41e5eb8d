import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { BACKENDS, type Backend } from "./backends.js";
import { CLI, FAKETIME_LIB } from "./cluster.js";
import { runOnce } from "./run-once.js";
import { CI_SCENARIOS, SCENARIOS, type Scenario } from "./scenarios.js";
import { failed, renderTable, type Cell } from "./table.js";

/**
 * `npm run chaos -- [--profile short|long] [--backend sqlite,postgres,...] [--scenario a,b|all]
 * [--seed N] [--runs N]`: runs each scenario on each backend with real node processes, the
 * upstream oracle and the fault proxies, and prints one table. Exit code 1 when any run broke
 * safety, promoted below the thresholds, missed an expected failover or could not run.
 *
 * Profiles: short = the CI scenarios once each (all scenarios with `--scenario all`);
 * long = every scenario 30 times. Run i of a scenario uses seed (seed + i): a printed seed replays.
 */
const { values } = parseArgs({
  options: {
    profile: { type: "string", default: "short" },
    backend: { type: "string", default: "sqlite,postgres,mysql,redis,etcd" },
    scenario: { type: "string" },
    seed: { type: "string" },
    runs: { type: "string" },
  },
});

function fail(message: string): never {
  process.stderr.write(`chaos: ${message}\n`);
  process.exit(2);
}

const profile = values.profile;
if (profile !== "short" && profile !== "long") fail("--profile must be short or long");
const backends = values.backend.split(",").map((b) => BACKENDS[b.trim() as Backend["name"]] ?? fail(`unknown backend ${b}`));
const names = values.scenario === "all" || (!values.scenario && profile === "long") ? SCENARIOS.map((s) => s.name) : (values.scenario?.split(",") ?? CI_SCENARIOS);
const scenarios: Scenario[] = names.map((n) => SCENARIOS.find((s) => s.name === n.trim()) ?? fail(`unknown scenario ${n}; known: ${SCENARIOS.map((s) => s.name).join(", ")}`));
const runs = values.runs ? Number(values.runs) : profile === "long" ? 30 : 1;
const seed = values.seed ? Number(values.seed) : Math.floor(Math.random() * 1_000_000);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) fail("--runs and --seed must be integers");
if (!existsSync(CLI)) fail(`${CLI} is missing; run \`npm run build\` first (npm run chaos does)`);

/** Installs Debian's faketime when a clock-jump scenario needs it and it is missing. */
function ensureFaketime(): string | null {
  if (existsSync(FAKETIME_LIB)) return null;
  const r = spawnSync("sh", ["-c", "apt-get install -y -qq faketime || (apt-get update -qq && apt-get install -y -qq faketime)"], { stdio: "ignore" });
  return r.status === 0 && existsSync(FAKETIME_LIB) ? null : "libfaketime is not installed (apt-get install faketime)";
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const faketimeMissing = scenarios.some((s) => s.faketime) ? ensureFaketime() : null;
const started = performance.now();
log(`chaos: profile ${profile}, ${runs} run(s) per cell, seed ${seed}, ${cpus().length} cores, node ${process.version}`);
log(`chaos: replay with: npm run chaos -- --profile ${profile} --backend ${values.backend} --scenario ${names.join(",")} --seed ${seed}${values.runs ? ` --runs ${runs}` : ""}`);

const cells: Cell[] = [];
for (const backend of backends) {
  for (const scenario of scenarios) {
    const na = scenario.notApplicable?.(backend) ?? (scenario.faketime ? faketimeMissing : null);
    const cell: Cell = { scenario, backend: backend.name, runs: [], notApplicable: na };
    cells.push(cell);
    if (na) continue;
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      const r = await runOnce(scenario, backend, seed + i, log);
      cell.runs.push(r);
      const verdict = r.error ? "ERROR" : r.violations || r.falsePromotions || r.missedFailover ? "FAIL" : "ok";
      log(`chaos: ${scenario.name} ${backend.name} run ${i + 1}/${runs} seed ${seed + i}: ${verdict}` +
        ` (failover ${r.failoverMs === null ? "-" : Math.round(r.failoverMs)} ms, overlaps ${r.report.overlaps}, ${Math.round(performance.now() - t)} ms: ${r.phases}; ${r.dir})`);
    }
  }
}

process.stdout.write(`\n${renderTable(cells)}\n\n`);
process.stdout.write(`seed ${seed}; ${Math.round((performance.now() - started) / 1000)} s; bound = failover_bound_ms from GET /v1/health\n`);
process.exit(cells.some(failed) ? 1 : 0);
