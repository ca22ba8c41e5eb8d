/**
 * Order statistics for the report: every figure is shown as a median with its spread, because one
 * run on a shared 2-core machine proves little on its own.
 */

/** The distribution of one sample. */
export interface Summary {
  readonly n: number;
  readonly min: number;
  readonly p10: number;
  readonly median: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/**
 * The q-quantile of an ascending sample by linear interpolation between closest ranks (R type 7,
 * numpy's default), so a p99 of 20 runs sits just under the maximum rather than being it.
 */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (pos - lo);
}

/** Summarizes a sample; null when it is empty (a measurement that produced nothing). */
export function summarize(xs: readonly number[]): Summary | null {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  return {
    n: s.length,
    min: s[0]!,
    p10: quantile(s, 0.1),
    median: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    max: s[s.length - 1]!,
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

/** The median of a sample (NaN when empty). */
export function median(xs: readonly number[]): number {
  return summarize(xs)?.median ?? Number.NaN;
}

/** Formats milliseconds for a table: whole ms from 100 ms up, one decimal below, µs below 1 ms. */
export function ms(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a >= 100) return `${Math.round(x)} ms`;
  if (a >= 1) return `${x.toFixed(1)} ms`;
  return `${Math.round(x * 1000)} µs`;
}

/** "median (p10–p90, max)" in milliseconds: the form most tables of the report use. */
export function spreadMs(s: Summary | null): string {
  if (!s) return "–";
  return `${ms(s.median)} (${ms(s.p10)}–${ms(s.p90)}, max ${ms(s.max)})`;
}

/** A plain number with a fixed number of decimals, or "–". */
export function num(x: number | undefined, decimals = 0): string {
  return x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(decimals);
}
