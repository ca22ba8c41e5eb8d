import { describe, expect, it } from "vitest";
import { judgeOwner, type OwnerEvidence } from "../../src/core/master/health.js";
import { shardOf } from "../../src/core/hash.js";
import { deriveTiming, failoverBoundMs, DEFAULT_SETTINGS } from "../../src/core/timing.js";

const t = deriveTiming(DEFAULT_SETTINGS);
const record = { id: "c1.a", name: "c1", role: "coreapp" as const, address: "h:1", meta: {}, ageMs: 1000 };
const healthy: OwnerEvidence = {
  record,
  ownSilenceMs: 1000,
  secondarySilencesMs: [1000],
  notServingForMs: 0,
  ended: null,
  masterTenureMs: 600_000,
};

describe("judgeOwner()", () => {
  it("keeps an owner that answers and whose record is fresh", () => {
    expect(judgeOwner(healthy, t)).toEqual({ healthy: true });
  });

  it("store detector: a record older than db_unhealthy_interval is unhealthy", () => {
    expect(judgeOwner({ ...healthy, record: { ...record, ageMs: 120_001 } }, t).healthy).toBe(false);
    expect(judgeOwner({ ...healthy, record: { ...record, ageMs: 119_000 } }, t).healthy).toBe(true);
  });

  it("heartbeat detector: unhealthy only when the primary master AND a secondary master hear nothing for unhealthy_interval", () => {
    expect(judgeOwner({ ...healthy, ownSilenceMs: 30_000, secondarySilencesMs: [30_000] }, t).healthy).toBe(false);
    expect(judgeOwner({ ...healthy, ownSilenceMs: 30_000, secondarySilencesMs: [2_000] }, t).healthy).toBe(true);
    expect(judgeOwner({ ...healthy, ownSilenceMs: 2_000, secondarySilencesMs: [30_000] }, t).healthy).toBe(true);
    // A quorum of three masters needs two secondaries to agree.
    const q3 = { ...t, heartbeatQuorum: 3 };
    expect(judgeOwner({ ...healthy, ownSilenceMs: 30_000, secondarySilencesMs: [30_000, 1_000] }, q3).healthy).toBe(true);
    expect(judgeOwner({ ...healthy, ownSilenceMs: 30_000, secondarySilencesMs: [30_000, 31_000] }, q3).healthy).toBe(false);
    // One master alone never judges by heartbeats.
    expect(judgeOwner({ ...healthy, ownSilenceMs: 60_000, secondarySilencesMs: [] }, t).healthy).toBe(true);
  });

  it("an owner that keeps saying it does not serve is unhealthy after unhealthy_interval + lease ttl", () => {
    expect(judgeOwner({ ...healthy, notServingForMs: t.unhealthyIntervalMs + t.leaseTtlMs }, t).healthy).toBe(false);
    expect(judgeOwner({ ...healthy, notServingForMs: t.unhealthyIntervalMs }, t).healthy).toBe(true);
  });

  it("an owner that said it gave this assignment up is unhealthy at once, whatever the detectors say", () => {
    const lapsed = { shard: 0, epoch: 3, reason: "confirmation deadline passed without a successful renewal", refused: false };
    expect(judgeOwner({ ...healthy, ended: lapsed }, t)).toEqual({
      healthy: false,
      reason: "the owner gave up this assignment: confirmation deadline passed without a successful renewal",
      blamesOwner: false, // its store link failed, not the coreapp: no cooldown for it
    });
    expect(judgeOwner({ ...healthy, ended: { ...lapsed, reason: "onPromote failed: Error: no", refused: true } }, t)).toMatchObject({
      blamesOwner: true,
    });
  });

  it("a missing record is unhealthy", () => {
    expect(judgeOwner({ ...healthy, record: null }, t).healthy).toBe(false);
  });

  it("a new primary master counts an old or missing record only after two db_heartbeat_intervals (the store may just be back)", () => {
    const justElected = { ...healthy, masterTenureMs: 2 * t.dbHeartbeatIntervalMs - 1 };
    expect(judgeOwner({ ...justElected, record: { ...record, ageMs: 120_001 } }, t).healthy).toBe(true);
    expect(judgeOwner({ ...justElected, record: null }, t).healthy).toBe(true);
    const settled = { ...healthy, masterTenureMs: 2 * t.dbHeartbeatIntervalMs };
    expect(judgeOwner({ ...settled, record: { ...record, ageMs: 120_001 } }, t).healthy).toBe(false);
    expect(judgeOwner({ ...settled, record: null }, t).healthy).toBe(false);
    // The heartbeat detector is not delayed.
    expect(judgeOwner({ ...justElected, ownSilenceMs: 30_000, secondarySilencesMs: [30_000] }, t).healthy).toBe(false);
  });
});

