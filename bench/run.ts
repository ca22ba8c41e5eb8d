/**
 * `npm run bench [-- --profile full|smoke] [--only 1,3,...] [--backend mysql,...] [--out FILE]`: measures issue 5's items
 * on this machine in one run and writes docs/benchmarks.md (machine, date, exact command, median and
 * spread of every figure, the target beside it).
 *
 * - `--profile full` (default): every backend, ≥ 20 failovers per backend and setting; ~25 minutes.
 * - `--profile smoke`: every item once on the backends that need no set-up, in about a minute, so CI
 *   can run the script and it cannot rot. Its figures are not measurements.
 * - `--only`: a subset of the items (numbers or names). The report then goes to the run's temporary
 *   directory unless `--out` says otherwise, so a partial run never overwrites the full report.
 * - `--backend`: the items' stores narrowed to these (the in-memory store of item 5 stays); a
 *   partial run too.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { forwardingItem } from "./forwarding.js";
import { crashFailoverItem } from "./crash-failover.js";
import { peersItem } from "./peers.js";
import { propagationItem } from "./route-propagation.js";
import { storeLoadItem } from "./store-load.js";
import { monoNow } from "./support/clock.js";
import { runClusterItems } from "./support/cluster-session.js";
import { BACKENDS } from "./support/stores.js";
import { onlyBackends, PROFILES, type BenchProfile } from "./support/profiles.js";
import { loadAverage, machine, table, verdict, type ItemReport } from "./support/report.js";

const ITEM_NAMES: Record<string, number> = {
  failover: 1,
  switchover: 2,
  forwarding: 3,
  propagation: 4,
  "route-propagation": 4,
  "store-load": 5,
  peers: 6,
  crash: 7,
  "crash-failover": 7,
};

interface Options {
  profile: BenchProfile;
  items: Set<number>;
  out: string | null;
  keep: boolean;
}

function parseArgs(argv: string[]): Options {
  let profile: BenchProfile = PROFILES.full;
  let items = new Set([1, 2, 3, 4, 5, 6, 7]);
  let only = false;
  let out: string | null = null;
  let keep = false;
  let backends: Set<string> | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench: ${a} needs a value`);
      return v;
    };
    if (a === "--profile") {
      const name = value();
      if (name !== "full" && name !== "smoke") throw new Error("bench: --profile must be full or smoke");
      profile = PROFILES[name];
    } else if (a === "--only") {
      only = true;
      items = new Set(
        value()
          .split(",")
          .map((x) => {
            const n = ITEM_NAMES[x] ?? Number(x);
            if (!Number.isInteger(n) || n < 1 || n > 7)
              throw new Error(`bench: unknown item ${x} (1-7 or ${Object.keys(ITEM_NAMES).join(", ")})`);
            return n;
          }),
      );
    } else if (a === "--backend") {
      only = true;
      backends = new Set(value().split(","));
      const unknown = [...backends].filter((b) => !(BACKENDS as readonly string[]).includes(b));
      if (unknown.length > 0) throw new Error(`bench: unknown backend ${unknown.join(", ")} (${BACKENDS.join(", ")})`);
    } else if (a === "--out") {
      out = value();
    } else if (a === "--keep") {
      keep = true; // keep the temporary directory (cluster logs, profiles) for inspection
    } else {
      throw new Error(`bench: unknown option ${a}`);
    }
  }
  if (backends) profile = onlyBackends(profile, backends);
  return { profile, items, out: out ?? (only ? null : "docs/benchmarks.md"), keep };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const o = parseArgs(argv);
  const dir = mkdtempSync(join(tmpdir(), "mc-bench-"));
  const t0 = monoNow();
  const say = (m: string) => process.stderr.write(`[bench ${((monoNow() - t0) / 1000).toFixed(1).padStart(6)} s] ${m}\n`);
  const started = new Date();
  const loadBefore = loadAverage();
  const samples: number[] = [];
  const sampler = setInterval(() => samples.push(loadavg()[0]!), 5000);
  sampler.unref();
  say(`profile ${o.profile.name}, items ${[...o.items].join(",")}, load average ${loadBefore}; work dir ${dir}`);

  const reports: ItemReport[] = [];
  const failures: string[] = [];
  const attempt = async (what: string, fn: () => Promise<ItemReport | ItemReport[]>) => {
    try {
      const r = await fn();
      reports.push(...(Array.isArray(r) ? r : [r]));
    } catch (error) {
      failures.push(`${what}: ${String((error as Error).stack ?? error)}`);
      say(`${what} failed: ${String(error)}`);
    }
  };
  if (o.items.has(1) || o.items.has(2)) await attempt("items 1-2", () => runClusterItems(o.profile, o.items, dir, say));
  if (o.items.has(3)) await attempt("item 3", () => forwardingItem(o.profile, dir, say));
  if (o.items.has(4)) await attempt("item 4", () => propagationItem(o.profile, dir, say));
  if (o.items.has(5)) await attempt("item 5", () => storeLoadItem(o.profile, dir, say));
  if (o.items.has(6)) await attempt("item 6", () => peersItem(o.profile, dir, say));
  if (o.items.has(7)) await attempt("item 7", () => crashFailoverItem(o.profile, dir, say));
  clearInterval(sampler);

  const elapsedS = (monoNow() - t0) / 1000;
  const doc = render(o, argv, started, elapsedS, loadBefore, samples, reports, failures);
  const out = o.out ? resolve(o.out) : join(dir, "benchmarks.md");
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, doc);
  say(`wrote ${out} in ${elapsedS.toFixed(0)} s`);
  if (!o.keep && o.out) rmSync(dir, { recursive: true, force: true });
  if (failures.length > 0) process.exitCode = 1;
}

/** The checkout measured: its commit, and whether it had uncommitted changes. */
function revision(): string {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { encoding: "utf8" }).trim() !== "";
    return dirty ? `${head} with uncommitted changes` : head;
  } catch {
    return "unknown (not a git checkout)";
  }
}

