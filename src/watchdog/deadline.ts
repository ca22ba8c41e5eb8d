import { deriveTiming, type ClusterSettings } from "../core/timing.js";

/**
 * The watchdog's default deadline for a cluster's settings: lease TTL − renew interval − 2 × margin.
 * Why: while the event loop runs and the store answers, a renewal is sent at least every renew
 * interval, so the shard lease's store expiry is at least (last pet − renew interval + TTL); killing
 * at (last pet + deadline) lands 2 × margin before that, leaving one margin for the kill itself and
 * one for timer lateness. The store's own minimum TTL (etcd) only lengthens the real lease, so the
 * settings alone give the conservative value. A freeze that starts while renewals are already
 * failing is covered by the tenure deadline instead (supervisor.ts), which the child's pets give from
 * its lease itself. The settings here are the config file's: a live change of the settings moves
 * this deadline only at the next start, and the tenure deadline never depends on it.
 */
export function watchdogDeadlineMs(settings: ClusterSettings): number {
  const t = deriveTiming(settings);
  return Math.max(20, t.leaseTtlMs - t.renewIntervalMs - 2 * t.safetyMarginMs);
}
