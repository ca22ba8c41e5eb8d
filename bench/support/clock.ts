/**
 * Time for the benchmarks. Every interval is measured on CLOCK_MONOTONIC (`process.hrtime`), which
 * all processes of one machine share, so a stamp taken in a node process (the example app's event
 * log) compares directly with one taken here. pino stamps its lines with the wall clock instead;
 * on one machine that clock is also shared, and `wallToMono` converts it.
 */

/** Milliseconds on CLOCK_MONOTONIC, the clock the example app stamps its event log with. */
export const monoNow = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Resolves after `ms` (0 for negative values). */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/**
 * Wall-clock ms minus monotonic ms, sampled a few times and taking the tightest pair, so that a
 * pino `time` (wall ms, 1 ms resolution) maps to the monotonic clock within about a millisecond.
 */
export function wallMinusMono(): number {
  let best = Number.POSITIVE_INFINITY;
  let offset = 0;
  for (let i = 0; i < 5; i++) {
    const a = monoNow();
    const w = Date.now();
    const b = monoNow();
    if (b - a < best) {
      best = b - a;
      // Date.now() truncates to the ms: its true value is on average 0.5 ms later.
      offset = w + 0.5 - (a + b) / 2;
    }
  }
  return offset;
}

/** Converts a pino wall-clock stamp to this machine's monotonic clock. */
export function wallToMono(wallMs: number, offset: number): number {
  return wallMs - offset;
}

/** Uniformly random milliseconds in [0, span): decorrelates a fault from the nodes' timer phases. */
export function randomDelay(span: number): number {
  return Math.random() * span;
}
