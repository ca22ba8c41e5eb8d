import { afterEach, describe, expect, it } from "vitest";
import { Cluster, sleep, startCluster } from "../support/memory-cluster.js";

/**
 * Failsafe mode in a whole cluster on the memory store and the in-process network (real time, short
 * intervals). Every test asserts S1 (never two coreapps serving one shard) at every millisecond.
 * Intervals a little longer than the other core tests' (lease TTL 1.2 s, a promise the same) so
 * that a loaded machine's scheduling does not decide the outcome; failsafe_max 6 s unless a test
 * says otherwise. Deadlines are generous; the timings asserted are orderings, not speeds.
 */
const settings = { heartbeatIntervalMs: 200, unhealthyIntervalMs: 1400, dbHeartbeatIntervalMs: 400, dbUnhealthyIntervalMs: 3000 };

let cluster: Cluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

const FAILSAFE = { ...settings, failsafeMaxMs: 6000 };

/** Two masters and `coreapps` coreapps with failsafe on, once the shard is served and every coreapp has published its masters. */
async function failsafeCluster(coreapps = 2, s = FAILSAFE): Promise<Cluster> {
  const c = await startCluster((cluster = new Cluster(1, s)), coreapps);
  // Every coreapp lists both masters in its liveness record (its next beats after the masters registered).
  await c.waitFor(
    () =>
      c.coreapps.every((x) => {
        const meta = c.storage.nodes.get(x.id)?.record.meta as { failsafe?: { masters: string[] } } | undefined;
        return meta?.failsafe?.masters.length === 2;
      }),
    10_000,
  );
  return c;
}

/** Samples `check` every 5 ms for `ms`; returns the first failure's description or null. */
async function holds(ms: number, check: () => string | null): Promise<string | null> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const problem = check();
    if (problem) return problem;
    await sleep(5);
  }
  return null;
}

const storeDown = (c: Cluster, down: boolean, ids?: string[]) => {
  for (const [id, store] of c.stores) if (!ids || ids.includes(id)) store.unavailable = down;
};

