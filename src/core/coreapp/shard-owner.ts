import { LeaseHolder, type LeaseTiming } from "../lease-holder.js";
import type { Clock } from "../ports/clock.js";
import { shardLeaseName, type LeaseStore } from "../ports/leases.js";
import type { Logger } from "../ports/logger.js";
import type { ShardAssignment } from "../ports/shard-map.js";
import type { EndedTenure } from "../ports/transport.js";
import type { CoreappApplication } from "./application.js";
import type { FailsafeGuard } from "./failsafe-guard.js";

/** What a coreapp is doing, as it reports it in heartbeats, liveness records and health. */
export interface OwnerState {
  /** The shard it owns or is taking, or null for a standby. */
  readonly shard: number | null;
  /** The epoch of that ownership, or null. */
  readonly epoch: number | null;
  /** True only while it may answer requests for `shard` at `epoch`. */
  readonly serving: boolean;
  /** The last assignment it gave up and will never serve again (see `EndedTenure`), or null. */
  readonly ended: EndedTenure | null;
  /**
   * True while it serves without its shard lease, on every master's failsafe promise (the store is
   * away; docs/safety.md, "Failsafe"). Absent is false.
   */
  readonly failsafe?: boolean;
  /** Milliseconds this tenure has served on failsafe promises so far, all episodes (absent: none). */
  readonly failsafeServedMs?: number;
}

/** Promotion and demotion as they happen, for logs, the dev view, tests and the watchdog. */
export type OwnerEvent =
  | {
      /**
       * The shard map names this coreapp the shard's owner at `epoch`: it is about to take the
       * shard's lease. Emitted synchronously, before any attempt, so that a watchdog's supervisor
       * hears that this process may soon act as a primary before it can (src/watchdog).
       */
      readonly type: "named";
      /** The shard it is named for. */
      readonly shard: number;
      /** The epoch of the assignment that names it. */
      readonly epoch: number;
    }
  | {
      /**
       * It took the shard's lease at `epoch` and is about to call `onPromote`: its tenure is open
       * (`tenureRemainingMs` says until when). Emitted synchronously, before `onPromote`, so that a
       * watchdog's supervisor learns the lease's deadline before the application can open anything:
       * a grant that came late leaves less of the lease than the pet deadline assumes (src/watchdog).
       */
      readonly type: "acquired";
      /** The shard whose lease it holds. */
      readonly shard: number;
      /** The epoch of the assignment. */
      readonly epoch: number;
    }
  | {
      /** It became the shard's serving primary. */
      readonly type: "promoted";
      /** The shard it now serves. */
      readonly shard: number;
      /** The epoch it serves it at. */
      readonly epoch: number;
    }
  | {
      /** It stopped serving the shard (`onDemote` has returned or thrown). */
      readonly type: "demoted";
      /** The shard it stopped serving. */
      readonly shard: number;
      /** The epoch it served it at. */
      readonly epoch: number;
      /** Why, e.g. "shutting down" or a lost lease. */
      readonly reason: string;
    };

export interface ShardOwnerTiming extends LeaseTiming {
  readonly handoverPollMs: number;
  /** How long a demotion waits for in-flight requests before calling `onDemote` anyway. */
  readonly drainTimeoutMs: number;
}

interface Tenure {
  readonly shard: number;
  readonly epoch: number;
  /** The lease holder; replaced (same holder name, same assignment) when failsafe ends with the store back. */
  holder: LeaseHolder;
  serving: boolean;
  /** Since when it serves on failsafe promises (this clock), or null. */
  failsafeSince: number | null;
  /** Set when the store showed the lease in another's hands: failsafe is over at once. */
  failsafeRefused: string | null;
  /** Milliseconds served on promises in earlier episodes of this tenure. */
  failsafeServedMs: number;
}

/**
 * The coreapp's side of ownership. It follows the shard map; when the map names it as a shard's
 * owner it takes that shard's ownership lease (waiting, if need be, until the previous owner
 * released it or it lapsed), calls `onPromote`, and serves. It serves only while its lease holder
 * says the lease is held — a local deadline that precedes the store's expiry — and while the map
 * still names it at that epoch. When either stops being true it stops serving at once, drains
 * in-flight requests (only if the lease is still held), calls `onDemote`, and only then releases
 * the lease, so the next owner can start only after this one has stopped (S1, S4).
 *
 * It acts at most once per assignment: once a tenure at (shard, epoch) has ended — for whatever
 * reason, including a lease that lapsed while the map still names it — it never promotes at that
 * epoch again, and says so in its heartbeat answers (`OwnerState.ended`) so the primary master
 * writes a new assignment at once. Every tenure therefore has an epoch of its own, strictly higher
 * than the last (S2): an upstream that requires a higher fencing token for each session accepts it.
 */
