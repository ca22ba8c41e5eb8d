import type { Clock } from "../ports/clock.js";

/** How many clients' buckets a limiter keeps before it evicts; bounds its memory (~100 bytes each). */
const DEFAULT_MAX_CLIENTS = 10_000;

interface Bucket {
  tokens: number;
  /** Clock time of the last refill. */
  at: number;
}

/**
 * A token bucket per client (the remote address): each client may send `burst` requests at once,
 * then `ratePerSecond` on average. A request that finds its bucket empty is refused with the wait
 * until the next token, which the webapp sends as Retry-After.
 *
 * Memory stays bounded whatever the number of addresses: past `maxClients` buckets the limiter
 * drops the full ones (a full bucket is what a new client gets anyway, so nothing changes for
 * them) and then, if still too many, the least recently refilled ones. An evicted client that was
 * throttled gets a fresh burst: a flood of new addresses can buy the throttled client one burst,
 * which is the price of not letting those addresses grow the map without limit.
 */
export class ClientRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;

  constructor(
    /** Average requests per second allowed to one client (`webapp.client_rate_limit`); > 0. */
    readonly ratePerSecond: number,
    /** Requests one client may send at once after being idle (`webapp.client_rate_burst`); ≥ 1. */
    readonly burst: number,
    private readonly clock: Clock,
    private readonly maxClients = DEFAULT_MAX_CLIENTS,
  ) {
    if (!(ratePerSecond > 0) || !Number.isFinite(ratePerSecond))
      throw new RangeError(`rate limit: ratePerSecond must be > 0, got ${ratePerSecond}`);
    if (!Number.isInteger(burst) || burst < 1) throw new RangeError(`rate limit: burst must be a whole number ≥ 1, got ${burst}`);
    this.perMs = ratePerSecond / 1000;
  }

  /** Takes one token for `client`: returns 0 when the request may go on, else the milliseconds until it may. */
  take(client: string): number {
    const now = this.clock.now();
    let b = this.buckets.get(client);
    if (b === undefined) {
      if (this.buckets.size >= this.maxClients) this.evict(now);
      b = { tokens: this.burst, at: now };
      this.buckets.set(client, b);
    } else {
      this.refill(b, now);
      // Most recently seen last in the map's order, so eviction drops the longest-idle first.
      this.buckets.delete(client);
      this.buckets.set(client, b);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.perMs));
  }

  /** Clients with a bucket now (for tests and metrics). */
  get clients(): number {
    return this.buckets.size;
  }

  private refill(b: Bucket, now: number): void {
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.perMs);
    b.at = now;
  }

  /** Frees room down to half the limit, so the next eviction is `maxClients / 2` new clients away. */
  private evict(now: number): void {
    for (const [client, b] of this.buckets) {
      this.refill(b, now);
      if (b.tokens >= this.burst) this.buckets.delete(client);
    }
    const target = Math.floor(this.maxClients / 2);
    for (const client of this.buckets.keys()) {
      if (this.buckets.size <= target) break;
      this.buckets.delete(client);
    }
  }
}
