import { spawn } from "node:child_process";

/** The environment variable through which the supervisor tells its child how often to pet it. */
export const PET_INTERVAL_ENV = "MC_WATCHDOG_PET_MS";

/** Options of `superviseWithWatchdog`. */
export interface WatchdogOptions {
  /** The child's command line after `node`: the CLI script and its arguments (without `--watchdog`). */
  readonly argv: readonly string[];
  /** Kill the child when its event loop has not petted for this long (ms), once it petted once. */
  readonly deadlineMs: number;
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
  let fired = false;
  child.on("message", () => (lastPet = performance.now()));
  // Check often enough that the kill lands within a small fraction of the deadline of the last pet.
  const check = setInterval(() => {
    if (fired || lastPet === null || performance.now() - lastPet <= o.deadlineMs) return;
    fired = true;
    o.log(`watchdog: child ${child.pid} missed its ${o.deadlineMs} ms deadline (last pet ${Math.round(performance.now() - lastPet)} ms ago); SIGKILL`);
    child.kill("SIGKILL");
  }, Math.max(5, Math.floor(o.deadlineMs / 20)));
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