export class ShardOwner {
  private desired: ShardAssignment | null = null;
  private tenure: Tenure | null = null;
  /** The last assignment given up (a tenure that ended, or an `onPromote` that failed). */
  private ended: EndedTenure | null = null;
  private inflight = 0;
  private tenures = 0;
  private drained: (() => void) | null = null;
  private wake = new AbortController();
  /** Woken whenever this coreapp starts serving a tenure. */
  private servingWaiters = new Set<() => void>();
  private readonly stop = new AbortController();
  private running: Promise<void> | null = null;
  /** The store's release notification for the shard lease this coreapp waits to take, if any. */
  private releaseWatch: { readonly name: string; readonly close: () => Promise<void> } | null = null;

  constructor(
    private readonly self: string,
    private readonly leases: LeaseStore,
    private readonly app: CoreappApplication,
    private readonly clock: Clock,
    private readonly timing: ShardOwnerTiming,
    private readonly log: Logger,
    private readonly onEvent: (e: OwnerEvent) => void = () => {},
    /** Failsafe mode's coreapp side; null (the default) never serves past the lease's deadline. */
    private readonly failsafe: FailsafeGuard | null = null,
  ) {}

  /**
   * Runs the ownership step now instead of at its next poll: the primary master says the map
   * changed, so a lease this coreapp waits for may be free, or one it holds may be wanted.
   */
  lookAgain(): void {
    this.kick();
  }

  /** Feeds the shard map (all of it, or what changed): this coreapp acts on entries naming it. */
  onMapChange(changed: readonly ShardAssignment[]): void {
    for (const a of changed) {
      if (a.owner === this.self) {
        const news = !sameAssignment(this.desired, a) && !this.hasEnded(a);
        this.desired = a;
        if (news) this.onEvent({ type: "named", shard: a.shard, epoch: a.epoch });
      } else if (this.desired?.shard === a.shard && a.epoch >= this.desired.epoch) this.desired = null;
    }
    this.kick();
  }

  /**
   * True while this process may act as a shard's primary soon or now: a tenure is open, or the map
   * names it for an assignment it has not given up (it is taking, or about to take, the lease). A
   * standby is not at risk: frozen, it can do no harm, so the watchdog leaves it alone (src/watchdog).
   */
  atRisk(): boolean {
    return this.tenure !== null || (this.desired !== null && !this.hasEnded(this.desired));
  }

  start(): void {
    this.running ??= this.loop();
    if (this.failsafe) void this.askLoop();
  }

  /** Stops serving (demoting gracefully and releasing the lease) and ends the loop. */
  async close(): Promise<void> {
    this.desired = null;
    this.stop.abort();
    this.kick();
    await this.running;
    await this.stopReleaseWatch();
    if (this.tenure) await this.demote(this.tenure, "shutting down");
  }

  state(): OwnerState {
    const t = this.tenure;
    if (!t) return { shard: null, epoch: null, serving: false, ended: this.ended };
    const serving = this.serves(t.shard, t.epoch);
    const servedMs = t.failsafeServedMs + (t.failsafeSince === null ? 0 : this.clock.now() - t.failsafeSince);
    return {
      shard: t.shard,
      epoch: t.epoch,
      serving,
      ended: this.ended,
      ...(serving && !t.holder.held ? { failsafe: true } : {}),
      ...(servedMs > 0 ? { failsafeServedMs: Math.round(servedMs) } : {}),
    };
  }

  /**
   * While a tenure is open — from taking the shard's lease until `onDemote` has returned — the
   * milliseconds left before the lease's local deadline (≤ 0 once it passed); null with no tenure.
   * Past that deadline the store may expire the lease and another coreapp may be promoted, so by
   * then the tenure must be closed; a process that cannot close it (frozen) is what the watchdog
   * kills (src/watchdog).
   */
  tenureRemainingMs(): number | null {
    const t = this.tenure;
    if (!t) return null;
    // On failsafe promises the tenure's deadline is the earliest promise's, not the lease's.
    const promised = this.onPromises(t) ? this.failsafe!.validUntil(t.shard, t.epoch) - this.clock.now() : 0;
    return Math.max(0, t.holder.remainingMs, promised);
  }

