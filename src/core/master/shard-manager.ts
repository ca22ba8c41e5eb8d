import { NOT_PRIMARY_MASTER } from "../api-errors.js";
import type { LeaseHolder } from "../lease-holder.js";
import type { Clock } from "../ports/clock.js";
import type { Pause } from "../ports/cluster-document.js";
import type { Lease } from "../ports/leases.js";
import type { NodeStatus } from "../ports/liveness.js";
import type { HistoryNote } from "./control-plane.js";
import type { Logger } from "../ports/logger.js";
import type { ShardAssignment, ShardMapStore } from "../ports/shard-map.js";
import type { EndedTenure, SwitchoverCommand, SwitchoverReply } from "../ports/transport.js";
import type { Timing } from "../timing.js";
import type { ClusterView } from "./cluster-view.js";
import { judgeOwner, type OwnerEvidence } from "./health.js";
import type { FailsafePromises } from "./failsafe-promises.js";
import type { HeartbeatMonitor } from "./heartbeat-monitor.js";
import { Wakeup } from "../wakeup.js";
import { chooseStandby, HOLD_AFTER_REPLACEMENTS, placementOf, ReplacementMemory } from "./placement.js";
import { UnansweredRemovals } from "./membership.js";

/** Something the primary master did to the shard map, for logs, the dev view and tests. */
export interface PromotionEvent {
  /** The shard. */
  readonly shard: number;
  /** The previous owner's node id, or null. */
  readonly from: string | null;
  /** The new owner's node id. */
  readonly to: string;
  /** The shard's new epoch. */
  readonly epoch: number;
  /** Why, e.g. "shard has no owner" or the failure detector's finding. */
  readonly reason: string;
  /** The facts behind `reason` (silences, the liveness record's age, the owner's own word), for the history. */
  readonly evidence: Readonly<Record<string, unknown>>;
}

/**
 * A shard that needs a primary while the primary master has none it may promote, with why each
 * registered coreapp was passed over: what `multiconnect status` and the health API show (through
 * the primary master's liveness record) and what the master logs, so a cluster that does not form
 * explains itself.
 */
export interface UnservedShard {
  /** The shard. */
  readonly shard: number;
  /** Why it needs a primary: "shard has no owner", or the failure detector's finding about its owner. */
  readonly reason: string;
  /** How long this master has found no coreapp to promote for it, in milliseconds. */
  readonly waitingMs: number;
  /** Every registered coreapp and why it was not promoted (empty: none is registered). */
  readonly passedOver: readonly {
    /** The coreapp's name. */
    readonly name: string;
    /** Why it was not promoted (record too old, silent N ms, held out, …). */
    readonly reason: string;
  }[];
}

/** How often a shard that stays without a primary is logged again (at warn), with the reasons. */
export const UNSERVED_LOG_EVERY_MS = 5000;

/** What the shard manager needs from the control plane: pauses, and the history. */
export interface ShardControl {
  /** The pause stopping automatic failover of `shard` now, or null. */
  pauseOf(shard: number): Pause | null;
  /** Appends to the history under the master lease (in the background). */
  record(lease: Lease, note: HistoryNote): void;
  /** How the node's process ended, when its supervisor reported it exited (an `ExitNotice`); else null. */
  exitOf?(node: string): string | null;
}

/**
 * The primary master's work while it holds the master lease: load the shard map first, then every
 * evaluation tick make sure every shard has a healthy primary coreapp, promoting a standby where
 * it has none; and move a shard on request (switchover). Every write is a compare-and-set bound to
 * the master lease's epoch, so a deposed master cannot change the map (S3). Promotion itself does
 * not wait for the previous owner: the new owner cannot take the shard's ownership lease until
 * the previous owner released it or it lapsed (S4).
 */
