import { MulticonnectError } from "../errors.js";
import type { Lease } from "../ports/leases.js";
import type { LivenessStore, NodeStatus, RemovalOutcome } from "../ports/liveness.js";
import type { Logger } from "../ports/logger.js";
import type { ShardMapStore } from "../ports/shard-map.js";
import type { ClusterSettings } from "../timing.js";

/** Why a node's record was removed: pruned by the primary master, or forgotten by an operator. */
export type RemovalCause =
  { readonly kind: "retention"; readonly retentionMs: number } | { readonly kind: "forget"; readonly force: boolean; readonly by: string };

/**
 * Keeps promotions away from one node while its record is removed: the primary master's shard
 * manager (`ShardManager.removeRecord`). Without it, a standby promoted between the owner check and
 * the removal would own a shard with no record (webapps could not route to it until its next beat,
 * and the master would see its owner gone).
 */
export interface PromotionGate {
  /**
   * Runs `remove` (true: it removed the record; false: it kept it) with no promotion to `node` on
   * its way or starting until the node is out of the master's view; "in doubt", without running
   * it, while a promotion to `node` went unanswered and may still land.
   */
  removeRecord(node: string, remove: () => Promise<boolean>): Promise<"removed" | "kept" | "in doubt">;
  /**
   * A removal of `node`'s record, made on the beat `seq` under the master lease `master`, went
   * unanswered and may still land: no promotion may pick `node` until its record shows a later
   * beat (the removal, conditional on `seq`, can no longer land then), or until a tenure of another
   * master epoch (the removal was fenced by this one).
   */
  removalUnanswered(node: string, seq: number | undefined, master: Lease): void;
}

/**
 * Record removals the store did not answer, each of which may still land until
 * - the record, as the primary master's view shows it, holds a beat later than the removal's `seq`:
 *   the removal removes only that beat, and a record's `seq` only grows. A *different* beat is not
 *   enough: the view, read every master beat, may show one older than the one the removal read;
 * - or a tenure of another master epoch runs: the removal was fenced by the epoch it was sent
 *   under. A removal without a `seq` (of a record written without one) waits for that.
 */
export class UnansweredRemovals {
  private readonly byNode = new Map<string, { readonly seq: number | undefined; readonly masterEpoch: number }>();

  /** A removal of `node`'s record, made on the beat `seq` and fenced by `master`, went unanswered. */
  add(node: string, seq: number | undefined, master: Lease): void {
    this.byNode.set(node, { seq, masterEpoch: master.epoch });
  }

  /** True while a removal of `record` may still land, for a master in the tenure of `tenureEpoch`. */
  mayLand(record: NodeStatus, tenureEpoch: number | null): boolean {
    const hold = this.byNode.get(record.id);
    if (!hold) return false;
    const later = hold.seq !== undefined && record.seq !== undefined && record.seq > hold.seq;
    if (!later && hold.masterEpoch === tenureEpoch) return true;
    this.byNode.delete(record.id);
    return false;
  }

  /**
   * A tenure of `epoch` begins: every removal sent under another epoch is fenced now, including
   * those of nodes this master will not see again (which `mayLand` would never drop).
   */
  beginTenure(epoch: number): void {
    for (const [node, hold] of this.byNode) if (hold.masterEpoch !== epoch) this.byNode.delete(node);
  }
}

/** A refused `forget`: the node is named as a shard's owner, or is live and `force` was not given. */
export class ForgetRefusedError extends MulticonnectError {
  constructor(message: string) {
    super("forget_refused", message);
  }
}

/**
 * Membership hygiene. Node ids are random per process, so every restart leaves the old id's
 * record behind; without cleanup `status` would grow with every restart. A record silent for
 * longer than `retentionMs` is removed by the primary master (`prune`), and an operator can remove
 * one at once (`forget`). A node the shard map names as an owner is never removed: its record
 * carries the address the webapps route to, and the master's failover must still see it silent.
 */
export class Membership {
  constructor(
    private readonly liveness: LivenessStore,
    private readonly shardMap: ShardMapStore,
    private readonly log: Logger,
    /**
     * A node whose record is older than `db_unhealthy_interval` (by the store's clock) is down: the
     * node's live `Timing`, read at each use so that a settings change applies.
     */
    private readonly settings: Pick<ClusterSettings, "dbUnhealthyIntervalMs">,
    /**
     * Told of every removal, after it happened, under the master lease that made it: the primary
     * master records it in the history, and the removal's caller waits for that.
     */
    private readonly onRemoved: (node: NodeStatus, cause: RemovalCause, master: Lease) => Promise<void>,
    private readonly promotions: PromotionGate,
  ) {}