  /**
   * While a tenure is open, the milliseconds left before another coreapp could be given the shard:
   * the store's earliest expiry of the lease, or the end of the failsafe promises the tenure serves
   * on when that is later. At least one safety margin (the one its deadline was computed with)
   * after `tenureRemainingMs`, whatever the live settings say now; null with no tenure. The watchdog
   * kills a frozen owner halfway between the two (src/watchdog).
   */
  tenureLapseMs(): number | null {
    const t = this.tenure;
    if (!t) return null;
    const promised = this.onPromises(t) ? this.failsafe!.lapseAt(t.shard, t.epoch) - this.clock.now() : 0;
    return Math.max(0, t.holder.lapseRemainingMs, promised);
  }

  /** True if this coreapp may answer a request for `shard` stamped `epoch` right now. */
  serves(shard: number, epoch: number): boolean {
    const t = this.tenure;
    return !!t && t.serving && t.shard === shard && t.epoch === epoch && (t.holder.held || this.onPromises(t));
  }

  /**
   * True while tenure `t` may serve without its lease: the lease lapsed for want of the store (not
   * refused, not released), and every master's promise still covers it (failsafe-guard.ts).
   */
  private onPromises(t: Tenure): boolean {
    return !!this.failsafe && t.serving && t.failsafeRefused === null && t.holder.lapsed && this.failsafe.covers(t.shard, t.epoch);
  }

  /**
   * Resolves true as soon as this coreapp serves `shard` at `epoch`, or false after `timeoutMs` or
   * once the map no longer names it for that assignment. Lets a request that reached the newly
   * promoted owner a moment early wait for the promotion instead of bouncing back with 1018.
   */
  async whenServing(shard: number, epoch: number, timeoutMs: number): Promise<boolean> {
    const deadline = this.clock.now() + timeoutMs;
    while (!this.serves(shard, epoch)) {
      const d = this.desired;
      const left = deadline - this.clock.now();
      if (d?.shard !== shard || d.epoch !== epoch || left <= 0 || this.stop.signal.aborted) return false;
      const woken = new AbortController();
      const wake = () => woken.abort();
      this.servingWaiters.add(wake);
      await this.clock.sleep(Math.min(left, 50), woken.signal);
      this.servingWaiters.delete(wake);
    }
    return true;
  }

  /**
   * Runs `fn` as an in-flight request of `shard`/`epoch` if this coreapp serves it now; returns
   * null (run nothing) otherwise. Demotion waits for running requests before `onDemote`.
   */
  async run<T>(shard: number, epoch: number, fn: () => Promise<T>): Promise<T | null> {
    if (!this.serves(shard, epoch)) return null;
    this.inflight++;
    try {
      return await fn();
    } finally {
      if (--this.inflight === 0) this.drained?.();
    }
  }

  /** True if this coreapp already held (or refused) assignment `a`: it is not taken again. */
  private hasEnded(a: ShardAssignment): boolean {
    return this.ended?.shard === a.shard && this.ended.epoch === a.epoch;
  }

  private kick(): void {
    this.wake.abort();
  }

  private async loop(): Promise<void> {
    let backoff = 50;
    while (!this.stop.signal.aborted) {
      const signal = (this.wake = new AbortController()).signal;
      const t = this.tenure;
      const d = this.desired;
      let wait = Infinity;
      try {
        if (this.releaseWatch && (t || !d || this.releaseWatch.name !== shardLeaseName(d.shard))) await this.stopReleaseWatch();
        const named = d?.shard === t?.shard && d?.epoch === t?.epoch;
        if (t && named && !t.holder.held && this.onPromises(t)) {
          wait = await this.serveOnPromises(t);
        } else if (t && (!t.holder.held || !named)) {
          await this.demote(t, this.endReason(t) ?? "the shard map no longer names this coreapp at this epoch");
          continue;
        } else if (!t && d && !this.hasEnded(d)) {
          wait = await this.takeOver(d);
        }
        backoff = 50;
      } catch (error) {
        this.log.warn({ err: String(error) }, "ownership step failed; retrying");
        wait = backoff;
        backoff = Math.min(backoff * 2, this.timing.renewIntervalMs);
      }
      await this.clock.sleep(wait === Infinity ? this.timing.renewIntervalMs : wait, AbortSignal.any([signal, this.stop.signal]));
    }
  }

