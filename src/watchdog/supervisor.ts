import { spawn } from "node:child_process";
import type { NodeTokens } from "../nodes/held-leases.js";

/** The environment variable through which the supervisor tells its child how often to pet it. */
const PET_INTERVAL_ENV = "MC_WATCHDOG_PET_MS";

/** Set (to "1") in the environment of a child run by the supervisor: it reports its tokens over IPC. */
const SUPERVISED_ENV = "MC_SUPERVISED";

/** What the supervisor told its child through the environment. */
export interface Supervision {
  /** How often to pet the watchdog (ms), or null when the supervisor runs no watchdog. */
  readonly petIntervalMs: number | null;
}

/**
 * In the child, once at start: reads the supervisor's marks from the environment and removes them.
 * Environments are inherited, so a mark left in place would reach every process the application
 * spawns: a `multiconnect start` among them would take itself for a supervised child, run no
 * supervisor of its own, and send its tokens and pets to a parent that is not one. Returns null
 * when this process was not started by a supervisor (or has no IPC channel to it).
 */
export function takeSupervision(env: NodeJS.ProcessEnv = process.env, ipc: boolean = process.send !== undefined): Supervision | null {
  const supervised = env[SUPERVISED_ENV] === "1";
  const petMs = Number(env[PET_INTERVAL_ENV]);
  delete env[SUPERVISED_ENV];
  delete env[PET_INTERVAL_ENV];
  if (!supervised || !ipc) return null;
  return { petIntervalMs: Number.isFinite(petMs) && petMs > 0 ? petMs : null };
}

/** Milliseconds on the system's monotonic clock, the same in every process of the host (unlike `performance.now()`). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** The child's message to the supervisor (src/watchdog/pet.ts). */
export interface Pet {
  readonly type: "pet";
  /** When the child sent it (`monotonicMs()`): the times below count from then, not from its arrival. */
  readonly sentAtMs: number;
  /** Milliseconds left before the child's open shard tenure must be closed, or null with none. */
  readonly tenureRemainingMs: number | null;
  /**
   * Milliseconds left before another node could be given the shard (the store's earliest expiry of
   * the lease, or the end of the failsafe promises), or null with no tenure: at least one safety
   * margin after `tenureRemainingMs`.
   */
  readonly tenureLapseMs: number | null;
  /**
   * The child may act as a primary soon or now (a tenure open, or named for one). When the last pet
   * said false, a missed pet deadline is forgiven: a frozen standby holds nothing and can do no harm.
   */
  readonly atRisk: boolean;
}

/** The child's message to the supervisor whenever what it holds in the store changes (src/watchdog/tokens.ts). */
export interface TokensMessage {
  readonly type: "tokens";
  /** Everything the child holds now: its liveness record's id and its leases with their epochs. */
  readonly tokens: NodeTokens;
}

/** How the child ended, as the kernel reported it to the supervisor. */
export interface ChildExit {
  /** Its exit code, or null when a signal ended it. */
  readonly code: number | null;
  /** The signal that ended it, or null. */
  readonly signal: NodeJS.Signals | null;
  /** True when the watchdog killed it. */
  readonly byWatchdog: boolean;
  /** For logs and the history: "killed by SIGKILL (watchdog)", "exited with code 1". */
  readonly cause: string;
  /** When the kernel's exit notice reached the supervisor (performance.now()). */
  readonly at: number;
}

/** The watchdog's pet deadline (see `supervise`; the tenure deadline comes from the child's pets). */
export interface WatchdogDeadlines {
  /** Kill the child when its event loop has not petted for this long (ms), once it petted once. */
  readonly deadlineMs: number;
}

/** Options of `supervise`. */
export interface SupervisorOptions {
  /** The child's command line after `node`: the CLI script and its arguments. */
  readonly argv: readonly string[];
  /** The freeze watchdog (`--watchdog`), or absent for crash supervision only. */
  readonly watchdog?: WatchdogDeadlines;
  /** Where the supervisor writes what it does (never secrets). */
  readonly log: (line: string) => void;
  /**
   * Runs once the child is dead, when it ended without a clean shutdown (a signal, a non-zero exit
   * code, or leases still listed), with the last tokens it reported (null if it reported none).
   * The supervisor exits only after it settles.
   */
  readonly onDeath?: (tokens: NodeTokens | null, exit: ChildExit) => Promise<void>;
}

