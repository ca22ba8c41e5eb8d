import { describe, expect, it } from "vitest";
import { MemoryStorage, MemoryStore } from "../../src/adapters/memory/index.js";
import { ManualClock } from "../../src/core/clock.js";
import { LeaseHolder } from "../../src/core/lease-holder.js";
import type { LeaseStore } from "../../src/core/ports/leases.js";
import { silentLogger } from "../../src/core/silent-logger.js";

const timing = { leaseTtlMs: 3000, renewIntervalMs: 1000, safetyMarginMs: 300 };

/** `store`'s leases, with `renew` replaced (a slow or lossy link to the store). */
function withRenew(store: MemoryStore, renew: LeaseStore["renew"]): LeaseStore {
  const leases = store.leases;
  return { acquire: leases.acquire.bind(leases), release: leases.release.bind(leases), current: leases.current.bind(leases), renew };
}

/**
 * A holder acquired at t=0 on a fresh store with timings the test may change (`live`, as a settings
 * change does); `leases` wraps the store's lease port.
 */
async function setupLive(leases: (store: MemoryStore) => LeaseStore = (store) => store.leases) {
  const clock = new ManualClock();
  const storage = new MemoryStorage(clock);
  const live = { ...timing };
  const h = await LeaseHolder.acquire(leases(new MemoryStore(storage)), clock, "l", "n1", live, silentLogger);
  if (!(h instanceof LeaseHolder)) throw new Error("not acquired");
  return { clock, storage, live, h };
}

async function setup() {
  const clock = new ManualClock();
  const storage = new MemoryStorage(clock);
  const store = new MemoryStore(storage);
  const h = await LeaseHolder.acquire(store.leases, clock, "l", "n1", timing, silentLogger);
  if (!(h instanceof LeaseHolder)) throw new Error("not acquired");
  return { clock, storage, store, h };
}