  /** One attempt at taking over `d`. Returns how long to wait before the next attempt. */
  private async takeOver(d: ShardAssignment): Promise<number> {
    // A holder name of its own per tenure: a release or renewal of an earlier tenure that reaches
    // the store late (a slow store, a pooled connection) can never match, and so never free or
    // extend, the lease of a later tenure of this same node.
    const holder = `${this.self}#${++this.tenures}`;
    const r = await LeaseHolder.acquire(this.leases, this.clock, shardLeaseName(d.shard), holder, this.timing, this.log);
    if (!(r instanceof LeaseHolder)) {
      // The previous owner still holds it: it releases as soon as it sees the map change, or the
      // lease lapses by the store's clock. Poll quickly, but not past the lapse; a store that
      // pushes the release wakes this loop sooner.
      await this.watchRelease(shardLeaseName(d.shard));
      return Math.max(1, Math.min(this.timing.handoverPollMs, r.expiresInMs));
    }
    await this.stopReleaseWatch();
    if (!r.held || this.stop.signal.aborted || !sameAssignment(this.desired, d)) {
      // The answer came too late (this process was paused, or the store was slow past the
      // lease's deadline) or the shard has moved on meanwhile: promoting now could overlap the
      // next owner. Give the lease back and look again.
      this.log.warn({ shard: d.shard, epoch: d.epoch }, "lease granted too late or for a stale assignment; not promoting");
      await r.release();
      return 0;
    }
    const tenure: Tenure = {
      shard: d.shard,
      epoch: d.epoch,
      holder: r,
      serving: false,
      failsafeSince: null,
      failsafeRefused: null,
      failsafeServedMs: 0,
    };
    this.tenure = tenure;
    this.onEvent({ type: "acquired", shard: d.shard, epoch: d.epoch });
    this.failsafe?.begin(d.shard, d.epoch);
    const lost = new AbortController();
    void r.lost.then(() => {
      if (!tenure.serving) lost.abort(); // the signal speaks for onPromote's run only
      this.kick();
    });
    try {
      await this.app.onPromote(d.shard, d.epoch, lost.signal);
    } catch (error) {
      this.log.error({ shard: d.shard, epoch: d.epoch, err: String(error) }, "onPromote failed; giving the shard back");
      this.ended = { shard: d.shard, epoch: d.epoch, reason: `onPromote failed: ${String(error)}`, refused: true };
      this.tenure = null;
      await r.release();
      return Infinity;
    }
    if (r.held && sameAssignment(this.desired, d)) {
      tenure.serving = true;
      for (const wake of this.servingWaiters) wake();
      this.log.info({ shard: d.shard, epoch: d.epoch }, "promoted: serving as primary");
      this.onEvent({ type: "promoted", shard: d.shard, epoch: d.epoch });
    }
    return Infinity;
  }

  /**
   * While this coreapp waits for a shard lease the previous owner still holds, a store that pushes
   * changes (etcd, PostgreSQL, Redis) wakes the loop the moment the lease is released, instead of
   * at its next poll, so a switchover's gap is the store's own round trips and not up to
   * `handoverPollMs` more. The poll goes on beside it: a watch that cannot start or breaks costs
   * latency, never a missed handover.
   */
  private async watchRelease(name: string): Promise<void> {
    if (!this.leases.watchRelease || this.releaseWatch?.name === name) return;
    await this.stopReleaseWatch();
    try {
      const close = await this.leases.watchRelease(
        name,
        () => this.kick(),
        () => {
          if (this.releaseWatch?.name === name) this.releaseWatch = null;
        },
      );
      this.releaseWatch = { name, close };
      // Released between the read that found it held and the watch going live: look again now.
      this.kick();
    } catch (error) {
      this.log.debug({ lease: name, err: String(error) }, "lease release watch could not start; polling only");
    }
  }

  private async stopReleaseWatch(): Promise<void> {
    const w = this.releaseWatch;
    this.releaseWatch = null;
    await w?.close().catch(() => {});
  }

  /** Why tenure `t` ends now, or null when it has not ended by itself. */
  private endReason(t: Tenure): string | null {
    const lease = t.holder.endReason;
    if (lease === null || t.failsafeSince === null) return lease;
    const cap = this.failsafe?.capReached ? "failsafe_max reached since the last liveness record the store accepted" : null;
    return `failsafe ended: ${t.failsafeRefused ?? this.failsafe?.endReason ?? cap ?? "the masters' promises ran out"}`;
  }

