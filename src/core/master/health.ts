import type { NodeStatus } from "../ports/liveness.js";
import type { EndedTenure } from "../ports/transport.js";
import type { Timing } from "../timing.js";

/** What the primary master knows about one shard's owner when it judges it. */
export interface OwnerEvidence {
  /** The owner's liveness record, its age corrected for how long ago the list was read; null if absent. */
  readonly record: NodeStatus | null;
  /** Milliseconds since the owner last answered this (primary) master. */
  readonly ownSilenceMs: number;
  /** The same, as each running secondary master last published it, corrected for the record's age. */
  readonly secondarySilencesMs: readonly number[];
  /** How long the owner has kept answering that it does not serve this assignment; 0 if it does. */
  readonly notServingForMs: number;
  /** The owner's word that it gave this very assignment up (a heartbeat answer); else null. */
  readonly ended: EndedTenure | null;
  /** How long this master has been the primary master (since it acquired the master lease). */
  readonly masterTenureMs: number;
  /**
   * The owner's supervisor said its process exited and gave its leases back (an `ExitNotice`):
   * how it ended; absent or null otherwise.
   */
  readonly exited?: string | null;
}

/**
 * How long a new primary master waits before the store detector's evidence counts: two
 * `db_heartbeat_interval`s (one beat that may have come due while nobody could write, one to land).
 * Why: a master is often elected right after the store came back from an outage (the old primary
 * master lost its lease in it); then every record is old and some are missing (a Redis restart
 * without persistence) because the *store* was away, not the nodes. Judging at once would replace
 * healthy owners; waiting lets every live node write again. A crash that happened meanwhile is
 * still found after the wait, or sooner by the heartbeat detector, which this does not delay.
 */
export function storeEvidenceAfterMs(t: Timing): number {
  return 2 * t.dbHeartbeatIntervalMs;
}

/**
 * The judgement. `blamesOwner` says whether the owner itself failed (a detector fired, or its
 * application refused the promotion) rather than its store link (a lapsed lease it reported
 * itself): placement cools down and eventually holds out only owners that failed.
 */
export type Verdict =
  | { readonly healthy: true }
  | {
      readonly healthy: false;
      readonly reason: string;
      readonly blamesOwner: boolean;
      /**
       * True when the store detector decided, on the master's copy of the liveness records: worth a
       * fresh read before acting, since that copy is as old as the master's last read (a slow store
       * link makes it old; see ClusterView).
       */
      readonly fromRecords?: boolean;
    };

/**
 * The two failure detectors (docs/safety.md, "L1 bounded failover, L2 no false failover"), plus
 * three rules of ours, as a pure function:
 * - the owner's supervisor reported that its process exited (L3, docs/safety.md "Crash
 *   failover"): a dead process serves nothing, so it is replaced at once;
 * - the owner said it gave this assignment up (its tenure ended: the lease lapsed while it could
 *   not reach the store, or its application refused): it will never serve this epoch again, so
 *   waiting for a detector would only lengthen the outage — replaced at once;
 * - store-based: the owner's liveness record is older than `db_unhealthy_interval`, or missing —
 *   counted once this master has been primary for `storeEvidenceAfterMs` (see there);
 * - heartbeat-based: the owner has not answered the primary master for `unhealthy_interval`, and
 *   at least `heartbeat_quorum − 1` secondary masters (default one) agree;
 * - the owner itself says it is not serving its assignment, continuously for
 *   `unhealthy_interval + leaseTtl` (it may legitimately wait up to one lease TTL for the previous
 *   owner to let go, and then gets the ordinary tolerance): it cannot reach the store, or its
 *   application refused to start.
 */
export function judgeOwner(e: OwnerEvidence, t: Timing): Verdict {
  // A process known dead serves nothing (L3): replaced at once; its lease was given back first.
  if (e.exited) return { healthy: false, reason: `its supervisor saw the process exit (${e.exited})`, blamesOwner: true };
  if (e.ended !== null)
    return { healthy: false, reason: `the owner gave up this assignment: ${e.ended.reason}`, blamesOwner: e.ended.refused };
  if (e.masterTenureMs >= storeEvidenceAfterMs(t)) {
    if (!e.record) {
      return { healthy: false, reason: "no liveness record (the node left or was never registered)", blamesOwner: true, fromRecords: true };
    }
    if (e.record.ageMs > t.dbUnhealthyIntervalMs) {
      return {
        healthy: false,
        reason: `store detector: liveness record ${Math.round(e.record.ageMs)} ms old`,
        blamesOwner: true,
        fromRecords: true,
      };
    }
  }
  const agreeing = e.secondarySilencesMs.filter((s) => s >= t.unhealthyIntervalMs).length;
  if (e.ownSilenceMs >= t.unhealthyIntervalMs && agreeing >= (t.heartbeatQuorum ?? 2) - 1) {
    return {
      healthy: false,
      reason: `heartbeat detector: silent ${Math.round(e.ownSilenceMs)} ms to the primary master and to ${agreeing} secondary master(s)`,
      blamesOwner: true,
    };
  }
  if (e.notServingForMs >= t.unhealthyIntervalMs + t.leaseTtlMs) {
    return { healthy: false, reason: `not serving its assignment for ${Math.round(e.notServingForMs)} ms`, blamesOwner: true };
  }
  return { healthy: true };
}