/** Options of `superviseWithWatchdog`. */
export interface WatchdogOptions extends WatchdogDeadlines {
  /** The child's command line after `node`: the CLI script and its arguments (without `--watchdog`). */
  readonly argv: readonly string[];
  /** Where the supervisor writes what it does (never secrets). */
  readonly log: (line: string) => void;
}

/** `supervise` with the freeze watchdog on and no crash release: the watchdog alone. */
export function superviseWithWatchdog(o: WatchdogOptions): Promise<number> {
  return supervise({ argv: o.argv, log: o.log, watchdog: { deadlineMs: o.deadlineMs } });
}

/**
 * The supervisor of `multiconnect start`: a small process that runs the node as its child.
 *
 * Crash supervision (the default): the child reports, over the IPC channel, every lease token as it
 * takes it (src/watchdog/tokens.ts). When the child dies — kill -9, an OOM kill, a crash — the
 * kernel tells its parent at once, and that exit notice proves the process holds no socket any
 * more; `onDeath` then gives its leases back and tells the masters (src/nodes/exit-release.ts), so
 * a standby serves within a fraction of a second instead of after the failure detectors' timeout
 * (docs/safety.md, "L3 crash failover"). A process that is only silent is never treated so.
 *
 * The watchdog (`--watchdog`, opt-in), in the spirit of Patroni's: SIGKILLs the child when its event
 * loop stops petting. Why a separate process: a node frozen by SIGSTOP, a long GC pause or a stalled
 * VM runs no code at all — no timer inside it can stop it from holding its upstream connection open
 * after its lease lapsed; only another process can, and SIGKILL makes the kernel close that socket.
 * Two deadlines, whichever comes first:
 * - the pet deadline: no pet for `deadlineMs` (see deadline.ts for why that lands before the lease
 *   can lapse while renewals succeed), while the last pet said the child is at risk — in a tenure,
 *   or named for one (it pets at once when named, before it takes the lease, so the deadline counts
 *   from before any lease it can hold). A standby that is neither is left alone when it misses pets:
 *   frozen or starved, it holds nothing and opens nothing, and killing it only made a starved host's
 *   cluster lose its standbys (docs/reliability.md, finding 11);
 * - the tenure deadline: the last pet said the coreapp's shard tenure had `tenureRemainingMs` left
 *   and another node could be given the shard after `tenureLapseMs`; halfway between the two has
 *   passed, and no pet since said the tenure closed. This covers a freeze that starts while renewals
 *   are already failing (the store unreachable): then the lease's deadline comes sooner than a pet
 *   deadline measured from the freeze. A live child demotes at its deadline and pets at once, so it
 *   is killed only if closing its tenure takes longer than the grace (half the gap, the lease's
 *   safety margin at least). Both times come from the child's own lease, so a change of the live
 *   settings never makes the kill late, as a grace derived from the config file would. Both count
 *   from the pet's send time (the host's monotonic clock), so its time in the pipe is not lost;
 *   the timer's lateness and the kill itself are what the other half of the gap absorbs.
 * Once the watchdog's kill has landed the child is dead like any other, and `onDeath` runs too.
 *
 * Resolves with the exit code the supervisor should exit with: the child's own code, or 70 when
 * the watchdog fired. SIGTERM and SIGINT are passed on to the child. The child dies with its
 * supervisor (src/watchdog/tokens.ts): a node never keeps running unwatched, and `kill -9` of the
 * supervisor stops the node as it did before supervision existed — by the timeout path.
 */
