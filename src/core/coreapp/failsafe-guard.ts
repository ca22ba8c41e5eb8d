import type { Clock } from "../ports/clock.js";
import type { NodeStatus } from "../ports/liveness.js";
import type { Logger } from "../ports/logger.js";
import type { Transport } from "../ports/transport.js";
import type { PublishedFailsafe } from "../master/failsafe-promises.js";
import type { Timing } from "../timing.js";

/** A master a coreapp asks for failsafe promises: its process id and where it listens. */
export interface FailsafeMaster {
  /** The master's node id (one process). */
  readonly id: string;
  /** `host:port` of its transport listener. */
  readonly address: string;
}

/**
 * A primary coreapp's side of failsafe mode (docs/safety.md, "Failsafe"). While the store works it
 * keeps the set of masters to ask — the masters registered in the store with a fresh record — and
 * publishes that set in its liveness record; once its shard lease's renewals fail it asks every
 * master in the set for a promise, again and again, and says until when it may serve without the
 * lease: the earliest of every master's latest promise and `failsafe_max` past its last liveness
 * record the store accepted. Any master refusing or unreachable while it serves on promises ends
 * failsafe for that tenure: the promises it holds then are the last.
 *
 * Time: a promise of P ms is counted from `t0`, this process's monotonic time just *before* the
 * request was sent — earlier than when the master received it and started counting — less the
 * safety margin for clock-rate drift. No wall clock is compared.
 */
export class FailsafeGuard {
  /** The set the store last accepted in a liveness record of ours. */
  private acked: FailsafeMaster[] = [];
  /** Sets written since, whose outcome we do not know: asked too, since the store may hold them. */
  private unsure = new Map<string, FailsafeMaster>();
  /** Send time of the last liveness beat the store accepted (this clock). */
  private lastBeatAt = -Infinity;
  /**
   * The smallest `failsafe_max` the store may hold in our record: the one of the last beat it
   * accepted, or a smaller one sent since (whose outcome we do not know). Masters the owner does not
   * ask wait that long (× 1.1) past the record, whatever the live settings say now.
   */
  private publishedMaxMs = 0;
  private unsureMaxMs = Infinity;
  /** The assignment the promises below are for (`shard:epoch`). */
  private tenure: string | null = null;
  /**
   * When this process took the tenure's lease (`begin`). Failsafe covers a tenure only once a
   * liveness beat sent since then was accepted: before, the store may hold a record of ours that
   * some other beat put there. Beats are ordered by `seq`, so one that timed out cannot land over
   * a later record; but if the record was removed (`forget --force` of a standby, or pruning) a
   * late beat writes it afresh, with an older set of masters or `failsafe_max`. A shard's owner is
   * not removed (forget and pruning refuse an owner; their removal is fenced by the master lease
   * and by the beat it was decided on, and a removal left unanswered holds the node back from
   * promotion until it can no longer land: docs/safety.md), so the first beat accepted after this
   * process took the lease is the last word.
   */
  private tenureSince = -Infinity;
  /** Master id → its latest promise for `tenure` (this clock). */
  private readonly until = new Map<string, Promised>();
  /** Why failsafe ended for `tenure` (no promise is taken any more), or null. */
  private ended: string | null = null;
  /** True once serving has relied on promises in this tenure (for the ending rule and status). */
  private relied = false;
  private asking: Promise<void> | null = null;

  constructor(
    private readonly transport: Transport,
    private readonly clock: Clock,
    private readonly timing: Timing,
    private readonly log: Logger,
  ) {}

  /** True while the live settings turn failsafe on. */
  get enabled(): boolean {
    return (this.timing.failsafeMaxMs ?? 0) > 0;
  }