function render(
  o: Options,
  argv: string[],
  started: Date,
  elapsedS: number,
  loadBefore: string,
  samples: number[],
  reports: ItemReport[],
  failures: string[],
): string {
  const m = machine();
  const command = `npm run bench${argv.length ? ` -- ${argv.join(" ")}` : ""}`;
  const loadRange = samples.length ? `${Math.min(...samples).toFixed(2)}–${Math.max(...samples).toFixed(2)}` : "–";
  // Others' load is what makes a run preliminary: judge it before the run starts, since during the
  // run the benchmark's own processes (up to six nodes plus a load generator) raise the average.
  const preliminary = o.profile.name === "smoke" || Number(loadBefore.split(",")[0]) >= 2.5;
  const sorted = [...reports].sort((a, b) => a.id - b.id);
  return [
    "# Benchmarks",
    "",
    "Written by `npm run bench` (bench/run.ts) — do not edit by hand; run it again.",
    "",
    ...(preliminary
      ? [
          `> **Preliminary.** ${o.profile.name === "smoke" ? "This is the *smoke* profile (a handful of runs per item, to keep the script working), not a measurement. " : ""}` +
            `The machine was shared while this ran (1-minute load average ${loadBefore.split(",")[0]} at the start, ${loadRange} during the run on 2 cores): ` +
            "absolute times are inflated and noisy; the ratios measured in the same run are the headline. Re-run the full profile on an idle machine.",
          "",
        ]
      : []),
    table(
      ["", ""],
      [
        ["date", started.toISOString()],
        ["command", `\`${command}\``],
        ["revision", revision()],
        ["profile", o.profile.name],
        ["duration", `${Math.round(elapsedS)} s`],
        ["load average (1, 5, 15 min) at start", loadBefore],
        ["1-min load average during the run (sampled every 5 s; includes the benchmark's own processes)", loadRange],
        ...Object.entries(m).map(([k, v]) => [k, v]),
      ],
    ),
    "",
    "## Summary: every figure next to its target",
    "",
    table(
      ["item", "figure", "measured", "target", ""],
      sorted.flatMap((r) => r.headlines.map((h) => [h.item, h.figure, h.measured, h.target, verdict(h.met)])),
    ),
    "",
    ...sorted.flatMap((r) => [`## ${r.id}. ${r.title}`, "", r.body, ""]),
    ...(failures.length ? ["## Items that did not run to the end", "", ...failures.map((f) => `\`\`\`\n${f}\n\`\`\``), ""] : []),
  ].join("\n");
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${String((error as Error).stack ?? error)}\n`);
  process.exit(1);
});
