import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { NodeTokens } from "../../src/nodes/held-leases.js";
import { supervise as superviseChild, superviseWithWatchdog, takeSupervision, type ChildExit } from "../../src/watchdog/supervisor.js";

const child = fileURLToPath(new URL("../support/watchdog-child.mjs", import.meta.url));

/** Runs the stand-in child under the watchdog; resolves with the exit code and what the supervisor logged. */
async function supervise(mode: string, deadlineMs: number) {
  const lines: string[] = [];
  const t0 = performance.now();
  const code = await superviseWithWatchdog({ argv: [child, mode], deadlineMs, log: (l) => lines.push(l) });
  return { code, ms: performance.now() - t0, lines };
}

describe("watchdog supervisor", () => {
  it("kills a child whose event loop stops petting, and exits 70", async () => {
    const r = await supervise("freeze", 300);
    expect(r.code).toBe(70);
    expect(r.lines.join("\n")).toMatch(/missed its 300 ms deadline/);
    expect(r.ms).toBeGreaterThanOrEqual(400); // 100 ms of pets, then the whole deadline
  });

  it("leaves alone a standby (not at risk) that misses its pets: a starved or frozen standby holds nothing", async () => {
    const r = await supervise("standby-freeze", 300);
    expect(r.lines).toEqual([]);
    expect(r.code).toBe(0);
  });

  it("kills a child frozen right after it said it was named for a shard, counting from that pet", async () => {
    const r = await supervise("named-freeze", 300);
    expect(r.code).toBe(70);
    expect(r.lines.join("\n")).toMatch(/missed its 300 ms deadline/);
  });

  // The tenure ends 150 ms after start; the grace is half the gap the child reports between the
  // tenure's deadline and the lease's earliest expiry (100 ms, or 600 ms for a lease granted before
  // the settings were shortened). Not the pet deadline (5 s).
  for (const { mode, killedAfterMs, what } of [
    {
      mode: "tenure-stuck",
      killedAfterMs: 150 + 50,
      what: "kills a child that still reports its shard tenure open after the tenure's deadline, though it keeps petting",
    },
    {
      mode: "tenure-wide-margin",
      killedAfterMs: 150 + 300,
      what: "takes the grace from the child's lease, not from settings: half of a wider gap waits longer",
    },
  ]) {
    it(what, async () => {
      const r = await supervise(mode, 5000);
      expect(r.code).toBe(70);
      expect(r.lines.join("\n")).toMatch(/still in its shard tenure/);
      expect(r.ms).toBeGreaterThanOrEqual(killedAfterMs);
      expect(r.ms).toBeLessThan(5000);
    });
  }

  it("counts from when a pet was sent, not from when it arrived: pets that waited past the deadline do not keep the child alive", async () => {
    const r = await supervise("stale-pets", 5000);
    expect(r.code).toBe(70);
    expect(r.lines.join("\n")).toMatch(/missed its 5000 ms deadline/);
    expect(r.ms).toBeLessThan(5000);
  });

  it("leaves alone a child that closes its tenure at the deadline and reports it", async () => {
    const r = await supervise("tenure-closes", 5000);
    expect(r.lines).toEqual([]);
    expect(r.code).toBe(0);
  });
});

describe("crash supervision", () => {
  /** Runs the stand-in child without the watchdog; resolves with the exit code and what `onDeath` got. */
  async function crash(mode: string) {
    const deaths: { tokens: NodeTokens | null; exit: ChildExit }[] = [];
    const code = await superviseChild({
      argv: [child, mode],
      log: () => {},
      onDeath: async (tokens, exit) => void deaths.push({ tokens, exit }),
    });
    return { code, deaths };
  }

  it("hands onDeath the last tokens the child reported before it was killed, with the kernel's cause", async () => {
    const r = await crash("tokens-crash");
    expect(r.code).toBe(1);
    expect(r.deaths).toHaveLength(1);
    expect(r.deaths[0]!.tokens?.leases).toEqual([{ name: "shard/0", holder: "child.1#4", epoch: 4 }]);
    expect(r.deaths[0]!.exit).toMatchObject({ signal: "SIGKILL", code: null, byWatchdog: false, cause: "killed by SIGKILL" });
  });

  it("runs no release after a clean shutdown (exit 0, nothing held)", async () => {
    const r = await crash("tokens-clean");
    expect(r.code).toBe(0);
    expect(r.deaths).toEqual([]);
  });
});

describe("the child's side of supervision: takeSupervision", () => {
  it("reads the supervisor's marks and removes them, so processes the application spawns do not inherit them", () => {
    const env: NodeJS.ProcessEnv = { MC_SUPERVISED: "1", MC_WATCHDOG_PET_MS: "250", PATH: "/bin" };
    expect(takeSupervision(env, true)).toEqual({ petIntervalMs: 250 });
    expect(env).toEqual({ PATH: "/bin" });
    // A process spawned from here sees no mark: it is not supervised.
    expect(takeSupervision({ ...env }, true)).toBeNull();
  });

  it("is not supervised without the IPC channel to the supervisor, and runs no watchdog without a valid interval", () => {
    const env: NodeJS.ProcessEnv = { MC_SUPERVISED: "1", MC_WATCHDOG_PET_MS: "250" };
    expect(takeSupervision(env, false)).toBeNull();
    expect(env).toEqual({});
    expect(takeSupervision({ MC_SUPERVISED: "1" }, true)).toEqual({ petIntervalMs: null });
    expect(takeSupervision({ MC_SUPERVISED: "1", MC_WATCHDOG_PET_MS: "soon" }, true)).toEqual({ petIntervalMs: null });
    expect(takeSupervision({ MC_WATCHDOG_PET_MS: "250" }, true)).toBeNull();
  });
});
