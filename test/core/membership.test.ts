import { describe, expect, it } from "vitest";
import { MemoryStorage, MemoryStore } from "../../src/adapters/memory/index.js";
import { ManualClock } from "../../src/core/clock.js";
import { StoreUnavailableError } from "../../src/core/errors.js";
import { ForgetRefusedError, Membership, UnansweredRemovals, type PromotionGate } from "../../src/core/master/membership.js";
import { MASTER_LEASE, type Lease } from "../../src/core/ports/leases.js";
import type { NodeStatus } from "../../src/core/ports/liveness.js";
import type { Logger } from "../../src/core/ports/logger.js";
import { DEFAULT_SETTINGS, deriveTiming } from "../../src/core/timing.js";
import { readClusterStatus } from "../../src/nodes/cluster-status.js";

const timing = deriveTiming(DEFAULT_SETTINGS);
const DOWN_MS = timing.dbUnhealthyIntervalMs;
const RETENTION_MS = 10 * DOWN_MS;
/** The master lease's TTL here: longer than any test runs its clock, except where it lapses on purpose. */
const LEASE_TTL_MS = 10 * RETENTION_MS;

/** A logger that keeps its info lines, to check that every removal is logged. */
function recordingLogger(lines: { fields: Record<string, unknown>; message: string }[]): Logger {
  const log: Logger = {
    debug: () => {},
    info: (fields, message) => lines.push({ fields, message }),
    warn: () => {},
    error: () => {},
    child: () => log,
  };
  return log;
}

const noHook = async () => {};
/** No shard manager here: nothing else writes the map while a test runs. */
const noGate: PromotionGate = {
  removeRecord: async (_node, remove) => ((await remove()) ? "removed" : "kept"),
  removalUnanswered: () => {},
};

/** A memory store, a master lease on it, and a `Membership` whose removals are `recorded` (ids); `gateFor` gives its gate. */
async function cluster(gateFor: (store: MemoryStore) => PromotionGate = () => noGate) {
  const clock = new ManualClock();
  const store = new MemoryStore(new MemoryStorage(clock));
  const lines: { fields: Record<string, unknown>; message: string }[] = [];
  const recorded: string[] = [];
  const membership = new Membership(
    store.liveness,
    store.shardMap,
    recordingLogger(lines),
    { dbUnhealthyIntervalMs: DOWN_MS },
    async (node) => void recorded.push(node.id),
    gateFor(store),
  );
  const beat = (id: string, role: "master" | "coreapp" | "webapp") =>
    store.liveness.beat({ id, name: id.split(".")[0]!, role, address: "h:1", meta: {} });
  const m = await store.leases.acquire(MASTER_LEASE, "m1.a", LEASE_TTL_MS);
  if (!m.acquired) throw new Error("setup: master lease");
  return { clock, store, membership, lines, recorded, beat, lease: m.lease };
}

