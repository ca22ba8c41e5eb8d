import { NOT_PRIMARY_MASTER } from "../api-errors.js";
import type { LeaseHolder } from "../lease-holder.js";
import type { Clock } from "../ports/clock.js";
import type { Logger } from "../ports/logger.js";
import type { ShardAssignment, ShardMapStore } from "../ports/shard-map.js";
import type { SwitchoverCommand, SwitchoverReply } from "../ports/transport.js";
import type { Timing } from "../timing.js";
import type { ClusterView } from "./cluster-view.js";
import { judgeOwner, type OwnerEvidence } from "./health.js";
import type { HeartbeatMonitor } from "./heartbeat-monitor.js";

/** Something the primary master did to the shard map, for logs, the dev view and tests. */
export interface PromotionEvent {
  readonly shard: number;
  readonly from: string | null;
  readonly to: string;
  readonly epoch: number;
  readonly reason: string;
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
  /** When this master's current tenure as primary began (evidence.masterTenureMs). */
  private tenureStart = 0;

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
  ) {}

  /** Runs until the lease's tenure ends or `signal` aborts. */
  async run(lease: LeaseHolder, signal: AbortSignal): Promise<void> {
    this.tenureStart = this.clock.now();
    const stop = AbortSignal.any([signal, abortOn(lease.lost)]);
    await this.reload(stop);
    let lastReload = this.clock.now();
    let lastWarning = -Infinity;
    while (!stop.aborted && lease.held) {
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
      await this.clock.sleep(this.timing.evaluateTickMs, stop);
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
      const target = command.to ? this.view.resolve(command.to)?.id ?? null : this.pickStandby();
      if (!target) return fail(404, command.to ? `no node named ${command.to}` : "no healthy standby coreapp", current.epoch);
      if (!this.isStandby(target, this.owners())) return fail(409, `${command.to ?? target} is not a healthy standby coreapp`, current.epoch);
      const written = await this.write(lease, current, target, "switchover requested");
      if (!written) return fail(NOT_PRIMARY_MASTER, "the shard map changed or the master lease was lost", current.epoch);
      const started = this.clock.now();
      const deadline = started + this.timing.unhealthyIntervalMs + this.timing.leaseTtlMs;
      while (this.clock.now() < deadline) {
        const reply = await this.monitor.probe(target);
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
      if (a.owner) {
        let verdict = judgeOwner(this.evidence(a), this.timing);
        if (verdict.healthy && (this.monitor.silenceMs(a.owner) ?? 0) >= this.timing.unhealthyIntervalMs) {
          // Suspicious to us: get the secondary masters' freshest views before deciding.
          await this.view.refreshIfOlderThan(Math.max(this.timing.evaluateTickMs, 50));
          verdict = judgeOwner(this.evidence(a), this.timing);
        }
        if (verdict.healthy) continue;
        reason = verdict.reason;
      }
      const target = this.pickStandby();
      if (!target) {
        this.warnOnce(`nostandby:${shard}:${a.epoch}`, { shard, reason }, "shard needs a primary but no healthy standby coreapp exists");
        continue;
      }
      await this.write(lease, a, target, reason);
    }
  }

  private async write(lease: LeaseHolder, from: ShardAssignment, to: string, reason: string): Promise<ShardAssignment | null> {
    if (!lease.held) return null;
    const r = await this.shardMap.assign(from.shard, from.epoch, to, lease.lease);
    if (r.ok) {
      this.map.set(from.shard, r.assignment);
      this.log.info({ shard: from.shard, from: from.owner, to, epoch: r.assignment.epoch, reason }, "promoted");
      this.onPromotion({ shard: from.shard, from: from.owner, to, epoch: r.assignment.epoch, reason });
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
      masterTenureMs: this.clock.now() - this.tenureStart,
    };
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
    if (!n || n.role !== "coreapp" || n.ageMs > this.timing.dbUnhealthyIntervalMs) return false;
    if (owners.has(id)) return false;
    if (!this.monitor.answeredWithin(id, this.timing.unhealthyIntervalMs)) return false;
    return this.monitor.lastReply(id)?.shard === null;
  }

  /** A healthy standby: registered and fresh, answering heartbeats, owning and serving nothing. */
  private pickStandby(): string | null {
    const owners = this.owners();
    return (
      this.view
        .all()
        .map((n) => n.id)
        .filter((id) => this.isStandby(id, owners))
        .sort((a, b) => (this.monitor.silenceMs(a) ?? 0) - (this.monitor.silenceMs(b) ?? 0) || a.localeCompare(b))[0] ?? null
    );
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, message);
  }
}

/** An AbortSignal that aborts when `p` settles. */
export function abortOn(p: Promise<unknown>): AbortSignal {
  const c = new AbortController();
  void p.finally(() => c.abort());
  return c.signal;
}
