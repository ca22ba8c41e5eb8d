import type { ClusterDocumentFollower } from "../cluster-document-follower.js";
import { ConfigError, StoreUnavailableError } from "../errors.js";
import type { LeaseHolder } from "../lease-holder.js";
import type { Clock } from "../ports/clock.js";
import type { ClusterDocument, ClusterDocumentInput, ClusterDocumentStore, PauseInput } from "../ports/cluster-document.js";
import type { HistoryEventInput, HistoryStore } from "../ports/history.js";
import type { Lease } from "../ports/leases.js";
import type { NodeStatus } from "../ports/liveness.js";
import type { Logger } from "../ports/logger.js";
import type { AdminCommand, AdminReply, SettingKey } from "../ports/transport.js";
import { validateSettings, type ClusterSettings } from "../timing.js";
import { API_ERRORS, NOT_PRIMARY_MASTER } from "../api-errors.js";
import { ForgetRefusedError } from "./membership.js";

/** A pause lasts this long unless the operator says otherwise or renews it: one hour. */
export const DEFAULT_PAUSE_MS = 3_600_000;

/**
 * The longest pause: seven days. Every pause ends by itself so that a forgotten one never turns
 * automatic failover off for good; a longer maintenance renews its pause (pauses again).
 */
export const MAX_PAUSE_MS = 7 * 24 * 3_600_000;

/**
 * Why `durationMs` cannot be a pause's length, or null when it can: a whole number of
 * milliseconds from 1 to {@link MAX_PAUSE_MS}. The one rule for the master, the CLI and the admin API.
 */
export function pauseLengthProblem(durationMs: number): string | null {
  if (Number.isNaN(durationMs) || durationMs < 1) return "must be at least 1 ms";
  if (durationMs > MAX_PAUSE_MS) {
    return `must be at most ${MAX_PAUSE_MS / 3_600_000}h (7 days), so that a forgotten pause ends by itself; pause again to renew`;
  }
  return Number.isInteger(durationMs) ? null : "must be a whole number of milliseconds";
}

/** Each settings key of the config file, and the field it sets. */
export const SETTING_FIELDS: Readonly<Record<SettingKey, keyof ClusterSettings>> = {
  heartbeat_interval: "heartbeatIntervalMs",
  unhealthy_interval: "unhealthyIntervalMs",
  db_heartbeat_interval: "dbHeartbeatIntervalMs",
  db_unhealthy_interval: "dbUnhealthyIntervalMs",
  heartbeat_quorum: "heartbeatQuorum",
  failsafe_max: "failsafeMaxMs",
};

/** What the control plane asks of the rest of the primary master about single nodes. */
export interface NodeCommands {
  /** Ends a coreapp's hold-out (placement); false when no coreapp of that name is held out. */
  clearHold(name: string): boolean;
  /**
   * Removes a node's record under the master lease (`Membership.forget`): "fenced" when the lease
   * was no longer live; throws `ForgetRefusedError` or `StoreUnavailableError`.
   */
  forget(idOrName: string, force: boolean, by: string, master: Lease): Promise<NodeStatus | "fenced">;
}

/** An event for the history, before the master adds its own id. */
export type HistoryNote = Omit<HistoryEventInput, "node">;

const fail = (code: number, message: string): AdminReply => ({ ok: false, error: { code, message } });

/** Thrown by a change to the cluster document that the document read makes pointless: answered with `reply`, nothing written. */
class Refusal extends Error {
  constructor(readonly reply: AdminReply) {
    super(reply.error?.message);
  }
}

/**
 * The primary master's side of the cluster document (src/core/ports/cluster-document.ts) and of
 * the history: it writes the document from the config file's values when the store has none,
 * carries out operator commands (settings, pause, resume, clear-hold) as compare-and-set writes
 * fenced by the master lease (S3), and appends what it did to the history; it hands `forget` to
 * the membership, which records its own removals. Every node — this one
 * included — applies a new document through its `ClusterDocumentFollower`.
 */
export class ControlPlane {
  /** Pauses this master has seen in force, to record the ones that end by themselves. */
  private seenPauses = new Map<string, PauseInput>();

  constructor(
    private readonly self: string,
    private readonly documents: ClusterDocumentStore,
    private readonly history: HistoryStore,
    private readonly follower: ClusterDocumentFollower,
    /** The config file's values: the first document of a cluster, and what a lost one is rewritten from. */
    private readonly seed: { readonly settings: ClusterSettings; readonly shardCount: number },
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly nodes: NodeCommands,
  ) {}