describe("Membership", () => {
  it("prune() removes a node silent past the retention, logs it, and keeps a shard's named owner however old", async () => {
    const { clock, store, membership, lines, beat, lease } = await cluster();
    await beat("m1.a", "master");
    await beat("c1.a", "coreapp");
    await beat("c2.b", "coreapp");
    await store.shardMap.assign(0, 0, "c1.a", lease);
    await clock.advance(RETENTION_MS + 1, 1000);
    await beat("m1.a", "master");
    expect(await membership.prune(RETENTION_MS, lease)).toEqual(["c2.b"]);
    expect((await store.liveness.list()).map((n) => n.id)).toEqual(["c1.a", "m1.a"]);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.fields).toMatchObject({ removedNode: "c2.b", cause: { kind: "retention", retentionMs: RETENTION_MS } });
  });

  it("prune() keeps a node silent for less than the retention", async () => {
    const { clock, membership, beat, lease } = await cluster();
    await beat("c2.b", "coreapp");
    await clock.advance(RETENTION_MS - 1, 1000);
    expect(await membership.prune(RETENTION_MS, lease)).toEqual([]);
  });

  it("prune() keeps a node silent for less than 2 × the live db_unhealthy_interval, whatever the retention given", async () => {
    const { clock, store, lines, lease } = await cluster();
    // The node's live Timing: a settings change raised db_unhealthy_interval after the config file was checked.
    const live = { dbUnhealthyIntervalMs: DOWN_MS };
    const membership = new Membership(store.liveness, store.shardMap, recordingLogger(lines), live, noHook, noGate);
    await store.liveness.beat({ id: "c2.b", name: "c2", role: "coreapp", address: "h:1", meta: {} });
    await clock.advance(3 * DOWN_MS, 1000);
    live.dbUnhealthyIntervalMs = 2 * DOWN_MS;
    expect(await membership.prune(2 * DOWN_MS, lease)).toEqual([]);
    await clock.advance(DOWN_MS + 1, 1000);
    expect(await membership.prune(2 * DOWN_MS, lease)).toEqual(["c2.b"]);
    expect(lines[0]!.fields).toMatchObject({ cause: { kind: "retention", retentionMs: 4 * DOWN_MS } });
  });

  it("forget() removes a down node by name, refuses a live one without force, and refuses a named owner even with force", async () => {
    const { clock, store, membership, beat, lease } = await cluster();
    await beat("c1.a", "coreapp");
    await beat("c2.b", "coreapp");
    await store.shardMap.assign(0, 0, "c1.a", lease);
    await expect(membership.forget("c2", false, "test", lease)).rejects.toThrow(/c2\.b is live .*--force/);
    await expect(membership.forget("c1.a", true, "test", lease)).rejects.toBeInstanceOf(ForgetRefusedError);
    await expect(membership.forget("nobody", true, "test", lease)).rejects.toThrow(/no node nobody/);
    await clock.advance(DOWN_MS + 1, 1000);
    expect(await membership.forget("c2", false, "test", lease)).toMatchObject({ id: "c2.b" });
    expect((await store.liveness.list()).map((n) => n.id)).toEqual(["c1.a"]);
  });

  it("forget() with force removes a live node", async () => {
    const { store, membership, beat, lease } = await cluster();
    await beat("w1.a", "webapp");
    await membership.forget("w1.a", true, "test", lease);
    expect(await store.liveness.list()).toEqual([]);
  });
});

describe("Membership under a master lease no longer live", () => {
  it("forget() and prune() remove nothing and record nothing: the removal is fenced, as a promotion by the next primary master may have landed", async () => {
    const { clock, store, membership, lines, recorded, beat, lease } = await cluster();
    await beat("c1.a", "coreapp");
    await beat("w1.a", "webapp");
    await clock.advance(LEASE_TTL_MS + 1, 1000); // past the master lease's TTL: it lapsed, nobody renewed it
    expect(await membership.forget("w1.a", true, "test", lease)).toBe("fenced");
    expect(await membership.prune(RETENTION_MS, lease)).toBe("fenced");
    expect((await store.liveness.list()).map((n) => n.id)).toEqual(["c1.a", "w1.a"]);
    expect(lines).toEqual([]);
    expect(recorded).toEqual([]);
    // The next primary master's lease removes them.
    const next = await store.leases.acquire(MASTER_LEASE, "m2.b", LEASE_TTL_MS);
    if (!next.acquired) throw new Error("setup: master lease");
    expect(await membership.forget("w1.a", true, "test", next.lease)).toMatchObject({ id: "w1.a" });
    expect(await membership.prune(RETENTION_MS, next.lease)).toEqual(["c1.a"]);
    expect(recorded).toEqual(["w1.a", "c1.a"]);
  });
});

describe("Membership when the node beats again while its removal is on its way", () => {
  /** A membership whose gate lets node `id` beat (`seq` 2, over the 1 it was read with) before the removal runs. */
  async function beatingBeforeRemoval(id: string) {
    const beat = (store: MemoryStore, seq: number) =>
      store.liveness.beat({ id, name: id.split(".")[0]!, role: "coreapp", address: "h:1", meta: {}, seq });
    const setup = await cluster((store) => ({
      ...noGate,
      removeRecord: async (node, remove) => {
        if (node === id) await beat(store, 2);
        return (await remove()) ? "removed" : "kept";
      },
    }));
    await beat(setup.store, 1);
    return setup;
  }

  it("forget() removes nothing, records nothing, and says the node beat again", async () => {
    const { store, membership, lines, recorded, lease } = await beatingBeforeRemoval("c1.a");
    await expect(membership.forget("c1.a", true, "test", lease)).rejects.toThrow(/c1\.a beat again .*nothing was removed/);
    expect((await store.liveness.list()).map((n) => [n.id, n.seq])).toEqual([["c1.a", 2]]);
    expect(lines).toEqual([]);
    expect(recorded).toEqual([]);
  });

  it("prune() keeps the node that came back", async () => {
    const { clock, store, membership, recorded, lease } = await beatingBeforeRemoval("c1.a");
    await clock.advance(RETENTION_MS + 1, 1000);
    expect(await membership.prune(RETENTION_MS, lease)).toEqual([]);
    expect((await store.liveness.list()).map((n) => n.id)).toEqual(["c1.a"]);
    expect(recorded).toEqual([]);
  });
});