export function supervise(o: SupervisorOptions): Promise<number> {
  const w = o.watchdog;
  const petMs = w ? Math.max(10, Math.floor(w.deadlineMs / 4)) : null;
  const child = spawn(process.execPath, [...o.argv], {
    stdio: ["inherit", "inherit", "inherit", "ipc"],
    env: { ...process.env, [SUPERVISED_ENV]: "1", ...(petMs === null ? {} : { [PET_INTERVAL_ENV]: String(petMs) }) },
  });
  let tokens: NodeTokens | null = null;
  let lastPet: number | null = null;
  let atRisk = true;
  let tenureDeadline: number | null = null;
  let tenureTimer: NodeJS.Timeout | undefined;
  let fired = false;
  child.on("message", (m: Pet | TokensMessage) => {
    if (m?.type === "tokens") {
      tokens = m.tokens;
      return;
    }
    if (m?.type !== "pet" || !w) return;
    // Counted from the send: a pet that waited in the pipe or for this event loop says less time is left.
    const inTransit = typeof m.sentAtMs === "number" ? Math.max(0, monotonicMs() - m.sentAtMs) : 0;
    lastPet = performance.now() - inTransit;
    atRisk = m.atRisk !== false;
    if (typeof m.tenureRemainingMs !== "number") tenureDeadline = null;
    // A renewal moves the deadline later (remaining > 0); once it has passed (0), later pets must
    // not move it: the child's own deadline is gone, only "closed" (null) clears it.
    else if (m.tenureRemainingMs > 0 || tenureDeadline === null) {
      const graceMs = typeof m.tenureLapseMs === "number" ? Math.max(0, (m.tenureLapseMs - m.tenureRemainingMs) / 2) : 0;
      tenureDeadline = lastPet + m.tenureRemainingMs + graceMs;
    }
    clearTimeout(tenureTimer);
    if (tenureDeadline !== null) tenureTimer = setTimeout(checkTenure, Math.max(0, tenureDeadline - performance.now()) + 1);
  });
  const fire = (why: string) => {
    fired = true;
    o.log(`watchdog: child ${child.pid} ${why}; SIGKILL`);
    child.kill("SIGKILL");
  };
  // The tenure deadline has a timer of its own, set at each pet: its grace can be a few ms.
  function checkTenure(): void {
    const now = performance.now();
    if (fired || tenureDeadline === null) return;
    if (now >= tenureDeadline)
      fire(`is still in its shard tenure ${Math.round(now - tenureDeadline)} ms past the grace after the lease's deadline`);
    else tenureTimer = setTimeout(checkTenure, tenureDeadline - now + 1);
  }
  // Check often enough that the kill lands within a small fraction of the pet deadline.
  const check = w
    ? setInterval(
        () => {
          const now = performance.now();
          if (fired || lastPet === null) return;
          if (atRisk && now - lastPet > w.deadlineMs)
            fire(`missed its ${w.deadlineMs} ms deadline (last pet ${Math.round(now - lastPet)} ms ago)`);
        },
        Math.max(2, Math.floor(w.deadlineMs / 20)),
      )
    : undefined;
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  process.on("SIGTERM", forward("SIGTERM"));
  process.on("SIGINT", forward("SIGINT"));
  // 'close' comes after 'exit' once the IPC channel is drained too: a token message the child sent
  // just before it died is read before the release. Bounded, in case something else holds the pipe.
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      const at = performance.now();
      clearInterval(check);
      clearTimeout(tenureTimer);
      void (async () => {
        await Promise.race([closed, new Promise((r) => setTimeout(r, 100))]);
        const exit: ChildExit = {
          code,
          signal,
          byWatchdog: fired,
          at,
          cause: signal ? `killed by ${signal}${fired ? " (watchdog)" : ""}` : `exited with code ${code ?? "?"}`,
        };
        const held = (tokens as NodeTokens | null)?.leases.length ?? 0;
        if (o.onDeath && (signal !== null || code !== 0 || held > 0)) {
          await o.onDeath(tokens, exit).catch((e: unknown) => o.log(`supervisor: release after the child's death failed: ${String(e)}`));
        }
        resolve(fired ? 70 : (code ?? (signal ? 1 : 0)));
      })();
    });
  });
}
