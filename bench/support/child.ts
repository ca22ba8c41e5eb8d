import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline";

/** A helper process of the benchmark: a TypeScript file under bench/support run through tsx. */
export interface TsChild {
  readonly child: ChildProcess;
  /** The first JSON line the child prints (its "ready" message: a port, addresses...). */
  readonly ready: Promise<unknown>;
  /** Every later JSON line goes here. */
  onMessage: (m: unknown) => void;
  readonly exited: Promise<void>;
  /** What it wrote to stderr (for error messages). */
  stderr(): string;
}

/**
 * Starts `bench/support/<file>` with `node --import tsx`, stdout as JSON lines. The first line
 * resolves `ready`; the child fails `ready` if it exits first.
 */
export function spawnTs(file: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, execArgv: readonly string[] = []): TsChild {
  const child = spawn(process.execPath, [...execArgv, "--import", "tsx", resolve("bench/support", file), ...args], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const handle: TsChild = {
    child,
    ready: new Promise((resolveReady, rejectReady) => {
      let first = true;
      createInterface({ input: child.stdout! }).on("line", (line) => {
        let m: unknown;
        try {
          m = JSON.parse(line);
        } catch {
          return;
        }
        if (first) {
          first = false;
          resolveReady(m);
        } else handle.onMessage(m);
      });
      void exited.then(() => rejectReady(new Error(`bench: ${file} exited before it was ready: ${err.slice(-1500)}`)));
    }),
    onMessage: () => {},
    exited,
    stderr: () => err,
  };
  return handle;
}

/** Sends a JSON line to a child's stdin. */
export function tell(c: TsChild, m: unknown): void {
  c.child.stdin!.write(`${JSON.stringify(m)}\n`);
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(c: { child: ChildProcess; exited: Promise<void> }, graceMs = 3000): Promise<void> {
  if (c.child.exitCode !== null || c.child.signalCode !== null) return;
  c.child.kill("SIGTERM");
  const timer = setTimeout(() => c.child.kill("SIGKILL"), graceMs);
  await c.exited;
  clearTimeout(timer);
}

const TICK_MS = 10; // Linux USER_HZ is 100 on every architecture we run on

/** CPU time (user + system, ms) used so far by `pid` and every process under it (e.g. nginx's workers). */
export function treeCpuMs(pid: number): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, "utf8");
      const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
      // After "pid (comm) ": state ppid ... utime(12th) stime(13th), counting state as the 1st.
      stats.set(Number(entry), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) });
    } catch {
      // The process ended while we looked.
    }
  }
  let total = 0;
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.pop()!;
    total += stats.get(p)?.ticks ?? 0;
    for (const [child, s] of stats) if (s.ppid === p) queue.push(child);
  }
  return total * TICK_MS;
}