  /**
   * Run when this master becomes primary: writes the document from the config file's values if the
   * store has none (a new cluster, or a store that lost it), then applies the store's document.
   * Throws `StoreUnavailableError`; a conflict means another write landed first, which is fine.
   */
  async ensureDocument(lease: Lease): Promise<void> {
    if (!(await this.documents.read())) {
      const r = await this.documents.write(0, { settings: this.seed.settings, shardCount: this.seed.shardCount, pauses: [] }, lease);
      if (r.ok) {
        this.record(lease, {
          type: "settings_changed",
          shard: null,
          cause: "the cluster document was written from the config file (the store had none)",
          evidence: { settings: toKeys(this.seed.settings), shardCount: this.seed.shardCount },
          epochs: { master: lease.epoch, version: r.version },
        });
      }
    }
    await this.follower.refresh(true);
  }

  /** Carries out an operator command if this master holds the lease; 1017 otherwise. */
  async handle(lease: LeaseHolder | null, command: AdminCommand): Promise<AdminReply> {
    if (!lease?.held) return fail(NOT_PRIMARY_MASTER, "Not Primary Master");
    switch (command.op) {
      case "settings":
        return this.changeSettings(lease, command.settings, command.by);
      case "pause":
        return this.pause(lease, command.shard, command.reason, command.durationMs, command.by);
      case "resume":
        return this.resume(lease, command.shard, command.by);
      case "forget":
        try {
          const n = await this.nodes.forget(command.node, command.force, command.by, lease.lease);
          if (n === "fenced") {
            lease.abandon("fenced by the store (forget): the master lease is no longer ours");
            return fail(NOT_PRIMARY_MASTER, "Not Primary Master");
          }
          return { ok: true, removed: { id: n.id, name: n.name, role: n.role, silentMs: Math.round(n.ageMs) } };
        } catch (error) {
          if (error instanceof ForgetRefusedError) return fail(409, error.message);
          if (error instanceof StoreUnavailableError) return fail(API_ERRORS.STORE_UNAVAILABLE.code, error.message);
          throw error;
        }
      case "clear-hold": {
        if (!this.nodes.clearHold(command.node)) return fail(404, `${command.node} is not held out`);
        await this.recorded(lease.lease, {
          type: "hold_cleared",
          shard: null,
          cause: `cleared by ${command.by}`,
          evidence: { node: command.node },
          epochs: { master: lease.lease.epoch },
        });
        return { ok: true };
      }
    }
  }

  /**
   * Appends `note` to the history under `lease`, in the background: history must never hold up
   * failover. A failed append is logged; a fenced one means this master was deposed meanwhile, and
   * its successor records what it finds.
   */
  record(lease: Lease, note: HistoryNote): void {
    void this.recorded(lease, note);
  }

  /**
   * As `record`, but resolves once the event is stored (or its append failed, which is logged):
   * an operator command answers after its history event, so the caller reads it right away.
   */
  recorded(lease: Lease, note: HistoryNote): Promise<void> {
    return this.history.append({ ...note, node: this.self }, lease).then(
      (r) => (r.ok ? undefined : this.log.debug({ type: note.type }, "history append fenced: no longer primary master")),
      (error: unknown) => this.log.warn({ type: note.type, err: String(error) }, "history append failed"),
    );
  }

  /** Records the pauses that ended by themselves since the last call (once each). Cheap: no store access. */
  notePauseExpiries(lease: Lease): void {
    const active = new Map(this.follower.activePauses().map((p) => [pauseKey(p.shard), p]));
    for (const [key, p] of this.seenPauses) {
      if (active.has(key)) continue;
      this.record(lease, {
        type: "resumed",
        shard: p.shard,
        cause: "the pause ran out",
        evidence: { pausedBy: p.by, reason: p.reason },
        epochs: { master: lease.epoch },
      });
    }
    this.seenPauses = new Map([...active].map(([k, p]) => [k, { shard: p.shard, by: p.by, reason: p.reason, expiresInMs: p.expiresInMs }]));
  }

  private async changeSettings(lease: LeaseHolder, patch: Readonly<Partial<Record<SettingKey, number>>>, by: string): Promise<AdminReply> {
    let before: ClusterSettings | null = null;
    let after: ClusterSettings | null = null;
    const reply = await this.update(lease, (doc) => {
      const next: { -readonly [K in keyof ClusterSettings]: ClusterSettings[K] } = { ...doc.settings };
      for (const [key, value] of Object.entries(patch) as [SettingKey, number][]) next[SETTING_FIELDS[key]] = value;
      validateSettings(next);
      before = doc.settings;
      after = next;
      return { ...doc, settings: next };
    });
    if (reply.ok) {
      await this.recorded(lease.lease, {
        type: "settings_changed",
        shard: null,
        cause: `changed by ${by}`,
        evidence: { from: toKeys(before!), to: toKeys(after!) },
        epochs: { master: lease.lease.epoch, version: reply.version! },
      });
    }
    return reply;
  }

