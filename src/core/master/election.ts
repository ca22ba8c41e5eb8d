import { LeaseHolder, type LeaseTiming } from "../lease-holder.js";
import type { Clock } from "../ports/clock.js";
import { MASTER_LEASE, type LeaseStore } from "../ports/leases.js";
import type { Logger } from "../ports/logger.js";
import type { Wakeup } from "../wakeup.js";

/**
 * Master election: every master competes for the master lease; the holder is the primary master
 * for one tenure, whose lease epoch fences its shard-map writes. A master that is not primary
 * retries when the holder's lease would lapse (the store says when), so a dead primary is
 * replaced about one lease TTL after its last renewal — or at once when `wakeup` fires: a master
 * told that the primary master's process exited and its lease was given back (docs/safety.md,
 * "Crash failover") tries again without waiting for the lapse it was sleeping towards.
 */
export async function runElection(
  leases: LeaseStore,
  clock: Clock,
  self: string,
  timing: LeaseTiming,
  log: Logger,
  signal: AbortSignal,
  /** Runs for one tenure; must return when `holder.lost` resolves. */
  lead: (holder: LeaseHolder) => Promise<void>,
  wakeup?: Wakeup,
): Promise<void> {
  let backoff = 50;
  while (!signal.aborted) {
    let wait: number;
    // Taken before the attempt: a wake while the store answers still cuts the following sleep short.
    const woken = wakeup ? AbortSignal.any([signal, wakeup.signal]) : signal;
    try {
      const r = await LeaseHolder.acquire(leases, clock, MASTER_LEASE, self, timing, log);
      backoff = 50;
      if (r instanceof LeaseHolder) {
        // Stopped while the lease was being acquired: an abort listener added now would never fire.
        if (signal.aborted) {
          await r.release();
          return;
        }
        log.info({ epoch: r.lease.epoch }, "became primary master");
        const stop = () => void r.release();
        signal.addEventListener("abort", stop, { once: true });
        try {
          await lead(r);
        } finally {
          signal.removeEventListener("abort", stop);
          if (signal.aborted) await r.release();
        }
        log.warn({ epoch: r.lease.epoch, reason: await r.lost }, "no longer primary master");
        wait = 0;
      } else {
        // Come back just as the holder's lease would lapse; never sleep longer than a renewal period.
        wait = Math.min(Math.max(r.expiresInMs, 5), timing.renewIntervalMs);
      }
    } catch (error) {
      log.warn({ err: String(error) }, "master election: store unavailable; retrying");
      wait = backoff;
      backoff = Math.min(backoff * 2, timing.renewIntervalMs);
    }
    await clock.sleep(wait, woken);
  }
}