export class ShardManager {
  private readonly map = new Map<number, ShardAssignment>();
  private readonly switching = new Set<number>();
  /** Per assignment (`shard:epoch`): since when its owner has been answering "not serving it". */
  private readonly notServingSince = new Map<string, number>();
  private readonly warned = new Set<string>();
  /** Which coreapps this master replaced for failing, for placement's cooldown and hold-out. */
  private readonly replacements = new ReplacementMemory();
  /** When this master's current tenure as primary began (evidence.masterTenureMs). */
  private tenureStart = 0;
  /** Shards waiting for a promotable coreapp: since when, why, and when that was last logged. */
  private readonly waiting = new Map<number, { since: number; loggedAt: number; entry: UnservedShard }>();
  /** Cuts the evaluation tick's sleep short (`wake()`). */
  private readonly wakeup = new Wakeup();
  /** Nodes whose record is being removed (`removeRecord`), with how many removals run for each. */
  private readonly leaving = new Map<string, number>();
  /** Record removals the store did not answer, which may still land (`removalUnanswered`). */
  private readonly removalsUnanswered = new UnansweredRemovals();
  /** The epoch of the master lease of the tenure running (or last run). */
  private tenureEpoch: number | null = null;
  /** The shard map writes on their way, each settled when it was answered or failed. */
  private readonly writing = new Set<Promise<void>>();
  /**
   * Writes that failed without an answer (`shard:epoch:to`), which may still land: each expected
   * the shard at `fromEpoch`, so once the store's map has the shard past it, it never will.
   */
  private readonly unanswered = new Map<string, { readonly shard: number; readonly fromEpoch: number; readonly to: string }>();

  constructor(
    private readonly self: string,
    private readonly shards: number,
    private readonly shardMap: ShardMapStore,
    private readonly view: ClusterView,
    private readonly monitor: HeartbeatMonitor,
    private readonly clock: Clock,
    private readonly timing: Timing,
    private readonly log: Logger,
    private readonly onPromotion: (e: PromotionEvent) => void,
    private readonly control: ShardControl,
    /** Failsafe promises (this master's and, through the owners' records, other masters'); see failsafe-promises.ts. */
    private readonly failsafe: FailsafePromises | null = null,
  ) {}

  /** The epoch this master's map has for `shard`, or null when it has none (yet). */
  epochOf(shard: number): number | null {
    return this.map.get(shard)?.epoch ?? null;
  }

  /**
   * Why replacing the owner of `a` now could break a failsafe promise, or null. An owner that said
   * it gave `a` up never serves it again, on promises or otherwise: nothing to wait for then.
   */
  private failsafeBlocker(a: ShardAssignment): string | null {
    if (!this.failsafe || !a.owner || this.endedTenure(a)) return null;
    return this.failsafe.blocker(a, this.view.get(a.owner));
  }

  /** Ends the hold-out of the coreapp named `name` (an operator's decision); false if it had none. */
  clearHold(name: string): boolean {
    const now = this.clock.now();
    if (!this.replacements.heldOut(name, now)) return false;
    this.replacements.clear(name, now);
    return true;
  }

  /**
   * The primary master's side of removing `node`'s record (src/core/master/membership.ts): runs
   * `remove` — which reads the map, and removes the record unless a shard names `node` — once every
   * shard map write on its way has been answered or failed, and lets no promotion or switchover
   * pick `node` until the node is out of this master's view as well. A write's target is chosen
   * and the write registered in one synchronous step (`reconcile`, `switchover`), so when `remove`
   * reads the map, every assignment to `node` made before it ends is there — except one whose write
   * went unanswered and may land later: while one may, `remove` does not run ("in doubt").
   */
  async removeRecord(node: string, remove: () => Promise<boolean>): Promise<"removed" | "kept" | "in doubt"> {
    this.leaving.set(node, (this.leaving.get(node) ?? 0) + 1);
    try {
      await Promise.all(this.writing);
      if (await this.promotionInDoubt(node)) return "in doubt";
      if (!(await remove())) return "kept";
      await this.view.drop(node);
      return "removed";
    } finally {
      const left = this.leaving.get(node)! - 1;
      if (left === 0) this.leaving.delete(node);
      else this.leaving.set(node, left);
    }
  }

  /**
   * A removal of `node`'s record, fenced by the master lease `master`, went unanswered (the gate
   * of src/core/master/membership.ts): it may still land, and it would take away the record of a
   * coreapp promoted meanwhile. Until it can land no more, the node is not promoted (`isStandby`).
   * Waiting for a promoted node's first beat would not do: the late removal could land before it.
   */
  removalUnanswered(node: string, seq: number | undefined, master: Lease): void {
    this.removalsUnanswered.add(node, seq, master);
  }