  private async pause(lease: LeaseHolder, shard: number | null, reason: string, durationMs: number, by: string): Promise<AdminReply> {
    const bad = this.badShard(shard);
    if (bad) return bad;
    const tooLong = pauseLengthProblem(durationMs);
    if (tooLong) return fail(400, `duration ${tooLong}`);
    const reply = await this.update(lease, (doc) => ({
      ...doc,
      pauses: [...keep(doc).filter((p) => p.shard !== shard), { shard, by, reason, expiresInMs: durationMs }],
    }));
    if (reply.ok) {
      await this.recorded(lease.lease, {
        type: "paused",
        shard,
        cause: reason || `paused by ${by}`,
        evidence: { by, durationMs },
        epochs: { master: lease.lease.epoch, version: reply.version! },
      });
      this.seenPauses.set(pauseKey(shard), { shard, by, reason, expiresInMs: durationMs });
    }
    return reply;
  }

  private async resume(lease: LeaseHolder, shard: number | null, by: string): Promise<AdminReply> {
    const bad = this.badShard(shard);
    if (bad) return bad;
    const reply = await this.update(lease, (doc) => {
      if (!doc.pauses.some((p) => p.shard === shard)) {
        throw new Refusal(fail(404, shard === null ? "automatic failover is not paused cluster-wide" : `shard ${shard} is not paused`));
      }
      return { ...doc, pauses: keep(doc).filter((p) => p.shard !== shard) };
    });
    if (!reply.ok) return reply;
    this.seenPauses.delete(pauseKey(shard));
    await this.recorded(lease.lease, {
      type: "resumed",
      shard,
      cause: `resumed by ${by}`,
      evidence: { by },
      epochs: { master: lease.lease.epoch, version: reply.version! },
    });
    return reply;
  }

  private badShard(shard: number | null): AdminReply | null {
    const count = this.follower.document?.document.shardCount ?? this.seed.shardCount;
    return shard === null || shard < count ? null : fail(400, `shard must be from 0 to ${count - 1}`);
  }

  /**
   * Read, change, compare-and-set under the master lease; a conflicting write by a previous
   * primary is retried twice on the newer document. A change the settings rules refuse is a 400
   * naming the key, and one that throws a `Refusal` is answered with its reply; nothing is written.
   */
  private async update(lease: LeaseHolder, change: (doc: ClusterDocument) => ClusterDocumentInput): Promise<AdminReply> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = await this.documents.read();
      const doc: ClusterDocument = current?.document ?? { settings: this.seed.settings, shardCount: this.seed.shardCount, pauses: [] };
      let input: ClusterDocumentInput;
      try {
        input = change(doc);
      } catch (error) {
        if (error instanceof ConfigError) return fail(400, error.message.replace(/^config: settings\./, ""));
        if (error instanceof Refusal) return error.reply;
        throw error;
      }
      if (!lease.held) break;
      const r = await this.documents.write(current?.version ?? 0, input, lease.lease);
      if (r.ok) {
        await this.follower.refresh(true).catch(() => {});
        return { ok: true, version: r.version };
      }
      if (r.reason === "fenced") {
        lease.abandon("fenced by the store: the master lease is no longer ours");
        break;
      }
    }
    return lease.held ? fail(409, "the cluster document kept changing; try again") : fail(NOT_PRIMARY_MASTER, "Not Primary Master");
  }
}

/** The pauses of a read document, to write back unchanged (their remaining time and start kept). */
function keep(doc: ClusterDocument): PauseInput[] {
  return doc.pauses.map((p) => ({
    shard: p.shard,
    by: p.by,
    reason: p.reason,
    expiresInMs: p.expiresInMs,
    ...(p.pausedAtMs === undefined ? {} : { pausedAtMs: p.pausedAtMs }),
  }));
}

function pauseKey(shard: number | null): string {
  return shard === null ? "cluster" : String(shard);
}

/** Settings in the config file's words, for the history and the CLI. */
export function toKeys(s: ClusterSettings): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, field] of Object.entries(SETTING_FIELDS)) {
    const v = s[field];
    if (v !== undefined) out[key] = v;
  }
  return out;
}
