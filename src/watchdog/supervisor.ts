import { spawn } from "node:child_process";

/** The environment variable through which the supervisor tells its child how often to pet it. */
export const PET_INTERVAL_ENV = "MC_WATCHDOG_PET_MS";

/** The child's message to the supervisor (src/watchdog/pet.ts). */
export interface Pet {
  readonly type: "pet";
  /** Milliseconds left before the child's open shard tenure must be closed, or null with none. */
  readonly tenureRemainingMs: number | null;
}

/** Options of `superviseWithWatchdog`. */
export interface WatchdogOptions {
  /** The child's command line after `node`: the CLI script and its arguments (without `--watchdog`). */
  readonly argv: readonly string[];
  /** Kill the child when its event loop has not petted for this long (ms), once it petted once. */
  readonly deadlineMs: number;
  /**
   * How long past a reported tenure deadline the child may take to report the tenure closed before
   * it is killed: less than the lease's safety margin (the store expires the lease at least one
   * margin after that deadline), and enough for a running event loop to demote and pet.
   */
  readonly tenureGraceMs: number;
  /** Where the supervisor writes what it does (never secrets). */
  readonly log: (line: string) => void;
}

/**
 * The opt-in watchdog of docs/reliability.md, in the spirit of Patroni's: a small supervisor
 * process that runs the node as its child and SIGKILLs it when the child's event loop stops petting
 * for `deadlineMs`. Why a separate process: a node frozen by SIGSTOP, a long GC pause or a stalled VM
 * runs no code at all — no timer inside it can stop it from holding its upstream connection open
 * after its lease lapsed; only another process can, and SIGKILL makes the kernel close that socket.
 *
 * Two deadlines, whichever comes first:
 * - the pet deadline: no pet for `deadlineMs` (see deadline.ts for why that lands before the lease
 *   can lapse while renewals succeed);
 * - the tenure deadline: the last pet said the coreapp's shard tenure had `tenureRemainingMs` left,
 *   that time plus `tenureGraceMs` has passed, and no pet since said it closed. This covers a freeze
 *   that starts while renewals are already failing (the store unreachable): then the lease's
 *   deadline comes sooner than a pet deadline measured from the freeze. A live child demotes at that
 *   deadline and pets at once, so it is killed only if closing its tenure takes longer than the grace.
 *   The estimate is late by the pet's IPC delay only, which the grace (below the margin) absorbs.
 *
 * Resolves with the exit code the supervisor should exit with: the child's own code, or 70 when
 * the watchdog fired. SIGTERM and SIGINT are passed on to the child.
 */
export function superviseWithWatchdog(o: WatchdogOptions): Promise<number> {
  const petMs = Math.max(10, Math.floor(o.deadlineMs / 4));
  const child = spawn(process.execPath, [...o.argv], {
    stdio: ["inherit", "inherit", "inherit", "ipc"],
    env: { ...process.env, [PET_INTERVAL_ENV]: String(petMs) },
  });
  let lastPet: number | null = null;
  let tenureDeadline: number | null = null;
  let fired = false;
  child.on("message", (m: Pet) => {
    lastPet = performance.now();
    if (typeof m.tenureRemainingMs !== "number") tenureDeadline = null;
    // A renewal moves the deadline later (remaining > 0); once it has passed (0), later pets must
    // not move it: the child's own deadline is gone, only "closed" (null) clears it.
    else if (m.tenureRemainingMs > 0 || tenureDeadline === null) tenureDeadline = lastPet + m.tenureRemainingMs + o.tenureGraceMs;
  });
  const fire = (why: string) => {
    fired = true;
    o.log(`watchdog: child ${child.pid} ${why}; SIGKILL`);
    child.kill("SIGKILL");
  };
  // Check often enough that the kill lands within a small fraction of the deadline, and of the grace.
  const check = setInterval(
    () => {
      const now = performance.now();
      if (fired || lastPet === null) return;
      if (now - lastPet > o.deadlineMs) fire(`missed its ${o.deadlineMs} ms deadline (last pet ${Math.round(now - lastPet)} ms ago)`);
      else if (tenureDeadline !== null && now > tenureDeadline)
        fire(`is still in its shard tenure ${Math.round(now - tenureDeadline + o.tenureGraceMs)} ms past the lease's deadline`);
    },
    Math.max(2, Math.min(Math.floor(o.deadlineMs / 20), Math.floor(o.tenureGraceMs / 4))),
  );
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  process.on("SIGTERM", forward("SIGTERM"));
  process.on("SIGINT", forward("SIGINT"));
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      clearInterval(check);
      resolve(fired ? 70 : (code ?? (signal ? 1 : 0)));
    });
  });
}
