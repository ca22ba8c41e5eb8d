import { PET_INTERVAL_ENV } from "./supervisor.js";

/**
 * The child side of the watchdog: when this process runs under `multiconnect start --watchdog`,
 * pets the supervisor from the event loop every interval it was given, so a frozen event loop stops
 * the petting. If the supervisor dies, this process dies too (hard, like the supervisor's own kill
 * would): a node must never keep running unwatched after the operator asked for a watchdog.
 * Does nothing when not supervised.
 */
export function petWatchdogIfSupervised(): void {
  const ms = Number(process.env[PET_INTERVAL_ENV]);
  if (!process.send || !Number.isFinite(ms) || ms <= 0) return;
  const pet = () => process.send?.({ type: "pet" });
  pet();
  setInterval(pet, ms);
  process.on("disconnect", () => process.kill(process.pid, "SIGKILL"));
}
