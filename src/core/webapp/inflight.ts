/**
 * A webapp's bound on requests in flight per shard. Without it a slow or failing-over primary makes
 * every webapp queue requests without limit (memory, then timeouts for all); with it the request
 * past the limit is refused at once (1016 System overloaded) and the client backs off.
 */
export class InflightLimiter {
  private readonly counts = new Map<number, number>();

  constructor(
    /** The most requests one webapp forwards to one shard at once (`webapp.max_inflight_per_shard`). */
    readonly maxPerShard: number,
  ) {}

  /** Takes a slot for `shard`; returns the release function, or null when the shard is at its limit. */
  tryAcquire(shard: number): (() => void) | null {
    const n = this.counts.get(shard) ?? 0;
    if (n >= this.maxPerShard) return null;
    this.counts.set(shard, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.counts.get(shard) ?? 1) - 1;
      if (left === 0) this.counts.delete(shard);
      else this.counts.set(shard, left);
    };
  }

  /** Requests in flight to `shard` now. */
  inflight(shard: number): number {
    return this.counts.get(shard) ?? 0;
  }
}
