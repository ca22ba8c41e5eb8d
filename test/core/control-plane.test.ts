import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { StoreUnavailableError } from "../../src/core/errors.js";
import { MAX_PAUSE_MS } from "../../src/core/master/control-plane.js";
import type { HistoryEvent } from "../../src/core/ports/history.js";
import { MASTER_LEASE } from "../../src/core/ports/leases.js";
import type { RemovalOutcome } from "../../src/core/ports/liveness.js";
import type { AdminCommand } from "../../src/core/ports/transport.js";
import { Master } from "../../src/nodes/master.js";
import { Cluster, settings, sleep, startCluster } from "../support/memory-cluster.js";

/**
 * The control plane on an in-process cluster (memory store, in-process network): live settings
 * through the primary master (1017 elsewhere), pauses of automatic failover, and the history.
 */
let cluster: Cluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

async function admin(c: Cluster, to: "primary" | "secondary", command: AdminCommand) {
  const master = c.masters.find((m) => (m.role === "primary_master") === (to === "primary"))!;
  const address = (await c.stores.get(master.id)!.liveness.list()).find((n) => n.id === master.id)!.address;
  return c.net.endpoint("cli.x").admin({ id: master.id, address }, command, 5000);
}

/**
 * The history, once `done(events)` holds (or after 2 s): the primary master appends in the
 * background, so an event may land a moment after what it records.
 */
async function historyWhen(c: Cluster, done: (events: HistoryEvent[]) => boolean, shard?: number): Promise<HistoryEvent[]> {
  const history = c.stores.get(c.masters[0]!.id)!.history;
  let events = await history.list(shard === undefined ? {} : { shard });
  for (let i = 0; i < 100 && !done(events); i++) {
    await sleep(20);
    events = await history.list(shard === undefined ? {} : { shard });
  }
  return events;
}

/** A running cluster of one shard: its primary master, the shard's owner and the one standby. */
async function ownerAndStandby() {
  const c = await startCluster((cluster = new Cluster(1)), 2);
  const primary = c.masters.find((m) => m.role === "primary_master")!;
  const owner = c.serving(0)[0]!;
  const standby = c.coreapps.find((x) => x !== owner)!;
  return { c, primary, owner, standby };
}

/** A promise a patched store call waits on until `release()`; released at the test's end in any case. */
function heldUntilReleased(): { released: Promise<void>; release: () => void } {
  let release = () => {};
  const released = new Promise<void>((r) => (release = r));
  onTestFinished(() => release());
  return { released, release };
}

/**
 * `ownerAndStandby()` with a `forget --force` of the standby sent to the primary master, once its
 * removal of the record reached the store call, which waits there until `release()`.
 */
async function forgettingStandby() {
  const setup = await ownerAndStandby();
  const { c, primary, standby } = setup;
  const liveness = c.stores.get(primary.id)!.liveness;
  const remove = liveness.removeFenced.bind(liveness);
  const { released, release } = heldUntilReleased();
  let removing = false;
  liveness.removeFenced = async (id, master, seq) => {
    removing = true;
    await released;
    return remove(id, master, seq);
  };
  const forgetting = admin(c, "primary", { op: "forget", node: standby.id, force: true, by: "ops" });
  await c.waitFor(() => removing, 3000);
  return { ...setup, forgetting, release };
}