describe("failsafe mode (memory store)", () => {
  it("a store outage ten leases long: the primary keeps serving on the masters' promises, no one else is promoted, and it renews at the same epoch after", async () => {
    // failsafe_max well past the outage: the cap (tested below) must not end this tenure.
    const c = await failsafeCluster(2, { ...FAILSAFE, failsafeMaxMs: 30_000 });
    const primary = c.serving(0)[0]!;
    const epoch = primary.state().epoch;
    const promotions = c.promotions.length;
    storeDown(c, true);
    await c.waitFor(() => primary.state().failsafe === true, 10_000);
    const problem = await holds(4000, () => (c.serving(0)[0] === primary ? null : "the primary stopped serving during the outage"));
    expect(problem).toBeNull();
    storeDown(c, false);
    await c.waitFor(
      () => !primary.state().failsafe && primary.state().serving,
      10_000,
      () => JSON.stringify(primary.state()),
    );
    expect(primary.state().epoch).toBe(epoch);
    // Still the same tenure well after the store came back: no new assignment, no second onPromote.
    await sleep(1500);
    expect(c.serving(0)).toEqual([primary]);
    expect(primary.state().epoch).toBe(epoch);
    expect(c.promotions.length).toBe(promotions);
    expect(c.overlaps).toEqual([]);
  });

  it("every node's liveness beats carry a rising seq, so a beat that lands late cannot bring back an older record", async () => {
    const c = await failsafeCluster(2);
    const ids = [...c.masters, ...c.coreapps].map((n) => n.id);
    const seqs = () => ids.map((id) => c.storage.nodes.get(id)?.seq ?? 0);
    const before = seqs();
    expect(before.every((s) => s > 0)).toBe(true);
    await c.waitFor(
      () => seqs().every((s, i) => s > before[i]!),
      5000,
      () => `seqs ${before.join(",")} then ${seqs().join(",")}`,
    );
  });

  it("failsafe off (the default): the same outage stops the primary", async () => {
    const c = await startCluster((cluster = new Cluster(1, settings)), 2);
    const primary = c.serving(0)[0]!;
    storeDown(c, true);
    await c.waitFor(() => !primary.state().serving, 10_000);
    expect(primary.state().failsafe).toBeUndefined();
    storeDown(c, false);
    expect(c.overlaps).toEqual([]);
  });

  it("one master cannot hear the primary during the outage: the primary stops, and a new tenure (higher epoch) follows the store's return", async () => {
    const c = await failsafeCluster();
    const primary = c.serving(0)[0]!;
    const epoch = primary.state().epoch!;
    c.net.cut(c.masters[1]!.id, primary.id);
    storeDown(c, true);
    await c.waitFor(() => primary.state().ended !== null, 10_000);
    expect(primary.state().ended?.reason).toMatch(/confirmation deadline passed|failsafe ended/);
    storeDown(c, false);
    c.net.heal();
    await c.waitFor(() => c.serving(0).length === 1, 10_000);
    expect(c.serving(0)[0]!.state().epoch).toBeGreaterThan(epoch);
    expect(c.overlaps).toEqual([]);
  });

  it("a master cut off mid-failsafe ends it: the primary stops by its earliest promise, never overlapping the next owner", async () => {
    const c = await failsafeCluster();
    const primary = c.serving(0)[0]!;
    storeDown(c, true);
    await c.waitFor(() => primary.state().failsafe === true, 10_000);
    c.net.cut(c.masters[0]!.id, primary.id);
    const cutAt = Date.now();
    await c.waitFor(() => !primary.state().serving, 10_000);
    // A promise lasts one lease TTL (1.2 s) from before it was asked for; failsafe_max is 6 s.
    expect(Date.now() - cutAt).toBeLessThan(4000);
    await c.waitFor(() => primary.state().ended !== null, 10_000);
    expect(primary.state().ended?.reason).toMatch(/failsafe ended: master .* unreachable/);
    storeDown(c, false);
    c.net.heal();
    await c.waitFor(() => c.serving(0).length === 1, 10_000);
    expect(c.overlaps).toEqual([]);
  });

  it("a primary cut from the store only (the masters reach it) is refused promises and replaced as without failsafe", async () => {
    const c = await failsafeCluster();
    const primary = c.serving(0)[0]!;
    storeDown(c, true, [primary.id]);
    await c.waitFor(() => c.serving(0).some((x) => x !== primary), 10_000);
    expect(primary.state().failsafe).toBeUndefined();
    expect(c.overlaps).toEqual([]);
  });

  it("failsafe_max caps serving on promises, counted from the primary's last liveness record", async () => {
    const c = await failsafeCluster(2, { ...settings, failsafeMaxMs: 2000 });
    const primary = c.serving(0)[0]!;
    storeDown(c, true);
    const cutAt = Date.now();
    await c.waitFor(() => primary.state().failsafe === true, 10_000);
    await c.waitFor(() => !primary.state().serving, 10_000);
    // The cap counts from the last record the store accepted, which precedes the cut.
    expect(Date.now() - cutAt).toBeLessThan(2000 + 500);
    await c.waitFor(() => primary.state().ended !== null, 10_000);
    expect(primary.state().ended?.reason).toMatch(/failsafe ended: failsafe_max reached/);
    storeDown(c, false);
    expect(c.overlaps).toEqual([]);
  });

  it("a master the primary does not know (started while it was cut off) replaces it only after failsafe_max past its last record: never an overlap", async () => {
    const c = await failsafeCluster(2, { ...settings, failsafeMaxMs: 2500 });
    const primary = c.serving(0)[0]!;
    const standby = c.coreapps.find((x) => x !== primary)!;
    // The primary and both masters lose the store; the standby keeps it. The masters still hear
    // the primary and promise, so it serves on — and a third master, which the primary never
    // listed, starts with the store and wins the master lease.
    storeDown(c, true, [primary.id, ...c.masters.map((m) => m.id)]);
    await c.waitFor(() => primary.state().failsafe === true, 10_000);
    const m3 = await c.addMaster("m3");
    c.net.cut(m3.id, primary.id);
    const joinedAt = Date.now();
    await c.waitFor(() => c.serving(0).includes(standby), 20_000);
    const replaced = c.assignments.find((a) => a.to === standby.id)!;
    expect(replaced.from).toBe(primary.id);
    // Not before the primary's cap: it served up to failsafe_max past its last record.
    expect(Date.now() - joinedAt).toBeGreaterThan(1000);
    expect(primary.state().serving).toBe(false);
    expect(c.overlaps).toEqual([]);
  });
});
