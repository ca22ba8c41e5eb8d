import type { Clock } from "./ports/clock.js";
import type { Lease, LeaseStore } from "./ports/leases.js";
import type { Logger } from "./ports/logger.js";

const DEADLINE_PASSED = "confirmation deadline passed without a successful renewal";

/** The timings a lease holder keeps. See `Timing` in timing.ts for why each has its value. */
export interface LeaseTiming {
  readonly leaseTtlMs: number;
  readonly renewIntervalMs: number;
  readonly safetyMarginMs: number;
}

/**
 * Holds one acquired lease: renews it every `renewIntervalMs` and keeps a *local* deadline,
 * `send time of the last successful renewal + ttl − margin`, on this process's monotonic clock.
 *
 * `held` is true only before that deadline. The store stamped the renewal no earlier than it was
 * sent, so the store's expiry is at least `margin` later than our deadline: whatever the store or
 * network does (a renewal stuck in a blackholed connection, a paused store), this process stops
 * treating the lease as its own before any other process can be given it (safety S4). A renewal
 * the store refuses ends the tenure at once. When the tenure ends, for whatever reason, `lost`
 * resolves (once) with the reason; a holder is never revived — acquire again for a new tenure.
 */
export class LeaseHolder {
  private deadline: number;
  /** The last successful grant's send time + its TTL: the store expires the lease no earlier. */
  private lapseAt: number;
  private ended: string | null = null;
  private releaseSent = false;
  private abandoned = false;
  private readonly stop = new AbortController();
  /** Aborted when a renewal moves the deadline earlier (a shorter TTL), to wake the deadline loop. */
  private deadlineMoved = new AbortController();
  private resolveLost!: (reason: string) => void;
  /** Resolves once with the reason when this tenure ends (including after `release()`). */
  readonly lost: Promise<string>;

  /** Starts holding `lease`, granted for `grant` to a request sent at `sentAt` (this clock); renewals extend it. */
  private constructor(
    readonly lease: Lease,
    sentAt: number,
    grant: LeaseTiming,
    private readonly leases: LeaseStore,
    private readonly clock: Clock,
    private readonly timing: LeaseTiming,
    private readonly log: Logger,
  ) {
    this.deadline = sentAt + grant.leaseTtlMs - grant.safetyMarginMs;
    this.lapseAt = sentAt + grant.leaseTtlMs;
    this.lost = new Promise((resolve) => (this.resolveLost = resolve));
    void this.renewLoop();
    void this.deadlineLoop();
  }

  /**
   * Acquires `name` for `holder` once. Returns a running holder, or the lost race's answer.
   * Throws `StoreUnavailableError` as `LeaseStore.acquire` does.
   */
  static async acquire(
    leases: LeaseStore,
    clock: Clock,
    name: string,
    holder: string,
    timing: LeaseTiming,
    log: Logger,
  ): Promise<LeaseHolder | { holder: string | null; expiresInMs: number }> {
    const sentAt = clock.now();
    // One read: the store is asked for exactly this TTL, and the deadline is computed with it.
    const grant: LeaseTiming = {
      leaseTtlMs: timing.leaseTtlMs,
      renewIntervalMs: timing.renewIntervalMs,
      safetyMarginMs: timing.safetyMarginMs,
    };
    const r = await leases.acquire(name, holder, grant.leaseTtlMs);
    if (!r.acquired) return { holder: r.holder, expiresInMs: r.expiresInMs };
    return new LeaseHolder(r.lease, sentAt, grant, leases, clock, timing, log);
  }

  /**
   * True while this process may act on the lease: before the local deadline and not ended. Once
   * false it stays false: reaching the deadline ends the tenure right here, not only when the
   * deadline timer gets to run, so a renewal answer that arrives in between cannot revive it.
   */
  get held(): boolean {
    if (this.ended !== null) return false;
    if (this.clock.now() < this.deadline) return true;
    this.end(DEADLINE_PASSED);
    return false;
  }

  /** Why the tenure ended, or null while it lasts. */
  get endReason(): string | null {
    return this.held ? null : this.ended;
  }

  /**
   * True when the tenure ended because its local deadline passed with no successful renewal — the
   * store could not be reached in time — rather than by a refusal, a release or an abandon. Only
   * such a tenure may go on serving on failsafe promises (src/core/coreapp/failsafe-guard.ts).
   */
  get lapsed(): boolean {
    return !this.held && this.ended === DEADLINE_PASSED;
  }

  /** Milliseconds left before the local deadline (≤ 0 once passed). */
  get remainingMs(): number {
    return this.ended === null ? this.deadline - this.clock.now() : 0;
  }