describe("LeaseHolder", () => {
  it("held stays true across renewals for many ttls while the store answers", async () => {
    const { clock, h } = await setup();
    await clock.advance(10_000, 50);
    expect(h.held).toBe(true);
    expect(h.remainingMs).toBeGreaterThan(timing.leaseTtlMs - timing.renewIntervalMs - timing.safetyMarginMs - 100);
  });

  it("held turns false before the store's expiry when the store stops answering (S4)", async () => {
    const { clock, storage, store, h } = await setup();
    await clock.advance(1500, 10);
    storage.unavailable = true;
    let endedAt = -1;
    void h.lost.then(() => (endedAt = clock.now()));
    await clock.advance(5000, 10);
    expect(h.held).toBe(false);
    expect(await h.lost).toMatch(/deadline/);
    storage.unavailable = false;
    // The store's expiry is the last successful renewal (t=1000) + ttl; our deadline preceded it by the margin.
    const storeExpiry = 1000 + timing.leaseTtlMs;
    expect(endedAt).toBeLessThanOrEqual(storeExpiry - timing.safetyMarginMs);
    expect(await store.leases.current("l")).toBeNull();
  });

  it("keeps the lease over a slow store link whose round trip is longer than a renewal interval, and never past the store's expiry", async () => {
    const clock = new ManualClock();
    const storage = new MemoryStorage(clock);
    const store = new MemoryStore(storage);
    // Each renewal spends 550 ms reaching the store and 550 ms coming back: a round trip of 1100 ms,
    // above the interval (1000 ms) and below (ttl − margin) / 2 = 1350 ms. Paced from answers, two
    // such renewals in a row (1100 + 1000 + 1100 ms) overran the deadline (2700 ms) and lost it.
    const slow = withRenew(store, async (lease, ttlMs) => {
      await clock.sleep(550);
      const ok = await store.leases.renew(lease, ttlMs);
      await clock.sleep(550);
      return ok;
    });
    const h = await LeaseHolder.acquire(slow, clock, "l", "n1", timing, silentLogger);
    if (!(h instanceof LeaseHolder)) throw new Error("not acquired");
    for (let t = 0; t < 20_000; t += 100) {
      await clock.advance(100, 10);
      expect(h.held).toBe(true);
      // Safety: the local deadline precedes the store's expiry by at least the margin.
      const expiresAt = storage.leases.get("l")!.expiresAt;
      expect(expiresAt - (clock.now() + h.remainingMs)).toBeGreaterThanOrEqual(timing.safetyMarginMs);
    }
  });

  it("held turns false at once when the store refuses a renewal", async () => {
    const { clock, storage, h } = await setup();
    storage.leases.set("l", { holder: "someone-else", epoch: 9, expiresAt: 1e9 });
    await clock.advance(1100, 10);
    expect(h.held).toBe(false);
    expect(await h.lost).toMatch(/refused/);
  });

  it("release() ends the tenure and frees the lease for the next holder with a higher epoch", async () => {
    const { clock, store, h } = await setup();
    await h.release();
    expect(h.held).toBe(false);
    const next = await LeaseHolder.acquire(store.leases, clock, "l", "n2", timing, silentLogger);
    expect(next instanceof LeaseHolder && next.lease.epoch).toBeGreaterThan(h.lease.epoch);
  });

  it("a shorter TTL from new settings reaches the store at the next renewal, and the local deadline still precedes the store's expiry", async () => {
    const { clock, storage, live, h } = await setupLive();
    await clock.advance(500, 10);
    Object.assign(live, { leaseTtlMs: 600, renewIntervalMs: 200, safetyMarginMs: 60 }); // settings changed
    await clock.advance(600, 10); // the renewal at t=1000 asks for 600 ms
    const renewedAt = 1000;
    expect(h.remainingMs).toBeLessThanOrEqual(renewedAt + 600 - 60 - clock.now());
    storage.unavailable = true; // from now on no renewal succeeds
    let endedAt = -1;
    void h.lost.then(() => (endedAt = clock.now()));
    await clock.advance(3000, 10);
    expect(await h.lost).toMatch(/deadline/);
    // The last successful renewal was sent at or before t=1100 with a 600 ms TTL: the store's expiry
    // is at least that + 600; the holder stopped a margin before, not at the old 3000 ms deadline.
    expect(endedAt).toBeLessThanOrEqual(1100 + 600 - 60);
    expect(endedAt).toBeGreaterThan(0);
  });

  it("says when the store may expire the lease from the grant it holds, not from settings changed since", async () => {
    const { clock, live, h } = await setupLive();
    // Granted at t=0 for 3000 ms: the store expires it no earlier than t=3000, one margin (300) after the deadline.
    expect(h.lapseRemainingMs - h.remainingMs).toBe(timing.safetyMarginMs);
    await clock.advance(500, 10);
    // Longer settings arrive; until the next renewal the lease is still the 3000 ms grant, so the
    // gap stays its own margin (300), not the new one (1000).
    Object.assign(live, { leaseTtlMs: 10_000, renewIntervalMs: 3333, safetyMarginMs: 1000 });
    expect(h.lapseRemainingMs).toBe(3000 - 500);
    expect(h.lapseRemainingMs - h.remainingMs).toBe(300);
    await clock.advance(600, 10); // the renewal at t=1000 asks for 10 s
    expect(h.lapseRemainingMs - h.remainingMs).toBe(1000);
    expect(h.lapseRemainingMs).toBeLessThanOrEqual(1000 + 10_000 - clock.now());
    await h.release();
    expect(h.lapseRemainingMs).toBe(0);
  });

  it("a renewal with a shorter TTL pulls the deadline in when it is sent: applied by the store but unanswered, it still shortened the expiry", async () => {
    // Renewals reach the store, but their answers are lost.
    const { clock, live, h } = await setupLive((store) =>
      withRenew(store, async (lease, ttlMs) => {
        await store.leases.renew(lease, ttlMs);
        throw new Error("timeout: the answer never came");
      }),
    );
    await clock.advance(500, 10);
    Object.assign(live, { leaseTtlMs: 600, renewIntervalMs: 200, safetyMarginMs: 60 }); // settings changed
    let endedAt = -1;
    void h.lost.then(() => (endedAt = clock.now()));
    await clock.advance(600, 10); // the renewal at t=1000 asks for 600 ms; the store expires the lease at 1600
    expect(h.remainingMs).toBeLessThanOrEqual(1000 + 600 - 60 - clock.now());
    expect(h.lapseRemainingMs).toBeLessThanOrEqual(1000 + 600 - clock.now());
    await clock.advance(3000, 10);
    expect(await h.lost).toMatch(/deadline/);
    // The store's expiry is 1600 or later (the unanswered retries renewed it too); the holder
    // stopped a margin before 1600, not at the old grant's deadline (2700).
    expect(endedAt).toBeGreaterThan(0);
    expect(endedAt).toBeLessThanOrEqual(1000 + 600 - 60);
  });
});
