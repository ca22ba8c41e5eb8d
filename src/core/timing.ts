import { ConfigError } from "./errors.js";
import type { StoreCapabilities } from "./ports/store.js";

/**
 * The four cluster settings (docs/configuration.md), in milliseconds, and every timing the algorithms derive
 * from them. This file is the one place where timing is decided; each rule carries its reason.
 */
export interface ClusterSettings {
  /** Every master heartbeats every coreapp this often (default 5 s). */
  readonly heartbeatIntervalMs: number;
  /** A primary coreapp silent this long to the primary master and one secondary master is unhealthy (default 30 s). */
  readonly unhealthyIntervalMs: number;
  /** Every node writes its liveness record this often (default 60 s). */
  readonly dbHeartbeatIntervalMs: number;
  /** A primary coreapp whose liveness record is older than this is unhealthy (default 120 s). */
  readonly dbUnhealthyIntervalMs: number;
  /**
   * How many masters, the primary included, must have heard nothing from a primary coreapp for
   * `unhealthy_interval` before the heartbeat detector declares it unhealthy (default 2: the
   * primary master and one secondary, as in the model product). With fewer masters running than
   * this, only the store-based detector acts. A higher quorum resists a partition that isolates a
   * coreapp from some masters only; it needs that many masters running.
   */
  readonly heartbeatQuorum?: number;
  /**
   * Failsafe mode (docs/safety.md, "Failsafe"): 0 (the default) turns it off; a positive value
   * turns it on and is the longest a primary coreapp may serve on the masters' promises while it
   * cannot reach the store, counted from its last liveness record the store accepted. A master that
   * is not among those a primary asks waits this long (plus a tenth for clock-rate drift) past that
   * primary's last liveness record before it replaces it, so the bound also caps a failover that a
   * master unknown to the primary must carry out.
   */
  readonly failsafeMaxMs?: number;
}

/** The model product's intervals: heartbeats every 5 s (unhealthy after 30 s), store liveness every 60 s (unhealthy after 120 s). */
export const DEFAULT_SETTINGS: ClusterSettings = {
  heartbeatIntervalMs: 5_000,
  unhealthyIntervalMs: 30_000,
  dbHeartbeatIntervalMs: 60_000,
  dbUnhealthyIntervalMs: 120_000,
};

/** Derived timings. */
export interface Timing extends ClusterSettings {
  /**
   * TTL of the master lease and of each shard ownership lease =
   * min(unhealthy − heartbeat, db_unhealthy). Why:
   * - a dead primary's ownership lease must have lapsed by the time either detector declares it
   *   unhealthy, so that promotion never waits on the lease after detection (L1);
   * - a live primary cut off from the store (only) stops at its lease's local deadline, at most
   *   ttl − margin after the cut, and says so in its next heartbeat answer, at most one
   *   `heartbeat_interval` later; the primary master then replaces it at once. Keeping the ttl a
   *   heartbeat interval below `unhealthy_interval` makes that path no slower than the heartbeat
   *   detector, so one bound covers both (see `failoverBoundMs`).
   */
  readonly leaseTtlMs: number;
  /**
   * Leases are renewed every ttl/3, counted from each renewal's send time (lease-holder.ts), so two
   * renewals in a row may fail before the lease is at risk, and one renewal may take up to
   * min(ttl − margin − interval, (ttl − margin) / 2) ≈ 0.45 × ttl of store round trips.
   */
  readonly renewIntervalMs: number;
  /**
   * A holder stops acting at (send time of its last successful renewal + ttl − margin). The store
   * stamped the renewal no earlier than it was sent, so the holder's deadline precedes the store's
   * expiry by at least the margin, which absorbs timer lateness and clock-rate drift.
   * margin = max(ttl/10, 20 ms).
   */
  readonly safetyMarginMs: number;
  /**
   * How often the primary master evaluates shard health from what it already knows (no store
   * access): max(10 ms, min(heartbeat, unhealthy/50)). Detection lags silence by at most one tick.
   */
  readonly evaluateTickMs: number;
  /**
   * How long a master waits for one heartbeat's answer before it gives the call up: unhealthy
   * (and at least one heartbeat interval). The verdict does not depend on it: silence is counted
   * from when the newest *answered* heartbeat was sent (HeartbeatMonitor), so an answer that comes
   * late counts as that late and can never make a silent coreapp look healthier. The timeout only
   * bounds the calls in flight (unhealthy / heartbeat per coreapp and master). It was unhealthy / 3:
   * on a starved host (load 20-30 on 2 cores) every answer then came after it, each was dropped with
   * its connection, every new heartbeat paid a new connection again, and for 45 s no standby counted
   * as answering — the cluster never formed (docs/reliability.md, finding 9).
   */
  readonly heartbeatTimeoutMs: number;
  /** How often masters and coreapps write liveness: min(heartbeat, db_heartbeat) for masters. */
  readonly masterBeatIntervalMs: number;
  /** While waiting for a previous owner to release, a promoted coreapp retries acquire this often. */
  readonly handoverPollMs: number;
  /**
   * Failsafe: how long a master's promise lasts, from when the master received the request = the
   * lease TTL. A promise is the master's word that it will not reassign the shard before then; the
   * coreapp counts it from before it sent the request, less `safetyMarginMs` for clock-rate drift.
   */
  readonly failsafePromiseMs: number;
}

