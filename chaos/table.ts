import type { RunResult } from "./run-once.js";
import type { Scenario } from "./scenarios.js";

/** One cell of the matrix: every run of one scenario on one backend, or why it does not apply. */
export interface Cell {
  /** The scenario (of chaos/scenarios.ts or the multi-host bed's chaos/hosts/scenarios.ts). */
  readonly scenario: Pick<Scenario, "name" | "bounded" | "hazard">;
  readonly backend: string;
  readonly runs: RunResult[];
  readonly notApplicable: string | null;
}

/** The p-th percentile (0–100) of `xs`, nearest-rank; null when empty. */
export function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** True when the cell has a safety violation, a false promotion, a missed failover or a broken run. */
export function failed(c: Cell): boolean {
  return c.runs.some((r) => r.violations > 0 || r.falsePromotions > 0 || r.missedFailover || r.error !== null);
}

const ms = (v: number | null) => (v === null ? "-" : String(Math.round(v)));

/** The one table `npm run chaos` prints: scenario × backend. */
export function renderTable(cells: Cell[]): string {
  const head = [
    "SCENARIO",
    "BACKEND",
    "RUNS",
    "FAULTS",
    "OVERLAPS n/total/max ms",
    "STALE acc/rej",
    "EPOCH REGR",
    "OUTSIDE",
    "FAILOVERS",
    "FAILOVER ms p50/p99/max",
    "UNSERVED ms max",
    "BOUND ms",
    "OVER BOUND",
    "FALSE PROMO",
    "VERDICT",
  ];
  const rows = cells.map((c) => {
    if (c.notApplicable) return [c.scenario.name, c.backend, "0", "", "", "", "", "", "", "", "", "", "", "", `n/a: ${c.notApplicable}`];
    const rs = c.runs;
    if (rs.length === 0) return [c.scenario.name, c.backend, "0", "", "", "", "", "", "", "", "", "", "", "", "not run (yet)"];
    const sum = (f: (r: RunResult) => number) => rs.reduce((a, r) => a + f(r), 0);
    const times = rs.flatMap((r) => (r.failoverMs === null ? [] : [r.failoverMs]));
    const bound = Math.max(0, ...rs.map((r) => r.boundMs));
    const over = c.scenario.bounded ? rs.filter((r) => r.failoverMs !== null && r.failoverMs > r.boundMs).length : null;
    const overlapMax = Math.max(0, ...rs.map((r) => r.report.overlapMaxMs));
    const verdict = rs.some((r) => r.error)
      ? `ERROR: ${rs.find((r) => r.error)!.error!.slice(0, 60)}`
      : failed(c)
        ? "FAIL"
        : c.scenario.hazard && sum((r) => r.report.overlaps) > 0
          ? "hazard (documented)"
          : over
            ? "ok (slow)"
            : "ok";
    return [
      c.scenario.name,
      c.backend,
      String(rs.length),
      String(sum((r) => r.faults)),
      `${sum((r) => r.report.overlaps)}/${ms(sum((r) => r.report.overlapTotalMs))}/${ms(overlapMax)}`,
      `${sum((r) => r.report.staleAccepted)}/${sum((r) => r.report.staleRejected)}`,
      String(sum((r) => r.report.epochRegressions)),
      String(sum((r) => r.report.outsideSession)),
      String(sum((r) => r.promotions)),
      times.length ? `${ms(percentile(times, 50))}/${ms(percentile(times, 99))}/${ms(Math.max(...times))}` : "-",
      ms(rs.some((r) => r.unservedMs !== undefined) ? Math.max(...rs.map((r) => r.unservedMs ?? 0)) : null),
      bound ? String(bound) : "-",
      over === null ? "-" : String(over),
      String(sum((r) => r.falsePromotions)),
      verdict,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}