  /**
   * The `meta.failsafe` to publish in the liveness beat about to be sent, from the registry as just
   * read (null when failsafe is off). Until the store confirms the beat, its set is asked as well.
   *
   * While the tenure serves on promises the set is frozen: the registry is not consulted. The first
   * registry read after the store returns shows every master's record as old as the outage — they
   * have not beaten yet — and would empty the set, leaving no promise to serve on in the moment
   * before the lease is taken back. A frozen set is safe: a master left out of it (one that started
   * during the outage) waits `failsafe_max` past this record before replacing the owner, and the
   * owner never serves on promises past that (`validUntil`).
   */
  beforeBeat(registry: readonly NodeStatus[] | null): PublishedFailsafe | null {
    if (!this.enabled) {
      this.unsureMaxMs = 0; // a record without failsafe, if the store takes it: masters wait for nothing
      return null;
    }
    const maxMs = this.timing.failsafeMaxMs!;
    this.unsureMaxMs = Math.min(this.unsureMaxMs, maxMs);
    if (registry && !this.relying) {
      const fresh = registry.filter((n) => n.role === "master" && n.address !== "" && n.ageMs <= this.timing.dbUnhealthyIntervalMs);
      for (const m of fresh) this.unsure.set(m.id, { id: m.id, address: m.address });
      return { masters: fresh.map((m) => m.id), maxMs };
    }
    return { masters: this.acked.map((m) => m.id), maxMs };
  }

  /** The beat sent at `sentAt` with `published` was accepted by the store. */
  afterBeat(sentAt: number, published: PublishedFailsafe | null): void {
    this.lastBeatAt = Math.max(this.lastBeatAt, sentAt);
    if (!published) {
      // Failsafe off in the record the store holds: nothing published is left to count on.
      this.publishedMaxMs = 0;
      this.unsureMaxMs = Infinity;
      this.acked = [];
      this.unsure.clear();
      return;
    }
    // Beats go one at a time, each with a higher seq, and the store writes a record only over a
    // lower seq: it now holds this one, and no beat sent before it can land over it later.
    this.publishedMaxMs = published.maxMs;
    this.unsureMaxMs = Infinity;
    const ids = new Set(published.masters);
    this.acked = [...this.acked, ...this.unsure.values()].filter((m, i, all) => ids.has(m.id) && all.findIndex((x) => x.id === m.id) === i);
    this.unsure.clear();
  }

  /** Every master to ask: the accepted set and any set the store may hold. */
  masters(): FailsafeMaster[] {
    const all = new Map(this.acked.map((m) => [m.id, m]));
    for (const m of this.unsure.values()) all.set(m.id, m);
    return [...all.values()];
  }

  /**
   * Until when (this clock) the tenure at `shard`/`epoch` may serve without its lease; -Infinity
   * when it may not (failsafe off, a master missing or refusing, no promise yet).
   */
  validUntil(shard: number, epoch: number): number {
    return this.earliest(shard, epoch, "serve");
  }

  /**
   * The earliest moment (this clock) at which a master may reassign the shard while the tenure at
   * `shard`/`epoch` serves on promises: the end of the earliest promise as the master counts it
   * (no margin taken off), or `failsafe_max` × 1.1 past our last record for masters we do not ask.
   * At least one safety margin after `validUntil`; -Infinity when that is -Infinity.
   */
  lapseAt(shard: number, epoch: number): number {
    return this.earliest(shard, epoch, "lapse");
  }

  private earliest(shard: number, epoch: number, which: keyof Promised): number {
    if (!this.enabled || this.tenure !== `${shard}:${epoch}` || this.lastBeatAt < this.tenureSince) return -Infinity;
    const masters = this.masters();
    if (masters.length === 0) return -Infinity;
    const maxMs = Math.min(this.publishedMaxMs, this.unsureMaxMs, this.timing.failsafeMaxMs!);
    let earliest = this.lastBeatAt + (which === "serve" ? maxMs : maxMs + maxMs / 10);
    for (const m of masters) earliest = Math.min(earliest, this.until.get(m.id)?.[which] ?? -Infinity);
    return earliest;
  }

