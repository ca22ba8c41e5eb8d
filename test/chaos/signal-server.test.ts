import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { signal, signalServer, sleep } from "../../chaos/cluster.js";

/**
 * `signalServer` reaches every process of a store server, also those that left its process group
 * as PostgreSQL's backends do (setsid() at fork). A server stand-in: a detached shell (its own
 * group, as the harness starts servers) whose child calls setsid.
 */

/** The state letter of /proc/PID/stat ("T" stopped, "S" sleeping, …), or null once it is gone. */
function state(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]!;
  } catch {
    return null;
  }
}

async function until(what: string, probe: () => boolean): Promise<void> {
  for (const end = Date.now() + 10_000; !probe(); await sleep(20)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

describe("signalServer", () => {
  it("stops, continues and kills a descendant in a session of its own, which a group signal misses", async () => {
    // The shell prints its setsid'd child's pid, then waits for it.
    const leader = spawn("bash", ["-c", "setsid sleep 60 & echo $!; wait"], { detached: true, stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    leader.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await until("the child's pid", () => /\d+\n/.test(out));
      const child = Number(out.trim());
      await until("the child started", () => state(child) !== null);

      // What the harness did before: the group alone. The child is in another group, so it runs on.
      signal(-leader.pid!, "SIGSTOP");
      await until("the leader stopped", () => state(leader.pid!) === "T");
      expect(state(child)).not.toBe("T");
      signal(-leader.pid!, "SIGCONT");

      signalServer(-leader.pid!, "SIGSTOP");
      await until("the child stopped", () => state(child) === "T");
      expect(state(leader.pid!)).toBe("T");
      signalServer(-leader.pid!, "SIGCONT");
      await until("the child running again", () => state(child) !== "T");

      signalServer(-leader.pid!, "SIGKILL");
      await until("the child gone", () => state(child) === null || state(child) === "Z");
    } finally {
      signal(-leader.pid!, "SIGKILL");
    }
  });
});
