import type { Clock } from "../../src/core/ports/clock.js";

/**
 * A clock whose sleeps never end by themselves, only when their signal aborts. Code waiting on it
 * moves on only when something wakes it, so a test that something wakes it cannot pass on a timer:
 * it fails on its own deadline instead of measuring a timing.
 */
export class SleeplessClock implements Clock {
  now(): number {
    return performance.now();
  }

  sleep(_ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      signal?.addEventListener("abort", () => resolve(), { once: true });
    });
  }
}