  /**
   * Removes every node silent for longer than `configuredMs` (`node_retention`), and at least
   * 2 × the live `db_unhealthy_interval`, that no shard names as owner; returns the removed ids,
   * or "fenced" (and stops) once a removal found `master` no longer live. Run by the primary master
   * only, under its lease `master`. Throws `StoreUnavailableError`.
   *
   * The config file's check of that floor (src/config/load.ts) knows only the file's interval; a
   * live settings change can raise it past half the retention, and a node marked down a moment
   * ago (a long GC pause, a store blip) would then lose its record. So the floor is applied here,
   * against the interval in force.
   */
  async prune(configuredMs: number, master: Lease): Promise<string[] | "fenced"> {
    const retentionMs = Math.max(configuredMs, 2 * this.settings.dbUnhealthyIntervalMs);
    const removed: string[] = [];
    for (const n of await this.liveness.list()) {
      if (n.ageMs <= retentionMs) continue;
      const outcome = await this.remove(n, { kind: "retention", retentionMs }, master, async () => !(await this.isOwner(n.id)));
      if (outcome === "fenced") return "fenced";
      if (outcome === "removed") removed.push(n.id);
    }
    return removed;
  }

  /**
   * Removes one node, found by id or by name (a name must match exactly one record). Refused with
   * `ForgetRefusedError` for a shard's named owner, for a live node unless `force` (a live node
   * re-registers at its next beat), and when the node beat again while its removal was on its way.
   * Returns the removed record, or "fenced" when `master`, the lease of the primary master running
   * it, was no longer live when the removal reached the store (nothing removed: the next primary
   * master may have promoted the node meanwhile).
   */
  async forget(idOrName: string, force: boolean, by: string, master: Lease): Promise<NodeStatus | "fenced"> {
    const nodes = await this.liveness.list();
    const byId = nodes.find((n) => n.id === idOrName);
    const byName = nodes.filter((n) => n.name === idOrName);
    if (!byId && byName.length > 1) {
      throw new ForgetRefusedError(`${byName.length} nodes are named ${idOrName} (${byName.map((n) => n.id).join(", ")}); give the id`);
    }
    const node = byId ?? byName[0];
    if (!node) throw new ForgetRefusedError(`no node ${idOrName} is registered`);
    const outcome = await this.remove(node, { kind: "forget", force, by }, master, async () => {
      if (await this.isOwner(node.id)) {
        throw new ForgetRefusedError(`${node.id} is named as a shard's owner; switch the shard over first (multiconnect switchover)`);
      }
      if (node.ageMs <= this.settings.dbUnhealthyIntervalMs && !force) {
        throw new ForgetRefusedError(`${node.id} is live (seen ${Math.round(node.ageMs)} ms ago); stop it first, or pass --force`);
      }
      return true;
    });
    if (outcome === "fenced") return "fenced";
    if (outcome === "in doubt") {
      throw new ForgetRefusedError(
        `a promotion of ${node.id} went unanswered by the store and may still land; try again once the store answers`,
      );
    }
    if (outcome === "superseded") {
      throw new ForgetRefusedError(`${node.id} beat again while its removal was on its way, so nothing was removed; ask again`);
    }
    return node;
  }

  /**
   * The one place a node leaves the registry on someone else's decision. `decide` (true: remove)
   * and the removal run inside `removeRecord`, so that no promotion by this master lands between
   * the checks and the removal; the removal is fenced by the master lease, so that none by the next
   * primary master does either (a removal that reached the store after this master's tenure ended
   * would otherwise still land), and it removes only the beat `node` was read with, so that a
   * removal the store did not answer cannot land once the node beat again; the gate promotes the
   * node only once it sees such a beat (`removalUnanswered`).
   * "fenced": `master` was no longer live; "superseded": the node beat since; nothing was removed.
   * The history event comes after, outside the gate: it need not keep the node from promotion.
   */
  private async remove(
    node: NodeStatus,
    cause: RemovalCause,
    master: Lease,
    decide: () => Promise<boolean>,
  ): Promise<"removed" | "kept" | "in doubt" | Exclude<RemovalOutcome, "removed">> {
    let refused: Exclude<RemovalOutcome, "removed"> | null = null;
    const outcome = await this.promotions.removeRecord(node.id, async () => {
      if (!(await decide())) return false;
      let r: RemovalOutcome;
      try {
        r = await this.liveness.removeFenced(node.id, master, node.seq);
      } catch (error) {
        this.promotions.removalUnanswered(node.id, node.seq, master);
        throw error;
      }
      if (r !== "removed") refused = r;
      return r === "removed";
    });
    if (refused) return refused;
    if (outcome === "removed") {
      this.log.info(
        { removedNode: node.id, name: node.name, role: node.role, silentMs: Math.round(node.ageMs), cause },
        cause.kind === "retention" ? "removed a node silent for longer than node_retention" : "removed a node on request (forget)",
      );
      await this.onRemoved(node, cause, master);
    }
    return outcome;
  }

  /** True when the store's shard map names `node` as a shard's owner. */
  private async isOwner(node: string): Promise<boolean> {
    return (await this.shardMap.read()).some((a) => a.owner === node);
  }
}