/**
 * The largest `heartbeat_quorum`. The heartbeat detector acts only while that many masters run, so
 * a quorum above any real number of masters would switch it off without a word, leaving only the
 * slower store detector.
 */
export const MAX_HEARTBEAT_QUORUM = 15;

/**
 * Rejects unsafe or meaningless settings with a `ConfigError` naming the key and the reason. The
 * one check for both the config file and live changes (`settings set`, the admin API).
 */
export function validateSettings(s: ClusterSettings, keyPrefix = "settings"): void {
  const positive: [Exclude<keyof ClusterSettings, "heartbeatQuorum" | "failsafeMaxMs">, string][] = [
    ["heartbeatIntervalMs", "heartbeat_interval"],
    ["unhealthyIntervalMs", "unhealthy_interval"],
    ["dbHeartbeatIntervalMs", "db_heartbeat_interval"],
    ["dbUnhealthyIntervalMs", "db_unhealthy_interval"],
  ];
  for (const [field, key] of positive) {
    const v = s[field];
    if (!Number.isFinite(v) || v < 10) throw new ConfigError(`${keyPrefix}.${key}`, `must be at least 10 ms, got ${v}`);
  }
  const failsafe = s.failsafeMaxMs ?? 0;
  if (!Number.isFinite(failsafe) || failsafe < 0) {
    throw new ConfigError(`${keyPrefix}.failsafe_max`, `must be 0 (failsafe off) or a positive duration, got ${failsafe}`);
  }
  if (failsafe > 0 && failsafe < s.dbHeartbeatIntervalMs + s.unhealthyIntervalMs) {
    throw new ConfigError(
      `${keyPrefix}.failsafe_max`,
      `must be 0 (failsafe off) or at least db_heartbeat_interval + unhealthy_interval (${s.dbHeartbeatIntervalMs + s.unhealthyIntervalMs} ms), ` +
        `got ${failsafe} ms: it is counted from a coreapp's last liveness record, so a shorter one would end failsafe about when the lease does`,
    );
  }
  const quorum = s.heartbeatQuorum ?? 2;
  if (!Number.isInteger(quorum) || quorum < 2 || quorum > MAX_HEARTBEAT_QUORUM) {
    throw new ConfigError(
      `${keyPrefix}.heartbeat_quorum`,
      `must be an integer from 2 (the primary master and one secondary) to ${MAX_HEARTBEAT_QUORUM}, got ${quorum}`,
    );
  }
  if (s.unhealthyIntervalMs < 2 * s.heartbeatIntervalMs) {
    throw new ConfigError(
      `${keyPrefix}.unhealthy_interval`,
      `must be at least twice heartbeat_interval (${s.heartbeatIntervalMs} ms), got ${s.unhealthyIntervalMs} ms: ` +
        "a single lost or late heartbeat would otherwise look like a failure",
    );
  }
  if (s.dbUnhealthyIntervalMs < 2 * s.dbHeartbeatIntervalMs) {
    throw new ConfigError(
      `${keyPrefix}.db_unhealthy_interval`,
      `must be at least twice db_heartbeat_interval (${s.dbHeartbeatIntervalMs} ms), got ${s.dbUnhealthyIntervalMs} ms: ` +
        "a single slow liveness write would otherwise look like a failure",
    );
  }
}

/**
 * Derives every timing from validated settings and the store's limits: the lease TTL is raised to
 * the store's minimum and, where the store counts whole seconds, rounded up to one, so that the
 * TTL we compute deadlines with is the TTL the store really grants.
 *
 * Up, not down, is a trade-off. Down (but not below the minimum) would keep L ≤ unhealthy −
 * heartbeat, so a dead primary's lease would lapse before a detector fires; up lets etcd's failover
 * wait for the lease instead (2.5 s becomes 3 s at the benchmark's scaled settings, and with etcd's
 * ~0.5 s expiry sweep a kill just after a renewal is served again after up to ~3.5 s: its failover
 * p99 is 60–150 ms over the 3350 ms target there, docs/benchmarks.md item 1). But a renewal must complete within
 * about 0.45 × L (docs/reliability.md, "Sizing for a slow store link"), and down would leave 0.9 s
 * where the multi-host bed's slow store link takes up to 0.8 s per round trip. At the product's
 * defaults (L = 25 s) the two agree.
 */
