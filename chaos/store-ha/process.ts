import { spawn, type ChildProcess } from "node:child_process";
import { openSync } from "node:fs";
import { signalServer } from "../cluster.js";
import { waitAccepting } from "../backends.js";

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One server process of a replicated store (an etcd member, a Redis server or Sentinel, a
 * PostgreSQL postmaster), in a process group of its own so that kill -9 and SIGSTOP reach every
 * process of it. `start()` again after `kill9()` runs the same command line on the same data, or
 * `args` given to `start()` (a Redis primary restarted as a replica).
 */
export class StoreProcess {
  private child: ChildProcess | null = null;

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly cmd: string,
    private args: readonly string[],
    private readonly log: string,
    private readonly user?: { readonly uid: number; readonly gid: number },
  ) {}

  /** The process group as a negative pid, or null while not running. */
  get pid(): number | null {
    return this.child?.pid && this.running ? -this.child.pid : null;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(args?: readonly string[]): Promise<void> {
    if (args) this.args = args;
    const out = openSync(this.log, "a");
    const child = spawn(this.cmd, [...this.args], { stdio: ["ignore", out, out], detached: true, ...this.user });
    this.child = child;
    live.add(child);
    child.once("exit", () => live.delete(child));
    await waitAccepting(this.port, this.name);
  }

  /** SIGKILL to every process of it (`signalServer`); resolves once the leader has exited. */
  async kill9(): Promise<void> {
    const c = this.child;
    if (!c || !this.running) return;
    const exited = new Promise((r) => c.once("exit", r));
    signalServer(-c.pid!, "SIGCONT");
    signalServer(-c.pid!, "SIGKILL");
    await exited;
    await sleep(50); // the group's other processes go before a restart binds the same port
  }

  /** SIGSTOP (true) or SIGCONT (false) to every process of it. */
  freeze(on: boolean): void {
    if (this.child?.pid && this.running) signalServer(-this.child.pid, on ? "SIGSTOP" : "SIGCONT");
  }
}

/**
 * Every store process still running. They run detached (a group of their own), so an interrupted
 * runner would leave them behind: on exit (chaos/cluster.ts `killClustersOnExit` exits on SIGINT and
 * SIGTERM) each group is killed.
 */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) signalServer(-c.pid!, "SIGKILL");
});

/** Waits for `probe` to return a value, at most `ms`; the error says what was awaited. */
export async function until<T>(what: string, probe: () => Promise<T | null | undefined>, ms = 20_000): Promise<T> {
  const end = performance.now() + ms;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== null && v !== undefined) return v;
    } catch (error) {
      last = error;
    }
    if (performance.now() > end) {
      throw new Error(`${what}: not reached in ${ms} ms${last instanceof Error ? ` (last error: ${last.message})` : ""}`);
    }
    await sleep(100);
  }
}
