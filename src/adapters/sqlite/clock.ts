import { readFileSync } from "node:fs";

/**
 * The SQLite store's clock. Every process that opens the database file runs on this machine, so the
 * store's clock is the machine's CLOCK_MONOTONIC (shared by all its processes, immune to wall-clock
 * jumps), tagged with the kernel's boot id: timestamps written before a reboot are recognised as
 * such and treated as long past.
 */
export function storeNowMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/** This boot's id, from the kernel; a constant where the kernel does not expose one. */
export function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "unknown-boot";
  }
}