describe("control plane", () => {
  it("settings change only through the primary master (1017 elsewhere) and reach every node, with the failover bound following", async () => {
    const c = await startCluster((cluster = new Cluster(1)));
    const refused = await admin(c, "secondary", { op: "settings", settings: { unhealthy_interval: 120 }, by: "test" });
    expect(refused).toMatchObject({ ok: false, error: { code: 1017 } });
    const invalid = await admin(c, "primary", { op: "settings", settings: { unhealthy_interval: 30 }, by: "test" });
    expect(invalid).toMatchObject({
      ok: false,
      error: { code: 400, message: expect.stringContaining("unhealthy_interval: must be at least twice heartbeat_interval") },
    });

    const before = c.coreapps[0]!.clusterDocument.document!.version;
    const ok = await admin(c, "primary", { op: "settings", settings: { unhealthy_interval: 120 }, by: "test" });
    expect(ok).toMatchObject({ ok: true, version: expect.any(Number) });
    expect(ok.version).toBeGreaterThan(before);
    const nodes = [...c.masters, ...c.coreapps];
    await c.waitFor(() => nodes.every((n) => n.clusterDocument.document?.version === ok.version), 2000);
    for (const n of nodes) expect(n.clusterDocument.document!.document.settings.unhealthyIntervalMs).toBe(120);
    const events = await historyWhen(c, (es) => es.some((e) => e.type === "settings_changed" && e.cause === "changed by test"));
    expect(events.find((e) => e.type === "settings_changed" && e.cause === "changed by test")).toMatchObject({
      evidence: { from: { unhealthy_interval: 150 }, to: { unhealthy_interval: 120 } },
    });
    expect(c.overlaps).toEqual([]);
  });

  it("while failover is paused an isolated primary is not replaced; after resume it is, and history tells the story", async () => {
    const c = await startCluster((cluster = new Cluster(1)));
    expect(await admin(c, "primary", { op: "pause", shard: null, reason: "maintenance", durationMs: 60_000, by: "ops" })).toMatchObject({
      ok: true,
    });
    await c.waitFor(() => c.masters.every((m) => m.clusterDocument.pauseOf(0)?.by === "ops"), 2000);
    const old = c.serving(0)[0]!;
    c.isolate(old);
    await sleep(600); // well past unhealthy_interval (150 ms) and the lease
    expect(c.serving(0)).toEqual([]);
    expect(c.assignments.filter((a) => a.from === old.id)).toEqual([]);

    expect(await admin(c, "primary", { op: "resume", shard: null, by: "ops" })).toMatchObject({ ok: true });
    await c.waitFor(() => c.serving(0).length === 1 && c.serving(0)[0] !== old, 3000);
    const promotedAfterResume = (es: HistoryEvent[]) => {
      const t = es.map((e) => e.type).reverse();
      return t.includes("resumed") && t.indexOf("promoted", t.indexOf("resumed")) > 0;
    };
    const types = (await historyWhen(c, promotedAfterResume)).map((e) => e.type).reverse();
    expect(types.slice(types.indexOf("paused"))).toEqual(expect.arrayContaining(["paused", "resumed", "promoted"]));
    expect(types.indexOf("promoted", types.indexOf("resumed"))).toBeGreaterThan(types.indexOf("resumed"));
    expect(c.overlaps).toEqual([]);
  });

  it("a pause ends by itself when its time runs out, and the history says so", async () => {
    const c = await startCluster((cluster = new Cluster(1)));
    expect(await admin(c, "primary", { op: "pause", shard: 0, reason: "short", durationMs: 300, by: "ops" })).toMatchObject({ ok: true });
    const old = c.serving(0)[0]!;
    c.isolate(old);
    await c.waitFor(() => c.serving(0).some((x) => x !== old), 5000);
    // The expiry is noticed on the master's next beat, and recorded in the background.
    const events = await historyWhen(c, (es) => es.some((e) => e.type === "resumed"), 0);
    expect(events.find((e) => e.type === "resumed")).toMatchObject({ cause: "the pause ran out" });
    expect(c.overlaps).toEqual([]);
  });

  it("the primary master refuses a pause past MAX_PAUSE_MS and a resume of nothing paused, writing no new document version", async () => {
    const c = await startCluster((cluster = new Cluster(1)));
    await c.waitFor(() => c.masters[0]!.clusterDocument.document !== null, 2000);
    const documents = c.stores.get(c.masters[0]!.id)!.clusterDocument;
    const before = (await documents.read())!.version;
    const tooLong = await admin(c, "primary", { op: "pause", shard: 0, reason: "", durationMs: MAX_PAUSE_MS + 1, by: "ops" });
    expect(tooLong).toMatchObject({ ok: false, error: { code: 400, message: expect.stringContaining("at most 168h (7 days)") } });
    const notPaused = await admin(c, "primary", { op: "resume", shard: 0, by: "ops" });
    expect(notPaused).toMatchObject({ ok: false, error: { code: 404, message: "shard 0 is not paused" } });
    expect((await documents.read())!.version).toBe(before);
    expect(await admin(c, "primary", { op: "pause", shard: 0, reason: "", durationMs: MAX_PAUSE_MS, by: "ops" })).toMatchObject({
      ok: true,
    });
  });

  it("forget goes through the primary master (1017 elsewhere): a removal is recorded with who asked; a shard's owner is refused", async () => {
    const { c, owner, standby } = await ownerAndStandby();
    expect(await admin(c, "secondary", { op: "forget", node: standby.name, force: true, by: "ops" })).toMatchObject({
      ok: false,
      error: { code: 1017 },
    });
    expect(await admin(c, "primary", { op: "forget", node: owner.id, force: true, by: "ops" })).toMatchObject({
      ok: false,
      error: { code: 409, message: expect.stringContaining("owner") },
    });
    const live = await admin(c, "primary", { op: "forget", node: standby.name, force: false, by: "ops" });
    expect(live).toMatchObject({ ok: false, error: { code: 409, message: expect.stringMatching(/is live/) } });
    const removed = await admin(c, "primary", { op: "forget", node: standby.name, force: true, by: "ops" });
    expect(removed).toMatchObject({ ok: true, removed: { id: standby.id, name: standby.name, role: "coreapp" } });
    // Stored before the answer: readable at once.
    const events = await c.stores.get(c.masters[0]!.id)!.history.list();
    expect(events.find((e) => e.type === "node_removed")).toMatchObject({ cause: "forgotten by ops", evidence: { node: standby.id } });
  });

  it("forget waits for a promotion on its way to the node, then refuses it as the shard's owner: no owner is left without a record", async () => {
    const { c, primary, owner, standby } = await ownerAndStandby();
    // The primary master's shard map writes wait for `release`.
    const shardMap = c.stores.get(primary.id)!.shardMap;
    const assign = shardMap.assign.bind(shardMap);
    const { released, release } = heldUntilReleased();
    let writes = 0;
    shardMap.assign = async (...args) => {
      writes++;
      await released;
      return assign(...args);
    };
    c.isolate(owner);
    await c.waitFor(() => writes > 0, 3000);
    let answered = false;
    const forgetting = admin(c, "primary", { op: "forget", node: standby.id, force: true, by: "ops" }).finally(() => (answered = true));
    await sleep(100);
    expect(answered).toBe(false);
    release();
    expect(await forgetting).toMatchObject({ ok: false, error: { code: 409, message: expect.stringContaining("owner") } });
    const records = await c.stores.get(primary.id)!.liveness.list();
    expect(records.some((n) => n.id === standby.id)).toBe(true);
    await c.waitFor(() => c.serving(0)[0] === standby, 3000);
    expect(c.overlaps).toEqual([]);
  });

  it("while a node's record is being removed, no promotion picks it; the master says why it passes it over", async () => {
    const { c, primary, owner, standby, forgetting, release } = await forgettingStandby();
    c.isolate(owner);
    await c.waitFor(() => primary.unserved().length === 1, 3000);
    expect(primary.unserved()[0]!.passedOver).toContainEqual({ name: standby.name, reason: "its record is being removed (forget)" });
    expect(c.assignments.filter((a) => a.to === standby.id)).toEqual([]);
    release();
    // The standby kept beating while the removal waited: the removal, made on the beat it was read
    // with, removes nothing, and forget says so.
    expect(await forgetting).toMatchObject({ ok: false, error: { code: 409, message: expect.stringContaining("beat again") } });
    expect(c.storage.nodes.has(standby.id)).toBe(true);
    await c.waitFor(() => c.serving(0)[0] === standby, 5000);
    expect(c.overlaps).toEqual([]);
  });

  it("a removal that reaches the store after the primary master's lease ended is fenced: nothing removed, and forget answers 1017", async () => {
    const { c, standby, forgetting, release } = await forgettingStandby();
    // The master lease lapses in the store while the removal is on its way, and is taken again (a new tenure).
    const lease = c.storage.leases.get(MASTER_LEASE)!;
    const tenure = lease.epoch;
    lease.expiresAt = 0;
    await c.waitFor(() => c.storage.leases.get(MASTER_LEASE)!.epoch > tenure, 10_000);
    release();
    expect(await forgetting).toMatchObject({ ok: false, error: { code: 1017 } });
    expect(c.storage.nodes.has(standby.id)).toBe(true);
    expect(c.overlaps).toEqual([]);
  });

  it("after forget, the primary master does not promote the node from its own copy of the node list until its record is back", async () => {
    const { c, primary, owner, standby } = await ownerAndStandby();
    const address = (await c.stores.get(primary.id)!.liveness.list()).find((n) => n.id === primary.id)!.address;
    c.stores.get(standby.id)!.unavailable = true; // its beats fail: its record stays gone
    expect(await admin(c, "primary", { op: "forget", node: standby.id, force: true, by: "ops" })).toMatchObject({ ok: true });
    // The master's reads of the node list hang from here: all it has is the copy it read before.
    const liveness = c.stores.get(primary.id)!.liveness;
    const list = liveness.list.bind(liveness);
    const { released, release } = heldUntilReleased();
    liveness.list = async () => {
      await released;
      return list();
    };
    const promotedWithoutRecord: string[] = [];
    primary.on("promotion", (e) => {
      if (e.to === standby.id && !c.storage.nodes.has(standby.id)) promotedWithoutRecord.push(`epoch ${e.epoch}`);
    });
    // The owner crashes, and its supervisor says so: the master decides at once, from that copy.
    c.isolate(owner);
    const exit = { node: owner.id, role: "coreapp", cause: "killed by SIGKILL", released: ["shard/0"] } as const;
    expect((await c.net.endpoint("supervisor.x").exited({ id: primary.id, address }, exit, 2000)).ok).toBe(true);
    await c.waitFor(() => primary.unserved().length === 1, 3000);
    await sleep(200);
    expect(promotedWithoutRecord).toEqual([]);
    release();
    c.stores.get(standby.id)!.unavailable = false;
    await c.waitFor(() => c.serving(0)[0] === standby, 5000);
    expect(promotedWithoutRecord).toEqual([]);
    expect(c.overlaps).toEqual([]);
  });

  it("a removal the store did not answer keeps the node from promotion until its record shows a later beat; landing after that, it removes nothing", async () => {
    // A db_unhealthy_interval long enough that the standby's record, its beats stopped, stays fresh.
    const c = await startCluster((cluster = new Cluster(1, { ...settings, dbUnhealthyIntervalMs: 10_000 })), 2);
    const primary = c.masters.find((m) => m.role === "primary_master")!;
    const owner = c.serving(0)[0]!;
    const standby = c.coreapps.find((x) => x !== owner)!;
    // The standby's beats stop reaching the store: its record keeps the beat the removal is made on.
    const standbyLiveness = c.stores.get(standby.id)!.liveness;
    const beat = standbyLiveness.beat.bind(standbyLiveness);
    let beating = false;
    standbyLiveness.beat = async (r) => {
      if (beating) await beat(r);
    };
    // The primary master's removal gets no answer, and is applied later (`late`).
    const liveness = c.stores.get(primary.id)!.liveness;
    const removeFenced = liveness.removeFenced.bind(liveness);
    let late: (() => Promise<RemovalOutcome>) | null = null;
    liveness.removeFenced = async (id, master, seq) => {
      late = () => removeFenced(id, master, seq);
      throw new StoreUnavailableError("memory store: no answer (simulated)");
    };
    onTestFinished(() => void (liveness.removeFenced = removeFenced));
    expect(await admin(c, "primary", { op: "forget", node: standby.id, force: true, by: "ops" })).toMatchObject({
      ok: false,
      error: { code: 1011 },
    });
    c.isolate(owner);
    const held = (p: { name: string; reason: string }) =>
      p.name === standby.name && p.reason.includes("removal of its record went unanswered");
    await c.waitFor(() => primary.unserved()[0]?.passedOver.some(held) === true, 3000);
    expect(c.assignments.filter((a) => a.to === standby.id)).toEqual([]);
    // Its next beat ends the doubt: the removal was made on the beat before, and can no longer land.
    beating = true;
    await c.waitFor(() => c.serving(0)[0] === standby, 5000);
    expect(await late!()).toBe("superseded");
    expect(c.storage.nodes.has(standby.id)).toBe(true);
    expect(c.overlaps).toEqual([]);
  });

  it("forget refuses while a promotion of the node went unanswered by the store and may still land", async () => {
    const { c, primary, owner, standby } = await ownerAndStandby();
    // The primary master's shard map writes get no answer, and are applied later (`late`).
    const shardMap = c.stores.get(primary.id)!.shardMap;
    const assign = shardMap.assign.bind(shardMap);
    const unanswered: (() => Promise<unknown>)[] = [];
    shardMap.assign = async (...args) => {
      unanswered.push(() => assign(...args));
      throw new StoreUnavailableError("memory store: no answer (simulated)");
    };
    onTestFinished(() => void (shardMap.assign = assign));
    c.isolate(owner);
    await c.waitFor(() => unanswered.length > 0, 3000);
    const refused = await admin(c, "primary", { op: "forget", node: standby.id, force: true, by: "ops" });
    expect(refused).toMatchObject({ ok: false, error: { code: 409, message: expect.stringContaining("may still land") } });
    shardMap.assign = assign;
    await unanswered[0]!(); // it lands after all
    await c.waitFor(() => c.serving(0)[0] === standby, 5000);
    expect(c.storage.nodes.has(standby.id)).toBe(true);
    expect(c.overlaps).toEqual([]);
  });

  it("a node whose config disagrees with the cluster's stored shard count refuses to start, naming both values", async () => {
    const c = await startCluster((cluster = new Cluster(1)));
    await c.waitFor(() => c.masters[0]!.clusterDocument.document !== null, 2000);
    const stray = new Master(c.deps("m9.x"), c.identity("m9"), 2);
    await expect(stray.start()).rejects.toThrow(
      "config: shards: the cluster has 1 shards (stored in its cluster document) but this node's config says 2",
    );
    await stray.stop();
    expect(c.overlaps).toEqual([]);
  });
});
