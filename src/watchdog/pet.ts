import { PET_INTERVAL_ENV, type Pet } from "./supervisor.js";

/** What the pets report about the node's shard tenure (a coreapp; other roles hold none). */
export interface TenureSource {
  /** Milliseconds left before the open tenure's lease deadline, or null with no tenure. */
  tenureRemainingMs(): number | null;
  /** True while the node may act as a primary soon or now (see `ShardOwner.atRisk`). */
  atRisk(): boolean;
}

/**
 * The child side of the watchdog: when this process runs under `multiconnect start --watchdog`,
 * pets the supervisor from the event loop every interval it was given, so a frozen event loop stops
 * the petting. Each pet also carries how long the coreapp's shard tenure may still last
 * (`tenure`), so the supervisor can kill a process that is still in its tenure when the lease's
 * deadline passes — a freeze that starts while renewals are already failing — and whether the
 * process is at risk at all: a standby that holds no tenure and is not named for one may miss pets
 * (a starved host) without being killed. Call the returned function the moment the risk begins
 * (the map names the coreapp, before it takes the lease), so the supervisor counts from then. Returns a function
 * that pets at once (call it when the tenure closes, so the supervisor learns it without waiting
 * for the next interval), or null when not supervised.
 *
 * If the supervisor dies, this process dies too (hard, like the supervisor's own kill would): a
 * node must never keep running unwatched after the operator asked for a watchdog.
 */
export function petWatchdogIfSupervised(tenure?: TenureSource): (() => void) | null {
  const ms = Number(process.env[PET_INTERVAL_ENV]);
  if (!process.send || !Number.isFinite(ms) || ms <= 0) return null;
  // Without a tenure source (a role holding no shard) every pet counts: at risk, as before there was one.
  const pet = () =>
    process.send?.({ type: "pet", tenureRemainingMs: tenure?.tenureRemainingMs() ?? null, atRisk: tenure?.atRisk() ?? true } satisfies Pet);
  pet();
  setInterval(pet, ms);
  process.on("disconnect", () => process.kill(process.pid, "SIGKILL"));
  return pet;
}