  /** True while a write naming `node` went unanswered and the store's map says it may still land. */
  private async promotionInDoubt(node: string): Promise<boolean> {
    if (![...this.unanswered.values()].some((w) => w.to === node)) return false;
    const epochs = new Map((await this.shardMap.read()).map((a) => [a.shard, a.epoch]));
    for (const [key, w] of this.unanswered) if ((epochs.get(w.shard) ?? 0) > w.fromEpoch) this.unanswered.delete(key);
    return [...this.unanswered.values()].some((w) => w.to === node);
  }

  /** The shards that need a primary and have no coreapp this master may promote, with the reasons. */
  unserved(): UnservedShard[] {
    const now = this.clock.now();
    return [...this.waiting.values()].map((w) => ({ ...w.entry, waitingMs: Math.round(now - w.since) })).sort((a, b) => a.shard - b.shard);
  }

  /** The coreapps held out of automatic promotion now (placement), by name. */
  heldOut(): string[] {
    return this.replacements.heldOutNames(this.clock.now());
  }

  /**
   * Evaluates at once instead of at the next tick: news that changes a verdict arrived (an owner's
   * process exited). At the default settings a tick is 600 ms, too long for crash failover.
   */
  wake(): void {
    this.wakeup.wake();
  }

  /** Runs until the lease's tenure ends or `signal` aborts. */
  async run(lease: LeaseHolder, signal: AbortSignal): Promise<void> {
    this.tenureStart = this.clock.now();
    this.tenureEpoch = lease.lease.epoch;
    this.removalsUnanswered.beginTenure(lease.lease.epoch);
    this.waiting.clear();
    const stop = AbortSignal.any([signal, abortOn(lease.lost)]);
    await this.reload(stop);
    let lastReload = this.clock.now();
    let lastWarning = -Infinity;
    while (!stop.aborted && lease.held) {
      const woken = AbortSignal.any([stop, this.wakeup.signal]);
      try {
        if (this.clock.now() - lastReload >= this.timing.masterBeatIntervalMs) {
          await this.reload(stop);
          lastReload = this.clock.now();
        }
        await this.reconcile(lease);
      } catch (error) {
        // Every tick retries; say so once per second, not once per tick.
        if (this.clock.now() - lastWarning >= 1000) {
          lastWarning = this.clock.now();
          this.log.warn({ err: String(error) }, "shard reconciliation failed; retrying every tick");
        }
      }
      await this.clock.sleep(this.timing.evaluateTickMs, woken);
    }
  }

  /** Moves `command.shard` to the named coreapp, or to any healthy standby. */
  async switchover(lease: LeaseHolder | null, command: SwitchoverCommand): Promise<SwitchoverReply> {
    const { shard } = command;
    const fail = (code: number, message: string, epoch = 0): SwitchoverReply => ({
      ok: false,
      shard,
      from: null,
      to: null,
      epoch,
      error: { code, message },
    });
    if (!lease?.held) return fail(NOT_PRIMARY_MASTER, "Not Primary Master");
    if (!Number.isInteger(shard) || shard < 0 || shard >= this.shards) {
      return fail(400, `shard must be an integer from 0 to ${this.shards - 1}`);
    }
    if (this.switching.has(shard)) return fail(409, `a switchover of shard ${shard} is already running`);
    this.switching.add(shard);
    try {
      await this.view.refresh();
      const current = this.entry(shard);
      const target = command.to ? (this.view.resolve(command.to)?.id ?? null) : this.pickStandby();
      if (!target) return fail(404, command.to ? `no node named ${command.to}` : "no healthy standby coreapp", current.epoch);
      if (!this.isStandby(target, this.owners()))
        return fail(409, `${command.to ?? target} is not a healthy standby coreapp`, current.epoch);
      const promised = this.failsafeBlocker(current);
      if (promised) return fail(409, `not now: ${promised}`, current.epoch);
      const chosen = this.view.get(target)!;
      if (placementOf(chosen.meta).nofailover && !command.force) {
        return fail(409, `${chosen.name} is marked nofailover: switch to it with force`, current.epoch);
      }
      // An operator chose this coreapp: whatever placement held against it is cleared.
      this.replacements.clear(chosen.name, this.clock.now());
      const written = await this.write(lease, current, target, "switchover requested", { requested: true, force: command.force === true });
      if (!written) return fail(NOT_PRIMARY_MASTER, "the shard map changed or the master lease was lost", current.epoch);
      const started = this.clock.now();
      const deadline = started + this.timing.unhealthyIntervalMs + this.timing.leaseTtlMs;
      while (this.clock.now() < deadline) {
        const reply = await this.monitor.probe(target, true);
        if (reply?.shard === shard && reply.epoch === written.epoch) {
          return { ok: true, shard, from: current.owner, to: target, epoch: written.epoch, gapMs: this.clock.now() - started };
        }
        await this.clock.sleep(5);
      }
      return { ...fail(504, "the new owner did not report serving in time", written.epoch), from: current.owner, to: target };
    } finally {
      this.switching.delete(shard);
    }
  }

