/**
 * Time as this process observes it. `now()` is monotonic: it never jumps with the wall clock, and
 * differences of it are the only durations the core computes locally. Nothing in the core compares
 * two machines' clocks; expiry that several nodes must agree on is judged by the store's clock.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale with an arbitrary origin. Never decreases. */
  now(): number;
  /**
   * Resolves after `ms` milliseconds of this clock, or early (without rejecting) when `signal`
   * aborts. A non-positive `ms` resolves on the next turn.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}
