import { PET_INTERVAL_ENV, type Pet } from "./supervisor.js";

/** What the pets report about the node's shard tenure (a coreapp; other roles hold none). */
export interface TenureSource {
  /** Milliseconds left before the open tenure's lease deadline, or null with no tenure. */
  tenureRemainingMs(): number | null;
}

/**
 * The child side of the watchdog: when this process runs under `multiconnect start --watchdog`,
 * pets the supervisor from the event loop every interval it was given, so a frozen event loop stops
 * the petting. Each pet also carries how long the coreapp's shard tenure may still last
 * (`tenure`), so the supervisor can kill a process that is still in its tenure when the lease's
 * deadline passes — a freeze that starts while renewals are already failing. Returns a function
 * that pets at once (call it when the tenure closes, so the supervisor learns it without waiting
 * for the next interval), or null when not supervised.
 *
 * If the supervisor dies, this process dies too (hard, like the supervisor's own kill would): a
 * node must never keep running unwatched after the operator asked for a watchdog.
 */
export function petWatchdogIfSupervised(tenure?: TenureSource): (() => void) | null {
  const ms = Number(process.env[PET_INTERVAL_ENV]);
  if (!process.send || !Number.isFinite(ms) || ms <= 0) return null;
  const pet = () => process.send?.({ type: "pet", tenureRemainingMs: tenure?.tenureRemainingMs() ?? null } satisfies Pet);
  pet();
  setInterval(pet, ms);
  process.on("disconnect", () => process.kill(process.pid, "SIGKILL"));
  return pet;
}