describe("timing", () => {
  it("deriveTiming() makes the lease lapse a heartbeat interval before detection, and renewals three per ttl", () => {
    expect(t.leaseTtlMs).toBe(25_000);
    expect(t.renewIntervalMs).toBe(8_333);
    expect(t.safetyMarginMs).toBe(2_500);
    expect(deriveTiming(DEFAULT_SETTINGS, { minTtlMs: 40_000 }).leaseTtlMs).toBe(40_000);
  });

  it("failoverBoundMs() uses the heartbeat detector only with more than one master", () => {
    expect(failoverBoundMs(t, 2)).toBe(30_000 + t.evaluateTickMs + 250);
    expect(failoverBoundMs(t, 1)).toBe(120_000 + t.masterBeatIntervalMs + 250);
  });

  it("failoverBoundMs() covers a primary cut from the store only: its lease's deadline, one heartbeat to say so, one tick", () => {
    // With the ttl a heartbeat below unhealthy_interval, that path is never the slowest...
    const cut = (x: typeof t) => x.leaseTtlMs - x.safetyMarginMs + x.heartbeatIntervalMs + x.evaluateTickMs;
    expect(cut(t)).toBeLessThan(t.unhealthyIntervalMs + t.evaluateTickMs);
    // ...unless a store's minimum ttl stretches the lease: then the bound follows it.
    const long = deriveTiming(
      { heartbeatIntervalMs: 400, unhealthyIntervalMs: 1000, dbHeartbeatIntervalMs: 500, dbUnhealthyIntervalMs: 2000 },
      { minTtlMs: 2000 },
    );
    expect(failoverBoundMs(long, 2, { minTtlMs: 2000 })).toBe(cut(long) + 250);
  });

  it("deriveTiming() and failoverBoundMs() honour a store's whole-second TTLs, minimum, expiry lag and age resolution", () => {
    const etcd = { ttlWholeSeconds: true, minTtlMs: 2000, expiryLagMs: 500, ageResolutionMs: 1000 };
    const fast = deriveTiming(
      { heartbeatIntervalMs: 100, unhealthyIntervalMs: 500, dbHeartbeatIntervalMs: 200, dbUnhealthyIntervalMs: 1000 },
      etcd,
    );
    expect(fast.leaseTtlMs).toBe(2000);
    expect(deriveTiming({ ...DEFAULT_SETTINGS, unhealthyIntervalMs: 3500, heartbeatIntervalMs: 1000 }, etcd).leaseTtlMs).toBe(3000);
    expect(failoverBoundMs(fast, 2, etcd)).toBe(2000 + 500 + 250);
  });
});

describe("shardOf()", () => {
  it("is FNV-1a over UTF-8, fixed forever (known vectors)", () => {
    expect(shardOf("", 1 << 30)).toBe(0x811c9dc5 % (1 << 30));
    expect(shardOf("a", 2 ** 32)).toBe(0xe40c292c);
    expect(shardOf("foobar", 2 ** 32)).toBe(0xbf9cf968);
  });

  it("spreads keys over all shards", () => {
    const counts = new Array(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[shardOf(`+1555${i}`, 8)]++;
    for (const c of counts) expect(c).toBeGreaterThan(700);
  });
});