  /** The map as this master last knew it. */
  snapshot(): ShardAssignment[] {
    return [...this.map.values()].sort((a, b) => a.shard - b.shard);
  }

  /**
   * Re-reads the map. An entry the store returns replaces ours unless ours is newer (a write of
   * ours that the read did not see yet). A shard the store no longer has at all — a store that
   * lost its data — is forgotten, so the next reconciliation assigns it again with a fresh epoch
   * instead of trusting an assignment only this process remembers.
   */
  private async reload(signal: AbortSignal): Promise<void> {
    for (let backoff = 50; !signal.aborted; backoff = Math.min(backoff * 2, 2000)) {
      try {
        const entries = new Map((await this.shardMap.read()).map((a) => [a.shard, a]));
        for (const shard of [...this.map.keys()]) if (!entries.has(shard)) this.map.delete(shard);
        for (const a of entries.values()) if ((this.map.get(a.shard)?.epoch ?? -1) <= a.epoch) this.map.set(a.shard, a);
        return;
      } catch (error) {
        this.log.warn({ err: String(error) }, "cannot read the shard map; retrying");
        await this.clock.sleep(backoff, signal);
      }
    }
  }

  private entry(shard: number): ShardAssignment {
    return this.map.get(shard) ?? { shard, owner: null, epoch: 0 };
  }

  private async reconcile(lease: LeaseHolder): Promise<void> {
    for (let shard = 0; shard < this.shards; shard++) {
      if (this.switching.has(shard) || !lease.held) continue;
      const a = this.entry(shard);
      let reason = "shard has no owner";
      let failed: string | null = null;
      let evidence: Record<string, unknown> = {};
      if (a.owner) {
        let e = this.evidence(a);
        let verdict = judgeOwner(e, this.timing);
        const silent = (this.monitor.silenceMs(a.owner) ?? 0) >= this.timing.unhealthyIntervalMs;
        if (verdict.healthy ? silent : verdict.fromRecords === true) {
          // Suspicious to us: get the secondary masters' freshest views before deciding. Or the
          // store detector fired on our copy of the records, which is as old as our last read: on a
          // slow store link a live owner's beats landed since (the multi-host bed's store-delay
          // replaced a healthy owner on etcd). A fresh read decides.
          await this.view.refreshIfOlderThan(Math.max(this.timing.evaluateTickMs, 50));
          e = this.evidence(a);
          verdict = judgeOwner(e, this.timing);
        }
        if (verdict.healthy) {
          this.waiting.delete(shard);
          continue;
        }
        reason = verdict.reason;
        if (verdict.blamesOwner) failed = a.owner;
        evidence = summarize(e);
      }
      const pause = a.owner ? this.control.pauseOf(shard) : null;
      // Paused: no failover. Handing the shard back to an owner that gave it up (a new epoch for the
      // same coreapp, after a store outage) moves nothing and stays allowed.
      const target = pause ? this.takesItBack(a) : (this.pickStandby() ?? this.takesItBack(a));
      if (!target && pause) {
        this.noteUnserved(shard, reason, pause, false);
        this.warnOnce(
          `paused:${shard}:${a.epoch}:${pause.pausedAtMs}`,
          { shard, reason, pausedBy: pause.by },
          "automatic failover is paused: the shard's owner is not replaced",
        );
        continue;
      }
      if (!target) {
        this.noteUnserved(shard, reason, null, true);
        continue;
      }
      const promised = this.failsafeBlocker(a);
      if (promised) {
        this.warnOnce(
          `failsafe:${shard}:${a.epoch}`,
          { shard, reason, failsafe: promised },
          "failsafe: the shard's owner is not replaced yet",
        );
        continue;
      }
      const written = await this.write(lease, a, target, reason, evidence);
      if (written) this.waiting.delete(shard);
      if (written && failed) {
        const name = this.view.get(failed)?.name ?? failed;
        if (this.replacements.replaced(name, this.clock.now())) {
          this.log.warn(
            { node: name },
            "coreapp held out of automatic promotion: replaced too often (clear it with a switchover to it or clear-hold)",
          );
          this.control.record(lease.lease, {
            type: "held_out",
            shard,
            cause: `replaced ${HOLD_AFTER_REPLACEMENTS} times within an hour`,
            evidence: { node: name },
            epochs: { master: lease.lease.epoch },
          });
        }
      }
    }
  }