  /**
   * One step of serving on promises (the lease lapsed, the store is away): try to take the shard's
   * lease back under the same holder name. Taken: the tenure goes on at the same assignment (not a
   * new tenure; docs/safety.md). Held by another: failsafe is over at once. The store still away:
   * look again soon, and in any case when the earliest promise runs out.
   */
  private async serveOnPromises(t: Tenure): Promise<number> {
    if (t.failsafeSince === null) {
      t.failsafeSince = this.clock.now();
      this.failsafe!.relyOn(t.shard, t.epoch);
      this.log.warn(
        { shard: t.shard, epoch: t.epoch },
        "serving in failsafe: the shard lease lapsed with the store away; every master vouches",
      );
    }
    const again = () => Math.max(1, Math.min(this.timing.renewIntervalMs, this.failsafe!.validUntil(t.shard, t.epoch) - this.clock.now()));
    let r: Awaited<ReturnType<typeof LeaseHolder.acquire>>;
    try {
      r = await LeaseHolder.acquire(this.leases, this.clock, shardLeaseName(t.shard), t.holder.lease.holder, this.timing, this.log);
    } catch {
      return again();
    }
    if (!(r instanceof LeaseHolder)) {
      if (r.holder !== null && r.holder !== t.holder.lease.holder) t.failsafeRefused = `the shard lease is held by ${r.holder}`;
      return t.failsafeRefused ? 0 : again();
    }
    if (this.tenure !== t || !r.held) {
      await r.release();
      return 0;
    }
    if (r.remainingMs < (this.timing.leaseTtlMs - this.timing.safetyMarginMs) / 2) {
      // Granted by a request that waited out the outage in a dead connection: its deadline, counted
      // from when it was sent, is nearly gone. The lease is ours in the store; ask again at once (an
      // acquire by the same holder extends it) for a deadline counted from now.
      r.abandon("granted too late to keep; asking again");
      return 0;
    }
    t.holder.abandon("replaced by the lease taken back after failsafe");
    t.holder = r;
    t.failsafeServedMs += this.clock.now() - t.failsafeSince!;
    t.failsafeSince = null;
    this.failsafe!.reset(t.shard, t.epoch);
    void r.lost.then(() => this.kick());
    this.log.info({ shard: t.shard, epoch: t.epoch }, "failsafe over: the store is back and the shard lease is held again, same epoch");
    return Infinity;
  }

  /** While failsafe is on, asks the masters for promises whenever the tenure's lease is at risk. */
  private async askLoop(): Promise<void> {
    while (!this.stop.signal.aborted) {
      const t = this.tenure;
      const { leaseTtlMs, safetyMarginMs, renewIntervalMs } = this.timing;
      // A renewal is overdue: the deadline is further off than renewals normally keep it.
      const atRisk = !!t && t.serving && (!t.holder.held || t.holder.remainingMs < leaseTtlMs - safetyMarginMs - 1.5 * renewIntervalMs);
      if (t && atRisk && this.failsafe!.enabled) {
        await this.failsafe!.ask(t.shard, t.epoch).catch(() => {});
        this.kick();
      }
      await this.clock.sleep(Math.max(5, Math.floor(renewIntervalMs / 2)), this.stop.signal);
    }
  }

  private async demote(t: Tenure, reason: string): Promise<void> {
    if (this.tenure !== t) return;
    t.serving = false;
    this.ended = { shard: t.shard, epoch: t.epoch, reason, refused: false };
    if (t.holder.held && this.inflight > 0) {
      // A graceful handover: let running requests finish, but never past the lease's own deadline.
      const drained = new Promise<void>((resolve) => (this.drained = resolve));
      await Promise.race([drained, this.clock.sleep(Math.min(this.timing.drainTimeoutMs, t.holder.remainingMs))]);
      this.drained = null;
    }
    try {
      await this.app.onDemote(t.shard, t.epoch);
    } catch (error) {
      this.log.error({ shard: t.shard, err: String(error) }, "onDemote failed");
    }
    // Stopped acting: say so before the release, which may wait on an unreachable store.
    this.tenure = null;
    this.log.info({ shard: t.shard, epoch: t.epoch, reason }, "demoted");
    this.onEvent({ type: "demoted", shard: t.shard, epoch: t.epoch, reason });
    await t.holder.release();
  }
}

function sameAssignment(a: ShardAssignment | null, b: ShardAssignment): boolean {
  return !!a && a.shard === b.shard && a.epoch === b.epoch && a.owner === b.owner;
}
