import { spawn, type ChildProcess } from "node:child_process";

/** A running CPU hog (see `startCpuHog`). */
export interface CpuHog {
  /** The hog's processes. */
  readonly pids: number[];
  /** Kills every process of the hog. */
  stop(): void;
}

/**
 * The busy loop each hog process runs. It looks at its parent's pid every few million iterations
 * and exits once it was re-parented: a harness killed with -9 must not leave the machine loaded.
 */
const LOOP = "const p = process.ppid; for (let i = 1; ; i++) if (i % 5e7 === 0 && process.ppid !== p) process.exit(0);";

/**
 * Starts `n` processes that each spin one core at the default priority, the "starved host" of
 * docs/reliability.md: with `n` = 4 × the cores, every runnable node process gets about a fifth of
 * the CPU time it would get alone (each core is shared by five runnable threads or more).
 */
export function startCpuHog(n: number): CpuHog {
  const children: ChildProcess[] = Array.from({ length: n }, () => spawn(process.execPath, ["-e", LOOP], { stdio: "ignore" }));
  const stop = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    process.off("exit", stop);
  };
  process.on("exit", stop);
  return { pids: children.map((c) => c.pid!), stop };
}