  /**
   * Milliseconds left before the store may expire the lease and give it to another holder: the last
   * successful grant's send time plus its TTL, so at least that grant's safety margin after the
   * local deadline (whatever the live settings say now). 0 once the release was sent.
   */
  get lapseRemainingMs(): number {
    return this.releaseSent ? 0 : Math.max(0, this.lapseAt - this.clock.now());
  }

  /**
   * Ends the tenure and gives the lease back so a successor need not wait for expiry — also after
   * the local deadline passed: the store may still count the lease as ours, and the release only
   * matches this holder at this epoch. Once per holder; `abandon` instead never tells the store.
   */
  async release(): Promise<void> {
    if (this.releaseSent || this.abandoned) return;
    this.releaseSent = true;
    this.end("released");
    try {
      await this.leases.release(this.lease);
    } catch (error) {
      // The lease will lapse by itself at its store expiry; nothing else to do.
      this.log.warn({ lease: this.lease.name, err: String(error) }, "release failed; the lease will expire instead");
    }
  }

  /** Ends the tenure without telling the store (the lease lapses at its expiry). */
  abandon(reason = "abandoned"): void {
    this.abandoned = true;
    this.end(reason);
  }

  private end(reason: string): void {
    if (this.ended !== null) return;
    this.ended = reason;
    this.stop.abort();
    this.resolveLost(reason);
  }

  /**
   * The timings are read afresh for every renewal, so a change of the cluster's settings reaches a
   * lease at its next renewal. The TTL the store is asked for and the one the deadline is computed
   * with are the same read, and the deadline is *set*, not maximised: a renewal with a shorter TTL
   * also shortens the store's expiry, so an earlier, longer deadline must not outlive it. It does so
   * from the moment it is sent, not only once answered: a renewal the store applied but whose answer
   * was lost (a timeout) has shortened the expiry all the same, so the deadline is pulled in to the
   * new TTL's before the send, and a failed renewal leaves it there.
   */
  /*
   * Renewals are paced from their *send* times: the next one leaves `renewIntervalMs` after the
   * previous one was sent (at once if that one took longer), not an interval after its answer. The
   * deadline counts from the send time of the last success, so a store round trip r keeps the lease
   * while r < min(ttl − margin − interval, (ttl − margin) / 2). Paced from answers, two slow round
   * trips back to back had to fit: r1 + interval + r2 < ttl − margin, and a store link of
   * 300 ± 100 ms each way (the multi-host bed's store-delay scenario) lost leases at a 2.5 s TTL
   * that it can keep (docs/reliability.md, "Sizing for a slow store link"). Safety is unchanged: a
   * renewal still counts from when it was sent, whenever its answer comes.
   */
  private async renewLoop(): Promise<void> {
    let wait = this.timing.renewIntervalMs;
    while (this.ended === null) {
      await this.clock.sleep(wait, this.stop.signal);
      if (this.ended !== null) return;
      const { leaseTtlMs, renewIntervalMs, safetyMarginMs } = this.timing;
      const sentAt = this.clock.now();
      this.pullIn(sentAt + leaseTtlMs - safetyMarginMs, sentAt + leaseTtlMs);
      try {
        const ok = await this.leases.renew(this.lease, leaseTtlMs);
        if (!this.held) return; // the deadline passed while the renewal was in flight: too late
        if (!ok) return this.end("renewal refused: the lease expired or has another holder");
        const deadline = sentAt + leaseTtlMs - safetyMarginMs;
        const earlier = deadline < this.deadline;
        this.deadline = deadline;
        this.lapseAt = sentAt + leaseTtlMs;
        if (earlier) this.deadlineMoved.abort(); // the deadline loop sleeps until the old one
        wait = Math.max(0, sentAt + renewIntervalMs - this.clock.now());
      } catch (error) {
        // Unknown outcome: keep the deadline (the earlier of the last success's and this one's) and
        // try again soon; the deadline loop ends the tenure if no renewal succeeds in time.
        this.log.warn({ lease: this.lease.name, err: String(error) }, "lease renewal failed; retrying");
        wait = Math.max(10, Math.floor(renewIntervalMs / 4));
      }
    }
  }

  /** Moves the deadline and the lapse earlier, never later, to what a renewal sent now would give. */
  private pullIn(deadline: number, lapseAt: number): void {
    this.lapseAt = Math.min(this.lapseAt, lapseAt);
    if (deadline >= this.deadline) return;
    this.deadline = deadline;
    this.deadlineMoved.abort(); // the deadline loop sleeps until the old one
  }

  private async deadlineLoop(): Promise<void> {
    while (this.ended === null) {
      const left = this.deadline - this.clock.now();
      if (left <= 0) return this.end(DEADLINE_PASSED);
      this.deadlineMoved = new AbortController();
      await this.clock.sleep(left, AbortSignal.any([this.stop.signal, this.deadlineMoved.signal]));
    }
  }
}