export function deriveTiming(s: ClusterSettings, store: StoreCapabilities = {}): Timing {
  validateSettings(s);
  let leaseTtlMs = Math.max(Math.min(s.unhealthyIntervalMs - s.heartbeatIntervalMs, s.dbUnhealthyIntervalMs), store.minTtlMs ?? 0);
  if (store.ttlWholeSeconds) leaseTtlMs = Math.ceil(leaseTtlMs / 1000) * 1000;
  return {
    ...s,
    leaseTtlMs,
    renewIntervalMs: Math.floor(leaseTtlMs / 3),
    safetyMarginMs: Math.max(Math.floor(leaseTtlMs / 10), 20),
    evaluateTickMs: Math.max(10, Math.min(s.heartbeatIntervalMs, Math.floor(s.unhealthyIntervalMs / 50))),
    heartbeatTimeoutMs: Math.max(s.heartbeatIntervalMs, s.unhealthyIntervalMs),
    masterBeatIntervalMs: Math.min(s.heartbeatIntervalMs, s.dbHeartbeatIntervalMs),
    handoverPollMs: Math.max(5, Math.min(25, Math.floor(leaseTtlMs / 20))),
    failsafePromiseMs: leaseTtlMs,
  };
}

/** The cluster settings of a `Timing`, as a fresh object (a copy: `Timing` is live). */
export function settingsOf(t: ClusterSettings): ClusterSettings {
  const { heartbeatIntervalMs, unhealthyIntervalMs, dbHeartbeatIntervalMs, dbUnhealthyIntervalMs, heartbeatQuorum, failsafeMaxMs } = t;
  return {
    heartbeatIntervalMs,
    unhealthyIntervalMs,
    dbHeartbeatIntervalMs,
    dbUnhealthyIntervalMs,
    ...(heartbeatQuorum === undefined ? {} : { heartbeatQuorum }),
    ...(failsafeMaxMs === undefined ? {} : { failsafeMaxMs }),
  };
}

/**
 * Applies new cluster settings to a node's `Timing` in place. Every component of a node holds the
 * same `Timing` object and reads its fields when it needs them — never copies them — so the
 * detectors use new thresholds at their next tick and every lease its new TTL at its next renewal
 * (src/core/lease-holder.ts). Throws `ConfigError` (and changes nothing) for unsafe settings.
 */
export function applySettings(timing: Timing, s: ClusterSettings, store: StoreCapabilities = {}): void {
  Object.assign(timing, deriveTiming(s, store));
}

/**
 * The failover bound of L1: the longest time from a single fault of a primary coreapp — a crash,
 * a freeze, a cut from the masters, from the store, or from everything — to a healthy standby
 * serving its shard, when nothing else fails.
 * - detection, the slowest path that applies:
 *   - `unhealthy_interval` when at least `heartbeat_quorum` masters run (heartbeat detector), else
 *     `db_unhealthy_interval` (store detector) — plus one evaluation tick, plus one liveness read
 *     period for the store detector, plus the store's age resolution (a secondary master's view is
 *     aged by its liveness record; the primary's `ClusterView` sharpens a coarse store's ages by
 *     watching each beat, so this term is rarely spent in full, but it stays the bound);
 *   - a primary cut from the store only keeps answering heartbeats: it stops at its lease's local
 *     deadline (≤ ttl − margin after the cut), says so in its next answer (≤ one heartbeat
 *     interval) and is replaced at the next tick;
 * - the old owner's lease: lapsed by then when leaseTtl ≤ the detection window; otherwise (a store
 *   minimum such as etcd's 2 s) the wait is the lease TTL, plus how late the store acts on expiry;
 * - promotion: a compare-and-set, the new owner noticing it (notification or one poll), and an
 *   acquire: `promotionAllowanceMs` (default 250 ms, plus the store's poll interval if it polls).
 */
export function failoverBoundMs(t: Timing, masters: number, store: StoreCapabilities = {}, promotionAllowanceMs = 250): number {
  const detectors =
    (masters >= (t.heartbeatQuorum ?? 2)
      ? Math.min(t.unhealthyIntervalMs + t.evaluateTickMs, t.dbUnhealthyIntervalMs + t.masterBeatIntervalMs)
      : t.dbUnhealthyIntervalMs + t.masterBeatIntervalMs) + (store.ageResolutionMs ?? 0);
  const selfFenced = t.leaseTtlMs - t.safetyMarginMs + t.heartbeatIntervalMs + t.evaluateTickMs;
  const detection = Math.max(detectors, selfFenced);
  const leaseLapse = t.leaseTtlMs + (store.expiryLagMs ?? 0);
  return Math.max(detection, leaseLapse) + promotionAllowanceMs + (store.pollIntervalMs ?? 0);
}
