import { describe, expect, it } from "vitest";
import { ShardOwner } from "../../src/core/coreapp/shard-owner.js";
import type { Clock } from "../../src/core/ports/clock.js";
import type { AcquireResult, LeaseStore } from "../../src/core/ports/leases.js";
import { silentLogger } from "../../src/core/silent-logger.js";

/**
 * ShardOwner against interleavings that real clocks make rare: a lease granted after a pause, and
 * a renewal answer that lands after the deadline but before the deadline timer runs. (Found by
 * review; each test failed before its fix.)
 */
const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};
const app = (promoted: string[] = []) => ({
  onPromote(shard: number, epoch: number) {
    promoted.push(`${shard}@${epoch}`);
  },
  onDemote() {},
  handle() {
    return { status: 200 };
  },
});

const shortTiming = { leaseTtlMs: 300, renewIntervalMs: 100, safetyMarginMs: 30, handoverPollMs: 5, drainTimeoutMs: 50 };

/** A lease store that grants every acquire and answers renewals with `renewOk()`. */
const grantingLeases = (renewOk: () => boolean): LeaseStore => ({
  acquire: async (name, holder) => ({ acquired: true, lease: { name, holder, epoch: 1 } }),
  renew: async () => renewOk(),
  release: async () => {},
  current: async () => null,
});

/** A lease store where shard 0's lease is held by B until `free()`, then granted at epoch 5. */
function heldByB(): { leases: LeaseStore; free: () => void } {
  let held = true;
  const leases: LeaseStore = {
    acquire: async (name, holder) =>
      held ? { acquired: false, holder: "B", epoch: 3, expiresInMs: 60_000 } : { acquired: true, lease: { name, holder, epoch: 5 } },
    renew: async () => true,
    release: async () => {},
    current: async () => null,
  };
  return { leases, free: () => (held = false) };
}

/** A started owner of shard 0 at epoch 4 on `grantingLeases(renewOk)` with the short timing. */
async function promotedAt4(clock: HandClock, renewOk: () => boolean, promoted: string[]): Promise<ShardOwner> {
  const owner = new ShardOwner("A", grantingLeases(renewOk), app(promoted), clock, shortTiming, silentLogger);
  owner.onMapChange([{ shard: 0, owner: "A", epoch: 4 }]);
  owner.start();
  await flush();
  return owner;
}

/** A clock whose timers fire only when the test says so: a late timer callback on demand. */
class HandClock implements Clock {
  t = 0;
  private n = 0;
  sleepers: { id: number; ms: number; until: number; wake: () => void }[] = [];
  now() {
    return this.t;
  }
  sleep(ms: number, signal?: AbortSignal) {
    return new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const s = {
        id: ++this.n,
        ms,
        until: this.t + ms,
        wake: () => {
          this.sleepers = this.sleepers.filter((x) => x !== s);
          resolve();
        },
      };
      this.sleepers.push(s);
      signal?.addEventListener("abort", s.wake, { once: true });
    });
  }
  fire(ms: number) {
    const s = this.sleepers.find((x) => x.ms === ms);
    if (!s) throw new Error(`no sleeper of ${ms} ms`);
    s.wake();
  }
}