describe("Membership when the store does not answer a removal", () => {
  it("tells the gate, with the beat the removal was made on", async () => {
    const unanswered: [string, number | undefined][] = [];
    const { store, membership, lease } = await cluster(() => ({
      ...noGate,
      removalUnanswered: (node, seq) => void unanswered.push([node, seq]),
    }));
    await store.liveness.beat({ id: "w1.a", name: "w1", role: "webapp", address: "h:1", meta: {}, seq: 7 });
    const removeFenced = store.liveness.removeFenced.bind(store.liveness);
    const asked: (number | undefined)[] = [];
    store.liveness.removeFenced = async (id, master, seq) => {
      asked.push(seq);
      await removeFenced(id, master, seq);
      throw new StoreUnavailableError("memory store: no answer (simulated)");
    };
    await expect(membership.forget("w1.a", true, "test", lease)).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(asked).toEqual([7]);
    expect(unanswered).toEqual([["w1.a", 7]]);
  });
});

describe("UnansweredRemovals", () => {
  const record = (id: string, seq?: number): NodeStatus => ({
    id,
    name: id,
    role: "coreapp",
    address: "h:1",
    meta: {},
    ageMs: 0,
    ...(seq === undefined ? {} : { seq }),
  });
  const master = (epoch: number): Lease => ({ name: MASTER_LEASE, holder: "m1.a", epoch });

  it("holds a node until its record shows a later beat than the removal's: the same beat, or an older one in a stale view, is not enough", () => {
    const removals = new UnansweredRemovals();
    removals.add("c1.a", 5, master(7));
    expect(removals.mayLand(record("c1.a", 5), 7)).toBe(true);
    expect(removals.mayLand(record("c1.a", 4), 7)).toBe(true); // the view is a beat behind the removal's read
    expect(removals.mayLand(record("c1.a"), 7)).toBe(true);
    expect(removals.mayLand(record("c2.a", 5), 7)).toBe(false);
    expect(removals.mayLand(record("c1.a", 6), 7)).toBe(false);
    expect(removals.mayLand(record("c1.a", 5), 7)).toBe(false); // done with: a seq never goes back
  });

  it("holds a node until a tenure of another master epoch runs, which fences the removal; a removal without a seq waits for that", () => {
    const removals = new UnansweredRemovals();
    removals.add("c1.a", undefined, master(7));
    removals.add("c2.a", 5, master(7));
    expect(removals.mayLand(record("c1.a", 9), 7)).toBe(true);
    expect(removals.mayLand(record("c2.a", 5), 7)).toBe(true); // the same master took its lease back at the same epoch
    expect(removals.mayLand(record("c1.a", 9), 8)).toBe(false);
    expect(removals.mayLand(record("c2.a", 5), 8)).toBe(false);
  });

  it("drops, when a tenure begins, every removal sent under another epoch, also of nodes no view shows again", () => {
    const removals = new UnansweredRemovals();
    removals.add("gone.a", 5, master(7));
    removals.add("c1.a", 5, master(8));
    removals.beginTenure(8);
    // Asked as of epoch 7, a removal still held would answer true: it was dropped.
    expect(removals.mayLand(record("gone.a", 5), 7)).toBe(false);
    expect(removals.mayLand(record("c1.a", 5), 8)).toBe(true);
  });
});

describe("readClusterStatus()", () => {
  it("shows a silent node as down, and a silent master as plain `master`, not secondary_master", async () => {
    const { clock, store, beat } = await cluster();
    await beat("m2.b", "master");
    await beat("c2.b", "coreapp");
    await clock.advance(DOWN_MS + 1, 1000);
    await beat("m1.a", "master");
    await beat("m3.c", "master");
    const s = await readClusterStatus(store, timing, 1);
    const byId = Object.fromEntries(s.nodes.map((n) => [n.id, n]));
    expect(byId["m1.a"]).toMatchObject({ role: "primary_master", state: "up" });
    expect(byId["m3.c"]).toMatchObject({ role: "secondary_master", state: "up" });
    expect(byId["m2.b"]).toMatchObject({ role: "master", state: "down", healthy: false });
    expect(byId["c2.b"]).toMatchObject({ role: "coreapp", state: "down", gateway_status: "disconnected" });
  });
});
