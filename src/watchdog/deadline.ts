import { deriveTiming, type ClusterSettings } from "../core/timing.js";

/**
 * The watchdog's default deadline for a cluster's settings: lease TTL − renew interval − 2 × margin.
 * Why: while the event loop runs and the store answers, a renewal is sent at least every renew
 * interval, so the shard lease's store expiry is at least (last pet − renew interval + TTL); killing
 * at (last pet + deadline) lands 2 × margin before that, leaving one margin for the kill itself and
 * one for timer lateness. The store's own minimum TTL (etcd) only lengthens the real lease, so the
 * settings alone give the conservative value. It does not cover a freeze that starts while renewals
 * are already failing (see docs/reliability.md).
 */
export function watchdogDeadlineMs(settings: ClusterSettings): number {
  const t = deriveTiming(settings);
  return Math.max(20, t.leaseTtlMs - t.renewIntervalMs - 2 * t.safetyMarginMs);
}