describe("ShardOwner", () => {
  it("does not call onPromote for a lease granted after its deadline passed, or for an assignment that moved meanwhile", async () => {
    const clock = new HandClock();
    let answer!: (r: AcquireResult) => void;
    const releases: number[] = [];
    const leases: LeaseStore = {
      acquire: () => new Promise((r) => (answer = r)),
      renew: async () => true,
      release: async (l) => void releases.push(l.epoch),
      current: async () => null,
    };
    const promoted: string[] = [];
    const timing = { leaseTtlMs: 30_000, renewIntervalMs: 10_000, safetyMarginMs: 3_000, handoverPollMs: 25, drainTimeoutMs: 5_000 };
    const owner = new ShardOwner("A", leases, app(promoted), clock, timing, silentLogger);
    owner.onMapChange([{ shard: 0, owner: "A", epoch: 7 }]);
    owner.start();
    await flush(); // acquire sent at t=0
    clock.t = 40_000; // paused 40 s; the master moved the shard to B@8 meanwhile
    owner.onMapChange([{ shard: 0, owner: "B", epoch: 8 }]);
    answer({ acquired: true, lease: { name: "shard/0", holder: "A", epoch: 5 } });
    await flush();
    expect(promoted).toEqual([]);
    expect(owner.state()).toEqual({ shard: null, epoch: null, serving: false, ended: null });
    expect(releases).toEqual([5]);
  });

  it("a renewal answer arriving after the deadline does not revive the tenure: the owner demotes and gives the lease back", async () => {
    const clock = new HandClock();
    let pendingRenew: ((ok: boolean) => void) | null = null;
    let releases = 0;
    const leases: LeaseStore = {
      acquire: async (name, holder) => ({ acquired: true, lease: { name, holder, epoch: 1 } }),
      renew: () => new Promise<boolean>((r) => (pendingRenew = r)),
      release: async () => void releases++,
      current: async () => null,
    };
    const timing = { leaseTtlMs: 300, renewIntervalMs: 100, safetyMarginMs: 30, handoverPollMs: 5, drainTimeoutMs: 50 };
    const owner = new ShardOwner("A", leases, app(), clock, timing, silentLogger);
    owner.onMapChange([{ shard: 0, owner: "A", epoch: 1 }]);
    owner.start();
    await flush();
    expect(owner.serves(0, 1)).toBe(true);
    clock.t = 100;
    clock.fire(100); // the renewal loop's sleep: a renewal goes out at t=100 and hangs
    await flush();
    expect(pendingRenew).not.toBeNull();
    clock.t = 280; // past the local deadline (270); the deadline timer has not run yet
    owner.onMapChange([{ shard: 0, owner: "B", epoch: 2 }]);
    await flush();
    pendingRenew!(true); // the renewal sent at t=100 succeeds, late
    await flush();
    expect(owner.serves(0, 1)).toBe(false);
    expect(owner.state().shard).toBeNull();
    expect(releases).toBe(1); // given back, so B need not wait for the store's expiry
  });

  it("acts at most once per assignment: after its lease lapsed it does not promote at that epoch again, says so, and promotes at the next", async () => {
    const clock = new HandClock();
    let renewOk = true;
    const promoted: string[] = [];
    const owner = await promotedAt4(clock, () => renewOk, promoted);
    expect(promoted).toEqual(["0@4"]);
    renewOk = false; // the store refuses the renewal: its lease was lost (a store outage, a data loss)
    clock.t = 100;
    clock.fire(100);
    await flush();
    expect(owner.state()).toMatchObject({ shard: null, serving: false, ended: { shard: 0, epoch: 4, refused: false } });
    // The store is back and the map still names A at epoch 4: taking it again would reuse the token.
    renewOk = true;
    for (let i = 0; i < 5; i++) {
      clock.t += shortTiming.renewIntervalMs;
      for (const s of [...clock.sleepers]) s.wake();
      await flush();
    }
    expect(promoted).toEqual(["0@4"]);
    owner.onMapChange([{ shard: 0, owner: "A", epoch: 5 }]); // the primary master re-issued it
    await flush();
    expect(promoted).toEqual(["0@4", "0@5"]);
    expect(owner.serves(0, 5)).toBe(true);
  });

  it("a void entry (the store lost the shard map) ends the tenure, and the cached assignment is never taken again", async () => {
    const clock = new HandClock();
    const promoted: string[] = [];
    const owner = await promotedAt4(clock, () => true, promoted);
    expect(owner.serves(0, 4)).toBe(true);
    owner.onMapChange([{ shard: 0, owner: null, epoch: 4 }]);
    await flush();
    expect(owner.state()).toMatchObject({ shard: null, serving: false, ended: { shard: 0, epoch: 4 } });
    for (let i = 0; i < 3; i++) {
      clock.t += shortTiming.renewIntervalMs;
      for (const s of [...clock.sleepers]) s.wake();
      await flush();
    }
    expect(promoted).toEqual(["0@4"]);
  });

  describe("waiting for the previous owner's lease on a store that pushes its release", () => {
    /** Held by B until `free()`; `watchRelease` counts its watches and hands the test their callbacks. */
    function handoverStore(opts: { freeWhileWatchStarts?: boolean } = {}) {
      const b = heldByB();
      const watchers: (() => void)[] = [];
      let closed = 0;
      const leases: LeaseStore = {
        ...b.leases,
        watchRelease: async (_name, onChange) => {
          if (opts.freeWhileWatchStarts) b.free(); // released before the watch is live: no event for it
          watchers.push(onChange);
          return async () => {
            closed++;
          };
        },
      };
      return { leases, watchers, free: b.free, closed: () => closed };
    }

    it("takes the shard as soon as the store says the lease was released, without waiting for a poll", async () => {
      const clock = new HandClock();
      const promoted: string[] = [];
      const store = handoverStore();
      const owner = new ShardOwner("A", store.leases, app(promoted), clock, shortTiming, silentLogger);
      owner.onMapChange([{ shard: 0, owner: "A", epoch: 5 }]);
      owner.start();
      await flush();
      expect(promoted).toEqual([]);
      expect(store.watchers).toHaveLength(1); // one watch, however often it looked
      store.free();
      store.watchers[0]!(); // no timer fires: only the notification can wake it
      await flush();
      expect(promoted).toEqual(["0@5"]);
      expect(store.closed()).toBe(1); // the watch ends with the wait
      await owner.close();
    });

    it("a release between its read and the watch going live is not missed", async () => {
      const clock = new HandClock();
      const promoted: string[] = [];
      const store = handoverStore({ freeWhileWatchStarts: true });
      const owner = new ShardOwner("A", store.leases, app(promoted), clock, shortTiming, silentLogger);
      owner.onMapChange([{ shard: 0, owner: "A", epoch: 5 }]);
      owner.start();
      await flush();
      expect(promoted).toEqual(["0@5"]);
      await owner.close();
    });
  });

  it("on a store that only polls, takes a released lease when told to look again (the primary master's hint), without waiting for its poll", async () => {
    const clock = new HandClock();
    const promoted: string[] = [];
    const store = heldByB();
    const owner = new ShardOwner("A", store.leases, app(promoted), clock, shortTiming, silentLogger);
    owner.onMapChange([{ shard: 0, owner: "A", epoch: 5 }]);
    owner.start();
    await flush();
    store.free(); // B let go; no timer fires, and this store pushes nothing
    await flush();
    expect(promoted).toEqual([]);
    owner.lookAgain();
    await flush();
    expect(promoted).toEqual(["0@5"]);
    await owner.close();
  });

  it("says it acquired the lease, with the tenure's deadline already known, before onPromote runs", async () => {
    const clock = new HandClock();
    const order: string[] = [];
    let remainingAtAcquired: number | null = null;
    let lapseAtAcquired: number | null = null;
    const owner: ShardOwner = new ShardOwner(
      "A",
      grantingLeases(() => true),
      { ...app(), onPromote: () => void order.push("onPromote") },
      clock,
      shortTiming,
      silentLogger,
      (e) => {
        order.push(e.type);
        if (e.type === "acquired") {
          remainingAtAcquired = owner.tenureRemainingMs();
          lapseAtAcquired = owner.tenureLapseMs();
        }
      },
    );
    expect(owner.tenureLapseMs()).toBeNull();
    owner.onMapChange([{ shard: 0, owner: "A", epoch: 5 }]);
    owner.start();
    await flush();
    expect(order).toEqual(["named", "acquired", "onPromote", "promoted"]);
    expect(remainingAtAcquired).toBeGreaterThan(0);
    expect(remainingAtAcquired).toBeLessThanOrEqual(shortTiming.leaseTtlMs - shortTiming.safetyMarginMs);
    // The store may expire the lease no earlier than one margin after the tenure's deadline.
    expect(lapseAtAcquired! - remainingAtAcquired!).toBe(shortTiming.safetyMarginMs);
    await owner.close();
    expect(owner.tenureLapseMs()).toBeNull();
  });

  it("is at risk from the moment the map names it, says so before any lease attempt, and not once the map moves away", async () => {
    const clock = new HandClock();
    const order: string[] = [];
    const leases: LeaseStore = {
      acquire: async () => {
        order.push("acquire");
        return { acquired: false, holder: "B", epoch: 3, expiresInMs: 60_000 };
      },
      renew: async () => true,
      release: async () => {},
      current: async () => null,
    };
    const owner = new ShardOwner("A", leases, app(), clock, shortTiming, silentLogger, (e) => order.push(e.type));
    owner.start();
    await flush();
    expect(owner.atRisk()).toBe(false); // a standby
    owner.onMapChange([{ shard: 0, owner: "A", epoch: 5 }]);
    expect(order).toEqual(["named"]); // synchronously, before the loop's first attempt
    expect(owner.atRisk()).toBe(true);
    await flush();
    expect(order.slice(0, 2)).toEqual(["named", "acquire"]);
    owner.onMapChange([{ shard: 0, owner: "A", epoch: 5 }]); // the same assignment again: no second "named"
    expect(order.filter((e) => e === "named")).toHaveLength(1);
    owner.onMapChange([{ shard: 0, owner: "C", epoch: 6 }]);
    expect(owner.atRisk()).toBe(false); // no tenure, and the map names another
    await owner.close();
  });
});
