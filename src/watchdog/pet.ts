import { monotonicMs, type Pet } from "./supervisor.js";

/** What the pets report about the node's shard tenure (a coreapp; other roles hold none). */
export interface TenureSource {
  /** Milliseconds left before the open tenure's lease deadline, or null with no tenure. */
  tenureRemainingMs(): number | null;
  /** Milliseconds left before another node could be given the shard, or null with no tenure (see `ShardOwner.tenureLapseMs`). */
  tenureLapseMs(): number | null;
  /** True while the node may act as a primary soon or now (see `ShardOwner.atRisk`). */
  atRisk(): boolean;
}

/**
 * The child side of the watchdog: pets the supervisor (which gave `intervalMs`, see `takeSupervision`)
 * from the event loop every interval, so a frozen event loop stops the petting. Each pet also
 * carries how long the coreapp's shard tenure may still last and how long until another node could
 * be given the shard (`tenure`), so the supervisor can kill a process still in its tenure between
 * the two — a freeze that starts while renewals are already failing — and whether the process is
 * at risk at all: a standby that holds no tenure and is not named for one may miss pets (a starved
 * host) without being killed.
 * Returns a function that pets at once: call it the moment the risk changes (the map names the
 * coreapp, before it takes the lease; the tenure opens; it closes), so the supervisor counts from
 * then instead of from the next interval.
 *
 * If the supervisor dies, this process dies too (hard, like the supervisor's own kill would): a
 * node must never keep running unwatched after the operator asked for a watchdog.
 */
export function petSupervisor(intervalMs: number, tenure?: TenureSource): () => void {
  // Without a tenure source (a role holding no shard) every pet counts: at risk, as before there was one.
  const pet = () =>
    process.send?.({
      type: "pet",
      sentAtMs: monotonicMs(),
      tenureRemainingMs: tenure?.tenureRemainingMs() ?? null,
      tenureLapseMs: tenure?.tenureLapseMs() ?? null,
      atRisk: tenure?.atRisk() ?? true,
    } satisfies Pet);
  pet();
  setInterval(pet, intervalMs);
  process.on("disconnect", () => process.kill(process.pid, "SIGKILL"));
  return pet;
}
