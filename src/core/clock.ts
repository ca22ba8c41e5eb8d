import { performance } from "node:perf_hooks";
import type { Clock } from "./ports/clock.js";

/** The process's monotonic clock (`performance.now()`), with real timers. */
export class SystemClock implements Clock {
  now(): number {
    return performance.now();
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}

/**
 * A clock that moves only when told to: `advance(ms)` wakes every sleeper whose time has come, in
 * order. For unit tests of the core algorithms; the memory store can share it as its "store clock".
 */
export class ManualClock implements Clock {
  private current = 0;
  private sleepers: { until: number; wake: () => void }[] = [];

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const onAbort = () => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper);
        resolve();
      };
      const sleeper = {
        until: this.current + Math.max(0, ms),
        wake: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      this.sleepers.push(sleeper);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Moves time forward in small steps, letting promise chains run between wake-ups. */
  async advance(ms: number, stepMs = 1): Promise<void> {
    const target = this.current + ms;
    while (this.current < target) {
      this.current = Math.min(target, this.current + stepMs);
      const due = this.sleepers.filter((s) => s.until <= this.current);
      this.sleepers = this.sleepers.filter((s) => s.until > this.current);
      for (const s of due) s.wake();
      await flushPromises();
    }
  }
}

/** Lets every already-settled promise callback run (a few macrotask turns). */
export async function flushPromises(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}
