import { afterEach, describe, expect, it } from "vitest";
import { MemoryStorage, MemoryStore } from "../../src/adapters/memory/index.js";
import { shardLeaseName, type Lease, type LeaseStore } from "../../src/core/ports/leases.js";
import { silentLogger } from "../../src/core/silent-logger.js";
import { deriveTiming } from "../../src/core/timing.js";
import { Wakeup } from "../../src/core/wakeup.js";
import { releaseExitedNode } from "../../src/nodes/exit-release.js";
import { HeldLeases } from "../../src/nodes/held-leases.js";
import { Cluster, startCluster } from "../support/memory-cluster.js";

/** Intervals long enough that only the exit notice can explain a failover within the test's wait. */
const SLOW = { heartbeatIntervalMs: 1000, unhealthyIntervalMs: 30_000, dbHeartbeatIntervalMs: 1000, dbUnhealthyIntervalMs: 120_000 };

class SlowCluster extends Cluster {
  override deps(id: string) {
    return { ...super.deps(id), timing: deriveTiming(SLOW) };
  }
}

describe("HeldLeases: the ledger of what a node holds", () => {
  it("lists a lease once acquire() grants it and forgets it after release() or a refused renew()", async () => {
    const store = new MemoryStore(new MemoryStorage());
    const seen: (readonly Lease[])[] = [];
    const held = new HeldLeases(store.leases, (l) => seen.push(l));
    const r = await held.acquire("shard/0", "n#1", 10_000);
    expect(r.acquired).toBe(true);
    expect(held.list()).toEqual([{ name: "shard/0", holder: "n#1", epoch: 1 }]);
    await held.release(held.list()[0]!);
    expect(held.list()).toEqual([]);
    const again = await held.acquire("shard/0", "n#2", 10_000);
    if (!again.acquired) throw new Error("not acquired");
    await store.leases.release(again.lease); // lost behind its back: the next renewal is refused
    expect(await held.renew(again.lease, 10_000)).toBe(false);
    expect(held.list()).toEqual([]);
    expect(seen.map((l) => l.length)).toEqual([1, 0, 1, 0]);
  });

  it("passes the store's release notification through, and offers none when the store has none", async () => {
    const store = new MemoryStore(new MemoryStorage());
    expect(new HeldLeases(store.leases, () => {}).watchRelease).toBeUndefined();
    const calls: string[] = [];
    const close = async () => {};
    const notifying: LeaseStore = {
      acquire: (n, h, t) => store.leases.acquire(n, h, t),
      renew: (l, t) => store.leases.renew(l, t),
      release: (l) => store.leases.release(l),
      current: (n) => store.leases.current(n),
      watchRelease: async (name) => (calls.push(name), close),
    };
    const held = new HeldLeases(notifying, () => {});
    expect(
      await held.watchRelease?.(
        "shard/3",
        () => {},
        () => {},
      ),
    ).toBe(close);
    expect(calls).toEqual(["shard/3"]);
  });

  it("a lost race adds nothing", async () => {
    const store = new MemoryStore(new MemoryStorage());
    await store.leases.acquire("master", "other", 10_000);
    const held = new HeldLeases(store.leases, () => {});
    expect((await held.acquire("master", "me", 10_000)).acquired).toBe(false);
    expect(held.list()).toEqual([]);
  });
});

describe("Wakeup", () => {
  it("wake() aborts the signal taken before it, and arms a fresh one", () => {
    const w = new Wakeup();
    const first = w.signal;
    w.wake();
    expect(first.aborted).toBe(true);
    expect(w.signal.aborted).toBe(false);
  });
});

describe("releaseExitedNode on the memory store", () => {
  let c: Cluster | null = null;
  afterEach(async () => {
    await c?.close();
    c = null;
  });

  it("releases the dead owner's lease, removes its record and tells the masters: a standby serves at once at 30 s intervals, one epoch higher", async () => {
    c = await startCluster(new SlowCluster(), 3);
    const old = c.coreapps.find((x) => x.state().serving)!;
    const epoch = old.state().epoch!;
    const tokens = old.tokens();
    expect(tokens.leases).toEqual([{ name: shardLeaseName(0), holder: expect.stringMatching(new RegExp(`^${old.id}#`)), epoch: 1 }]);
    // In one process a node cannot die: cut it from everything and stop counting it for S1 (the
    // process tests in test/integration kill real processes and check S1 from their event log).
    c.isolate(old);
    c.coreapps.splice(c.coreapps.indexOf(old), 1);
    const store = new MemoryStore(c.storage);
    const r = await releaseExitedNode({ store, transport: c.net.endpoint("supervisor.x") }, tokens, "killed by SIGKILL");
    expect(r).toMatchObject({ released: [shardLeaseName(0)], failed: [], recordRemoved: true });
    expect(r.notified.sort()).toEqual(["m1.x", "m2.x"]);
    await c.waitFor(() => c!.serving(0).length === 1, 10_000);
    expect(c.serving(0)[0]!.state().epoch).toBe(epoch + 1);
    expect(c.assignments.at(-1)?.reason).toMatch(/supervisor saw the process exit \(killed by SIGKILL\)/);
    expect((await store.liveness.list()).map((n) => n.id)).not.toContain(old.id);
    expect(c.overlaps).toEqual([]);
  });

  it("a late or repeated release is fenced by the tokens: a lease another holder took since is untouched", async () => {
    const storage = new MemoryStorage();
    const store = new MemoryStore(storage);
    const dead = await store.leases.acquire(shardLeaseName(0), "dead#1", 10_000);
    if (!dead.acquired) throw new Error("not acquired");
    const transport = { exited: () => Promise.reject(new Error("nobody listens")) } as never;
    const tokens = { node: "dead", name: "dead", role: "coreapp" as const, leases: [dead.lease] };
    await releaseExitedNode({ store, transport }, tokens, "killed by SIGKILL");
    const next = await store.leases.acquire(shardLeaseName(0), "next#1", 10_000);
    expect(next).toMatchObject({ acquired: true, lease: { epoch: 2 } });
    const again = await releaseExitedNode({ store, transport }, tokens, "killed by SIGKILL", { log: silentLogger });
    expect(again.released).toEqual([shardLeaseName(0)]); // the call succeeded, and matched nothing
    expect(await store.leases.current(shardLeaseName(0))).toMatchObject({ holder: "next#1", epoch: 2 });
  });
});