  private async write(
    lease: LeaseHolder,
    from: ShardAssignment,
    to: string,
    reason: string,
    evidence: Record<string, unknown>,
  ): Promise<ShardAssignment | null> {
    if (!lease.held) return null;
    // From here until the write's outcome is known, no failsafe promise is given for this shard,
    // and a record's removal waits (removeRecord).
    const release = this.failsafe?.hold(from.shard) ?? (() => {});
    let landed = () => {};
    const outcome = new Promise<void>((resolve) => (landed = resolve));
    this.writing.add(outcome);
    let r: Awaited<ReturnType<ShardMapStore["assign"]>>;
    try {
      r = await this.shardMap.assign(from.shard, from.epoch, to, lease.lease);
    } catch (error) {
      this.unanswered.set(`${from.shard}:${from.epoch}:${to}`, { shard: from.shard, fromEpoch: from.epoch, to });
      throw error;
    } finally {
      release();
      this.writing.delete(outcome);
      landed();
    }
    if (r.ok) {
      this.map.set(from.shard, r.assignment);
      // Tell both owners now rather than leave them to their map watch: on a store that polls, each
      // would learn up to a poll interval late, the old one to let go and the new one to take over.
      for (const id of new Set([from.owner, to])) if (id) void this.monitor.probe(id, true);
      this.log.info({ shard: from.shard, from: from.owner, to, epoch: r.assignment.epoch, reason }, "promoted");
      const requested = evidence["requested"] === true;
      this.control.record(lease.lease, {
        type: requested ? "switchover" : "promoted",
        shard: from.shard,
        cause: reason,
        evidence: { ...evidence, from: from.owner, to },
        epochs: { master: lease.lease.epoch, from: from.epoch, to: r.assignment.epoch },
      });
      this.onPromotion({ shard: from.shard, from: from.owner, to, epoch: r.assignment.epoch, reason, evidence });
      return r.assignment;
    }
    if (r.reason === "conflict") {
      this.map.set(from.shard, r.current);
      return null;
    }
    this.log.warn({ shard: from.shard }, "shard-map write fenced: this master no longer holds the master lease");
    lease.abandon("fenced by the store: the master lease is no longer ours");
    return null;
  }