  /** True once `failsafe_max` past the last liveness record the store accepted has been reached. */
  get capReached(): boolean {
    return this.clock.now() >= this.lastBeatAt + Math.min(this.publishedMaxMs, this.unsureMaxMs, this.timing.failsafeMaxMs ?? 0);
  }

  /** True while serving `shard`/`epoch` without its lease is covered by promises. */
  covers(shard: number, epoch: number): boolean {
    return this.clock.now() < this.validUntil(shard, epoch);
  }

  /** Why failsafe ended for the current tenure, or null. */
  get endReason(): string | null {
    return this.ended;
  }

  /** The tenure now serves on promises (its lease lapsed): from here, any missing promise ends failsafe. */
  relyOn(shard: number, epoch: number): void {
    if (this.tenure === `${shard}:${epoch}`) this.relied = true;
  }

  /** True while the current tenure has been serving on promises. */
  get relying(): boolean {
    return this.relied && this.ended === null;
  }

  /** A new tenure: this process just took the lease of `shard` at `epoch` (see `tenureSince`). */
  begin(shard: number, epoch: number): void {
    this.reset(shard, epoch);
    this.tenureSince = this.clock.now();
  }

  /** Forgets the promises of the last tenure: a new tenure, or the lease is held again. */
  reset(shard: number | null = null, epoch: number | null = null): void {
    this.tenure = shard === null ? null : `${shard}:${epoch}`;
    this.until.clear();
    this.ended = null;
    this.relied = false;
  }

  /**
   * Asks every master once, in parallel, for a promise for `shard`/`epoch` (one round at a time).
   * Once the tenure relies on promises, a refusal or an unreachable master ends failsafe for it.
   */
  async ask(shard: number, epoch: number): Promise<void> {
    if (!this.enabled || this.ended !== null) return;
    const key = `${shard}:${epoch}`;
    if (this.tenure !== key) this.reset(shard, epoch);
    this.asking ??= this.round(shard, epoch, key).finally(() => (this.asking = null));
    await this.asking;
  }

  private async round(shard: number, epoch: number, key: string): Promise<void> {
    const masters = this.masters();
    // A round waits for every master, and the next round waits for this one: one silent master
    // must not hold the others' fresh promises back for long. So an ask gives up after a third of
    // the unhealthy interval (at least one heartbeat interval), and never later than a third of a
    // promise (a reply later than that is worth little). Not the heartbeat timeout: that one is the
    // whole unhealthy interval, sized for a starved host's late heartbeat answers (timing.ts).
    const askMs = Math.max(this.timing.heartbeatIntervalMs, Math.floor(this.timing.unhealthyIntervalMs / 3));
    const timeoutMs = Math.max(10, Math.min(askMs, Math.floor(this.timing.failsafePromiseMs / 3)));
    await Promise.all(
      masters.map(async (m) => {
        const t0 = this.clock.now();
        let why: string;
        try {
          const reply = await this.transport.failsafe(m, { shard, epoch }, timeoutMs);
          if (reply.ok && reply.promiseMs !== undefined) {
            if (this.tenure !== key) return;
            const lapse = t0 + reply.promiseMs;
            const serve = lapse - this.timing.safetyMarginMs;
            const held = this.until.get(m.id);
            if (this.ended === null && (!held || serve > held.serve)) this.until.set(m.id, { serve, lapse });
            return;
          }
          why = `master ${m.id} refused: ${reply.reason ?? "no reason"}`;
        } catch (error) {
          why = `master ${m.id} unreachable: ${String(error)}`;
        }
        if (this.tenure === key && this.relied && this.ended === null) {
          this.ended = why;
          this.log.warn({ shard, epoch, reason: why }, "failsafe ends: serving until the earliest promise held runs out");
        }
      }),
    );
  }
}

/** A master's promise as this coreapp holds it (this clock). */
interface Promised {
  /** Until when it lets us serve: its end less the safety margin for clock-rate drift. */
  readonly serve: number;
  /** Its end: from then the master may reassign the shard. */
  readonly lapse: number;
}