  private evidence(a: ShardAssignment): OwnerEvidence {
    const owner = a.owner!;
    // Only secondaries whose record is fresh (at most a couple of missed beats) have a view worth
    // counting: a stale record's silence, aged by the record's age, would make a secondary that is
    // cut off from the store — or dead — "agree" that a healthy coreapp is silent.
    const fresh = 3 * this.timing.masterBeatIntervalMs;
    const masters = this.view.masters().filter((n) => n.id !== this.self && n.ageMs <= fresh);
    const secondarySilencesMs = masters.map((m) => {
      const published = (m.meta["view"] as Record<string, number> | undefined)?.[owner];
      return published === undefined ? 0 : published + m.ageMs;
    });
    return {
      record: this.view.get(owner),
      ownSilenceMs: this.monitor.silenceMs(owner) ?? 0,
      secondarySilencesMs,
      notServingForMs: this.notServingFor(a),
      ended: this.endedTenure(a),
      masterTenureMs: this.clock.now() - this.tenureStart,
      exited: this.control.exitOf?.(owner) ?? null,
    };
  }

  /** The owner's word that it gave assignment `a` up (final: it never serves that epoch again). */
  private endedTenure(a: ShardAssignment): EndedTenure | null {
    const ended = this.monitor.lastReply(a.owner!)?.ended ?? null;
    return ended?.shard === a.shard && ended.epoch === a.epoch ? ended : null;
  }

  /**
   * With no other standby, the owner that gave `a` up takes the shard back under a new epoch, if
   * it is otherwise a healthy standby and its application did not refuse (a store outage longer
   * than the lease ends every tenure; the same coreapps then resume, each at a higher epoch).
   */
  private takesItBack(a: ShardAssignment): string | null {
    const ended = a.owner ? this.endedTenure(a) : null;
    if (!ended || ended.refused) return null;
    const others = this.owners();
    others.delete(a.owner!);
    return this.isStandby(a.owner!, others) ? a.owner : null;
  }

  /** How long the owner has kept answering that it does not serve assignment `a`. */
  private notServingFor(a: ShardAssignment): number {
    const key = `${a.shard}:${a.epoch}`;
    const reply = this.monitor.lastReply(a.owner!);
    if (!reply || !this.monitor.answeredWithin(a.owner!, 2 * this.timing.heartbeatIntervalMs)) return 0;
    if (reply.shard === a.shard && reply.epoch === a.epoch) {
      this.notServingSince.delete(key);
      return 0;
    }
    const since = this.notServingSince.get(key) ?? this.clock.now();
    this.notServingSince.set(key, since);
    return this.clock.now() - since;
  }

  /** Every coreapp the map names as an owner. */
  private owners(): Set<string> {
    const owners = new Set<string>();
    for (const a of this.map.values()) if (a.owner) owners.add(a.owner);
    return owners;
  }

  private isStandby(id: string, owners: Set<string>): boolean {
    const n = this.view.get(id);
    if (!n || n.role !== "coreapp" || n.ageMs > this.timing.dbUnhealthyIntervalMs || this.leaving.has(id)) return false;
    if (this.removalsUnanswered.mayLand(n, this.tenureEpoch)) return false;
    if (owners.has(id)) return false;
    if (this.control.exitOf?.(id)) return false;
    if (!this.monitor.answeredWithin(id, this.timing.unhealthyIntervalMs)) return false;
    return this.monitor.lastReply(id)?.shard === null;
  }

  /** The healthy standby placement prefers (src/core/master/placement.ts), or null. */
  private pickStandby(): string | null {
    const owners = this.owners();
    const candidates = this.view
      .all()
      .filter((n) => this.isStandby(n.id, owners))
      .map((n) => ({ id: n.id, name: n.name, silenceMs: this.monitor.silenceMs(n.id) ?? 0, ...placementOf(n.meta) }));
    return chooseStandby(candidates, this.replacements, this.clock.now(), 2 * this.timing.unhealthyIntervalMs)?.id ?? null;
  }

  /**
   * Records that `shard` needs a primary and none may be promoted, with every coreapp's reason, and
   * (with `log`) says so at warn: at once, then every `UNSERVED_LOG_EVERY_MS` while it lasts. Not
   * only once: a cluster that never formed used to log this line once, 11 ms after the election,
   * then nothing for 18 s, and nobody could tell why the standbys did not count (issue 14).
   */
  private noteUnserved(shard: number, reason: string, pause: Pause | null, log: boolean): void {
    const now = this.clock.now();
    const owners = this.owners();
    const passedOver = this.view
      .all()
      .filter((n) => n.role === "coreapp")
      .map((n) => ({ name: n.name, reason: this.passedOverBecause(n, owners, pause, now) }))
      .sort((x, y) => x.name.localeCompare(y.name));
    const known = this.waiting.get(shard);
    const since = known?.since ?? now;
    const entry: UnservedShard = { shard, reason, waitingMs: Math.round(now - since), passedOver };
    const due = log && (!known || now - known.loggedAt >= UNSERVED_LOG_EVERY_MS);
    this.waiting.set(shard, { since, loggedAt: due ? now : (known?.loggedAt ?? now), entry });
    if (!due) return;
    const fields = {
      shard,
      reason,
      waitingMs: entry.waitingMs,
      passedOver: Object.fromEntries(passedOver.map((p) => [p.name, p.reason])),
    };
    this.log.warn(
      fields,
      known
        ? "shard still has no primary: no coreapp may be promoted (passedOver says why, per coreapp)"
        : passedOver.length === 0
          ? "shard needs a primary but no coreapp is registered"
          : "shard needs a primary but no healthy standby coreapp exists (passedOver says why, per coreapp)",
    );
  }

  /** Why coreapp `n` is not promoted now, in words an operator can act on. */
  private passedOverBecause(n: NodeStatus, owners: Set<string>, pause: Pause | null, now: number): string {
    const t = this.timing;
    if (owners.has(n.id)) {
      const owned = [...this.map.values()].find((a) => a.owner === n.id);
      return `primary of shard ${owned?.shard ?? "?"}`;
    }
    if (this.leaving.has(n.id)) return "its record is being removed (forget)";
    if (this.removalsUnanswered.mayLand(n, this.tenureEpoch))
      return "a removal of its record went unanswered by the store and may still land (until its record shows a later beat)";
    if (n.ageMs > t.dbUnhealthyIntervalMs) {
      return `liveness record ${Math.round(n.ageMs)} ms old (past db_unhealthy_interval, ${t.dbUnhealthyIntervalMs} ms)`;
    }
    const silence = this.monitor.silenceMs(n.id);
    const failure = this.monitor.lastFailure(n.id);
    const last = failure ? `; last heartbeat: ${failure}` : "";
    if (silence === null) return "registered without an address yet: not heartbeated";
    if (this.monitor.refused(n.id)) return `heartbeat refused (${failure}): it cannot be promoted until that is fixed`;
    const reply = this.monitor.lastReply(n.id);
    if (reply === null) return `no heartbeat answer yet, known for ${Math.round(silence)} ms${last}`;
    if (!this.monitor.answeredWithin(n.id, t.unhealthyIntervalMs)) {
      return `silent ${Math.round(silence)} ms (past unhealthy_interval, ${t.unhealthyIntervalMs} ms)${last}`;
    }
    if (reply.shard !== null) return `answers that it still serves shard ${reply.shard} at epoch ${reply.epoch}`;
    if (pause) return `automatic failover paused by ${pause.by}${pause.reason ? ` (${pause.reason})` : ""}`;
    if (placementOf(n.meta).nofailover) return "nofailover: only a forced switchover promotes it";
    if (this.replacements.heldOut(n.name, now)) return "held out after repeated replacements (clear-hold, or a switchover to it)";
    if (this.replacements.cooling(n.name, now, 2 * t.unhealthyIntervalMs)) return "cooling down after a recent replacement";
    return "eligible";
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, message);
  }
}

/** The evidence of a verdict, small and JSON-friendly, for the history. */
function summarize(e: OwnerEvidence): Record<string, unknown> {
  return {
    ownSilenceMs: Math.round(e.ownSilenceMs),
    secondarySilencesMs: e.secondarySilencesMs.map(Math.round),
    recordAgeMs: e.record ? Math.round(e.record.ageMs) : null,
    notServingForMs: Math.round(e.notServingForMs),
    ...(e.ended ? { ended: e.ended.reason } : {}),
    ...(e.exited ? { exited: e.exited } : {}),
  };
}

/** An AbortSignal that aborts when `p` settles. */
export function abortOn(p: Promise<unknown>): AbortSignal {
  const c = new AbortController();
  void p.finally(() => c.abort());
  return c.signal;
}
