import { StoreUnavailableError } from "../core/errors.js";
import { MASTER_LEASE, type Lease } from "../core/ports/leases.js";
import type { ShardAssignment } from "../core/ports/shard-map.js";
import type { Store, StoreCapabilities } from "../core/ports/store.js";
import { randomNamespace, refusedPort, startBlackhole } from "./net.js";

/**
 * The assertions the conformance suites make (store, control plane, schema lifecycle); vitest's
 * `expect(value)` provides them (jest's has the same shape).
 */
export interface ConformanceMatchers {
  /** Same value (`Object.is`). */
  toBe(expected: unknown): void;
  /** Deeply equal. */
  toEqual(expected: unknown): void;
  /** Has at least these properties, deeply. */
  toMatchObject(expected: object): void;
  /** Is `null`. */
  toBeNull(): void;
  /** Is an instance of this class. */
  toBeInstanceOf(expected: unknown): void;
  /** The array holds this item, or the string this substring. */
  toContain(expected: unknown): void;
  /** Has this `length`. */
  toHaveLength(expected: number): void;
  /** `>` expected. */
  toBeGreaterThan(expected: number): void;
  /** `>=` expected. */
  toBeGreaterThanOrEqual(expected: number): void;
  /** `<` expected. */
  toBeLessThan(expected: number): void;
  /** `<=` expected. */
  toBeLessThanOrEqual(expected: number): void;
  /** The same matchers, negated. */
  readonly not: ConformanceMatchers;
  /** Awaits the promise under test and matches the reason it rejected with. */
  readonly rejects: {
    /** The promise rejected with an instance of this class. */
    toBeInstanceOf(expected: unknown): Promise<void>;
  };
}

/**
 * The test functions the suites register their tests with — pass your runner's, e.g.
 * `import { afterEach, describe, expect, it } from "vitest"`. Nothing here depends on a runner:
 * vitest's functions fit as they are (this repository's adapter tests pass them); jest's have the same shape.
 */
export interface ConformanceTestApi {
  /** Groups tests under a name. */
  describe: (name: string, body: () => void) => void;
  /** Registers one test; `timeoutMs` is the runner's per-test timeout (vitest's and jest's third argument). */
  it: (name: string, body: () => Promise<void>, timeoutMs?: number) => void;
  /** Runs after each test of the file: the suites close the stores they opened and undo clock skew. */
  afterEach: (body: () => Promise<void>) => void;
  /** The runner's `expect`, with the asymmetric matchers the suites use. */
  expect: {
    (actual: unknown): ConformanceMatchers;
    /** Matches any instance of `constructor`, inside `toEqual`. */
    any(constructor: unknown): unknown;
    /** Matches any object having these properties, inside `toEqual`. */
    objectContaining(expected: object): unknown;
  };
}

/**
 * What the conformance suite needs from an adapter: a factory and its declared limits. Backend
 * limits are declared in `capabilities`, never tested for by name in the suite.
 */
export interface ConformanceOptions {
  /** Opens a store on its own namespace (table or key prefix) so tests never share state. */
  open(namespace: string): Promise<Store>;
  /** The backend's declared limits, plus what the tests need to know about it. */
  capabilities: StoreCapabilities & {
    /** The lease TTL the tests use; the store's own minimum where it has one. */
    ttlMs: number;
    /**
     * Opens a store of this backend pointed at `host:port` with the given operation timeout, for
     * the unreachable-store tests. Absent for stores without a server (memory, sqlite): those
     * tests are then not registered.
     */
    openAt?: (namespace: string, host: string, port: number, operationTimeoutMs: number) => Promise<Store>;
    /** Breaks the store's notification channel (kills the LISTEN / subscriber connection). */
    interruptNotifications?: (store: Store) => Promise<void>;
    /** The adapter implements `LeaseStore.watchRelease`: the suite checks that it reports a release. */
    leaseReleaseNotifications?: boolean;
  };
  /** Per-test timeout in ms (default 30 000): tests wait for real lease expiries. */
  readonly timeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true or `timeoutMs` passes; returns whether it did. */
async function eventually(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(10);
  }
  return check();
}

/**
 * Wall-clock skew for one test: `Date.now()` and `new Date()` read `offsetMs` ahead of the real
 * clock until `restore()`. Timers and `performance.now()` are untouched, as on a machine whose
 * clock was set wrong. Shared by the conformance suites, which cannot use a runner's fake timers; not part of the kit's API.
 */
export function skewWallClock(offsetMs: number): { restore(): void; set(offset: number): void } {
  const RealDate = Date;
  let offset = offsetMs;
  class SkewedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(RealDate.now() + offset);
      else super(...(args as [number]));
    }
    static override now(): number {
      return RealDate.now() + offset;
    }
  }
  globalThis.Date = SkewedDate as DateConstructor;
  return {
    restore: () => {
      globalThis.Date = RealDate;
    },
    set: (o: number) => {
      offset = o;
    },
  };
}

/**
 * The store conformance suite: registers, with the given test functions, every test a store
 * adapter must pass — leases, the shard map's compare-and-set, liveness, schema upkeep, and (with
 * `openAt`) the behaviour of an unreachable store. Run it against a real server, never a mock of
 * the driver. Call it at the top level of a test file:
 *
 * ```ts
 * import { afterEach, describe, expect, it } from "vitest";
 * storeConformance({ describe, it, afterEach, expect }, "mystore", { open: …, capabilities: { ttlMs: 1000 } });
 * ```
 */
export function storeConformance(t: ConformanceTestApi, backend: string, options: ConformanceOptions): void {
  const { describe, expect } = t;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const it = (name: string, body: () => Promise<void>) => t.it(name, body, timeoutMs);
  let skew: { restore(): void } | null = null;
  const { ttlMs } = options.capabilities;
  const expiryLagMs = options.capabilities.expiryLagMs ?? 0;
  const ageResolutionMs = options.capabilities.ageResolutionMs ?? 0;
  const notifyBudgetMs = (options.capabilities.pollIntervalMs ?? 0) + 2000;
  const opened: Store[] = [];
  const open = async (ns: string) => {
    const store = await options.open(ns);
    opened.push(store);
    return store;
  };
  /** Two handles on one namespace: two "nodes" sharing one store. */
  const openPair = async () => {
    const ns = randomNamespace();
    const a = await open(ns);
    await a.migrate();
    const b = await open(ns);
    return [a, b] as const;
  };
  /** The master lease for `holder`, long enough for any test that does not let it lapse on purpose. */
  const master = async (store: Store, holder = "m1"): Promise<Lease> => {
    const r = await store.leases.acquire(MASTER_LEASE, holder, ttlMs * 20);
    if (!r.acquired) throw new Error("setup: master lease not acquired");
    return r.lease;
  };

  t.afterEach(async () => {
    skew?.restore();
    skew = null;
    await Promise.all(opened.splice(0).map((s) => s.close().catch(() => {})));
  });

  describe(`${backend}: store conformance`, () => {
    describe("leases", () => {
      it("acquire() gives a never-seen lease to the caller with a positive epoch", async () => {
        const [a] = await openPair();
        const r = await a.leases.acquire("l", "n1", ttlMs);
        expect(r).toEqual({ acquired: true, lease: { name: "l", holder: "n1", epoch: expect.any(Number) } });
        const epoch = r.acquired ? r.lease.epoch : 0;
        expect(epoch).toBeGreaterThan(0);
        expect(await a.leases.current("l")).toEqual({ name: "l", holder: "n1", epoch });
      });

      it("acquire() returns acquired=false naming the holder while another holder's lease is live", async () => {
        const [a, b] = await openPair();
        const first = await a.leases.acquire("l", "n1", ttlMs);
        const r = await b.leases.acquire("l", "n2", ttlMs);
        expect(r.acquired).toBe(false);
        if (r.acquired || !first.acquired) return;
        expect(r.holder).toBe("n1");
        expect(r.epoch).toBe(first.lease.epoch);
        expect(r.expiresInMs).toBeGreaterThan(0);
        expect(r.expiresInMs).toBeLessThanOrEqual(ttlMs + 1000);
      });

      it("acquire() by the live holder is idempotent and keeps the epoch", async () => {
        const [a] = await openPair();
        const first = await a.leases.acquire("l", "n1", ttlMs);
        const again = await a.leases.acquire("l", "n1", ttlMs);
        expect(again).toEqual(first);
        expect(again.acquired).toBe(true);
      });

      it("acquire() from many concurrent contenders gives the lease to exactly one", async () => {
        const ns = randomNamespace();
        const first = await open(ns);
        await first.migrate();
        const handles = [first, ...(await Promise.all(Array.from({ length: 7 }, () => open(ns))))];
        const results = await Promise.all(
          Array.from({ length: 24 }, (_, i) => handles[i % handles.length]!.leases.acquire("race", `n${i}`, ttlMs * 4)),
        );
        const winners = results.filter((r) => r.acquired);
        expect(winners).toHaveLength(1);
        const winner = winners[0]!.acquired ? winners[0]!.lease.holder : "";
        for (const r of results) {
          if (!r.acquired) expect([winner, null]).toContain(r.holder);
        }
        expect(await first.leases.current("race")).toMatchObject({ holder: winner });
      });

      it("acquire() after the holder's lease expired by store time succeeds with the next epoch, and the old holder's renew() returns false", async () => {
        const [a, b] = await openPair();
        const r1 = await a.leases.acquire("l", "n1", ttlMs);
        if (!r1.acquired) throw new Error("setup: not acquired");
        await sleep(ttlMs + expiryLagMs + 300);
        expect(await a.leases.current("l")).toBeNull();
        const r2 = await b.leases.acquire("l", "n2", ttlMs);
        expect(r2.acquired && r2.lease.holder).toBe("n2");
        expect(r2.acquired && r2.lease.epoch).toBeGreaterThan(r1.lease.epoch);
        expect(await a.leases.renew(r1.lease, ttlMs)).toBe(false);
      });

      it("renew() keeps a lease live past its first ttl, and fails once it has expired", async () => {
        const [a, b] = await openPair();
        const r = await a.leases.acquire("l", "n1", ttlMs);
        if (!r.acquired) throw new Error("setup: not acquired");
        for (let i = 0; i < 4; i++) {
          await sleep(ttlMs / 3);
          expect(await a.leases.renew(r.lease, ttlMs)).toBe(true);
        }
        expect((await b.leases.acquire("l", "n2", ttlMs)).acquired).toBe(false);
        await sleep(ttlMs + expiryLagMs + 300);
        expect(await a.leases.renew(r.lease, ttlMs)).toBe(false);
      });

      it("release() frees the lease at once for another holder, with the next epoch", async () => {
        const [a, b] = await openPair();
        const r = await a.leases.acquire("l", "n1", ttlMs * 10);
        if (!r.acquired) throw new Error("setup: not acquired");
        await a.leases.release(r.lease);
        expect(await a.leases.current("l")).toBeNull();
        const r2 = await b.leases.acquire("l", "n2", ttlMs);
        expect(r2.acquired && r2.lease.holder).toBe("n2");
        expect(r2.acquired && r2.lease.epoch).toBeGreaterThan(r.lease.epoch);
      });

      if (options.capabilities.leaseReleaseNotifications) {
        it("watchRelease() reports the release of the watched lease, once live, and not after it is closed", async () => {
          const [a, b] = await openPair();
          const r = await a.leases.acquire("l", "n1", ttlMs * 10);
          if (!r.acquired) throw new Error("setup: not acquired");
          expect(typeof b.leases.watchRelease).toBe("function");
          let changes = 0;
          const close = await b.leases.watchRelease!(
            "l",
            () => changes++,
            () => {},
          );
          await a.leases.release(r.lease);
          expect(await eventually(() => changes > 0, notifyBudgetMs)).toBe(true);
          await close();
          const seen = changes;
          const r2 = await a.leases.acquire("l", "n1", ttlMs * 10);
          if (!r2.acquired) throw new Error("setup: not acquired again");
          await a.leases.release(r2.lease);
          await sleep(300);
          expect(changes).toBe(seen);
        });

        it("watchRelease() of several names, and of one name twice, each hear their own lease's release; closing one leaves the others and the shard-map watch working", async () => {
          const [a, b] = await openPair();
          const take = async (name: string) => {
            const r = await a.leases.acquire(name, "n1", ttlMs * 10);
            if (!r.acquired) throw new Error(`setup: ${name} not acquired`);
            return r.lease;
          };
          const seen: ShardAssignment[] = [];
          const w = await b.shardMap.watch((changed) => seen.push(...changed));
          const calls = { x1: 0, x2: 0, y: 0 };
          const watch = (name: string, key: keyof typeof calls) =>
            b.leases.watchRelease!(
              name,
              () => calls[key]++,
              () => {},
            );
          try {
            const closeX1 = await watch("x", "x1");
            const closeX2 = await watch("x", "x2");
            const closeY = await watch("y", "y");
            const y = await take("y");
            // Taking a lease may be reported too (a change of it): let that arrive before counting.
            const settled = async (lease: Lease) => {
              await sleep(300);
              return [lease, { ...calls }] as const;
            };
            let [x, before] = await settled(await take("x"));
            await a.leases.release(x);
            expect(await eventually(() => calls.x1 > before.x1 && calls.x2 > before.x2, notifyBudgetMs)).toBe(true);
            expect(calls.y).toBe(before.y);
            await closeX1();
            [x, before] = await settled(await take("x"));
            await a.leases.release(x);
            expect(await eventually(() => calls.x2 > before.x2, notifyBudgetMs)).toBe(true);
            expect(calls.x1).toBe(before.x1);
            await a.leases.release(y);
            expect(await eventually(() => calls.y > before.y, notifyBudgetMs)).toBe(true);
            await Promise.all([closeX2(), closeY()]);
            const r = await a.shardMap.assign(0, 0, "c1", await take(MASTER_LEASE));
            expect(r.ok).toBe(true);
            expect(await eventually(() => seen.some((s) => s.owner === "c1"), notifyBudgetMs)).toBe(true);
          } finally {
            await w.close();
          }
        });

        if (options.capabilities.interruptNotifications) {
          const interrupt = options.capabilities.interruptNotifications;
          it("watchRelease() calls onLost once when its notification channel breaks, and a new watch hears the next release", async () => {
            const [a, b] = await openPair();
            let lost = 0;
            await b.leases.watchRelease!(
              "l",
              () => {},
              () => lost++,
            );
            await interrupt(b);
            expect(await eventually(() => lost > 0, notifyBudgetMs)).toBe(true);
            let changes = 0;
            const close = await b.leases.watchRelease!(
              "l",
              () => changes++,
              () => {},
            );
            try {
              const r = await a.leases.acquire("l", "n1", ttlMs * 10);
              if (!r.acquired) throw new Error("setup: not acquired");
              await a.leases.release(r.lease);
              expect(await eventually(() => changes > 0, notifyBudgetMs)).toBe(true);
              expect(lost).toBe(1);
            } finally {
              await close();
            }
          });
        }
      }

      it("release() of a lease no longer held changes nothing", async () => {
        const [a, b] = await openPair();
        const r = await a.leases.acquire("l", "n1", ttlMs * 10);
        if (!r.acquired) throw new Error("setup: not acquired");
        await b.leases.release({ ...r.lease, epoch: r.lease.epoch + 7 });
        await b.leases.release({ ...r.lease, holder: "n2" });
        expect(await a.leases.current("l")).toEqual(r.lease);
      });

      it("epochs of one lease name strictly increase across holders and are never reused", async () => {
        const [a] = await openPair();
        const seen: number[] = [];
        for (let i = 0; i < 6; i++) {
          const r = await a.leases.acquire("l", `n${i % 2}`, ttlMs * 10);
          if (!r.acquired) throw new Error("not acquired");
          seen.push(r.lease.epoch);
          await a.leases.release(r.lease);
        }
        for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1]!);
      });

      it("expiry is judged by the store's clock: a client wall clock one hour ahead changes nothing", async () => {
        const [a, b] = await openPair();
        const clock = (skew = skewWallClock(3_600_000));
        const r = await a.leases.acquire("l", "n1", ttlMs * 3);
        expect(r.acquired).toBe(true);
        expect((await b.leases.acquire("l", "n2", ttlMs)).acquired).toBe(false);
        clock.set(-3_600_000);
        expect(await a.leases.current("l")).toMatchObject({ holder: "n1" });
        clock.restore();
      });
    });

    describe("shard map", () => {
      it("read() of a fresh store is empty", async () => {
        const [a] = await openPair();
        expect(await a.shardMap.read()).toEqual([]);
      });

      it("assign() under the live master lease sets the owner and raises the epoch", async () => {
        const [a, b] = await openPair();
        const m = await master(a);
        const r1 = await a.shardMap.assign(0, 0, "c1", m);
        if (!r1.ok) throw new Error("assign failed");
        expect(r1.assignment).toMatchObject({ shard: 0, owner: "c1" });
        expect(r1.assignment.epoch).toBeGreaterThan(0);
        const r2 = await a.shardMap.assign(1, 0, "c2", m);
        const r3 = await a.shardMap.assign(0, r1.assignment.epoch, null, m);
        if (!r2.ok || !r3.ok) throw new Error("assign failed");
        expect(r3.assignment.epoch).toBeGreaterThan(r1.assignment.epoch);
        expect(await b.shardMap.read()).toEqual([
          { shard: 0, owner: null, epoch: r3.assignment.epoch },
          { shard: 1, owner: "c2", epoch: r2.assignment.epoch },
        ]);
      });

      it("assign() with a stale expected epoch returns a conflict with the current entry and writes nothing", async () => {
        const [a] = await openPair();
        const m = await master(a);
        const r1 = await a.shardMap.assign(0, 0, "c1", m);
        if (!r1.ok) throw new Error("assign failed");
        const r = await a.shardMap.assign(0, 0, "c2", m);
        expect(r).toEqual({ ok: false, reason: "conflict", current: r1.assignment });
        expect(await a.shardMap.read()).toEqual([r1.assignment]);
      });

      it("assign() from a deposed master (stale master epoch) is fenced and writes nothing", async () => {
        const [a, b] = await openPair();
        const r1 = await a.leases.acquire(MASTER_LEASE, "m1", ttlMs);
        if (!r1.acquired) throw new Error("setup");
        const first = await a.shardMap.assign(0, 0, "c1", r1.lease);
        if (!first.ok) throw new Error("setup: assign failed");
        const e = first.assignment.epoch;
        await sleep(ttlMs + expiryLagMs + 300);
        // The old master's lease has lapsed: fenced even before anyone else takes over.
        expect(await a.shardMap.assign(0, e, "c9", r1.lease)).toEqual({ ok: false, reason: "fenced" });
        const m2 = await master(b, "m2");
        expect(await a.shardMap.assign(0, e, "c9", r1.lease)).toEqual({ ok: false, reason: "fenced" });
        // The live holder's name with an older tenure's epoch is fenced too.
        expect(await a.shardMap.assign(0, e, "c9", { ...m2, epoch: r1.lease.epoch })).toEqual({ ok: false, reason: "fenced" });
        expect(await b.shardMap.read()).toEqual([first.assignment]);
      });

      it("assign() from concurrent writers with the same expected epoch succeeds exactly once", async () => {
        const [a, b] = await openPair();
        const m = await master(a);
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).shardMap.assign(3, 0, `c${i}`, m)));
        const winners = results.filter((r) => r.ok);
        expect(winners).toHaveLength(1);
        expect(await a.shardMap.read()).toEqual([winners[0]!.ok && winners[0]!.assignment]);
      });

      it("watch() delivers the whole map first, then every change in epoch order, to every watcher", async () => {
        const [a, b] = await openPair();
        const m = await master(a);
        const r0 = await a.shardMap.assign(0, 0, "c1", m);
        if (!r0.ok) throw new Error("setup: assign failed");
        const seen: ShardAssignment[][] = [[], []];
        const watches = await Promise.all([a, b].map((s, i) => s.shardMap.watch((changed) => seen[i]!.push(...changed))));
        try {
          expect(seen[0]).toEqual([r0.assignment]);
          let last = r0.assignment;
          for (let i = 2; i <= 6; i++) {
            const r = await a.shardMap.assign(0, last.epoch, `c${i}`, m);
            if (!r.ok) throw new Error("assign failed");
            last = r.assignment;
          }
          for (const s of seen) {
            expect(await eventually(() => s.at(-1)?.epoch === last.epoch, notifyBudgetMs)).toBe(true);
            const epochs = s.map((x) => x.epoch);
            expect(epochs).toEqual([...epochs].sort((x, y) => x - y));
            expect(new Set(epochs).size).toBe(epochs.length);
            expect(s.at(-1)).toEqual({ shard: 0, owner: "c6", epoch: last.epoch });
          }
        } finally {
          await Promise.all(watches.map((w) => w.close()));
        }
      });

      it("watch().lookNow() (the primary master's hint): a change is delivered after it, and it is harmless once closed", async () => {
        const [a, b] = await openPair();
        const m = await master(a);
        const seen: ShardAssignment[] = [];
        const w = await b.shardMap.watch((changed) => seen.push(...changed));
        const r = await a.shardMap.assign(1, 0, "c1", m);
        if (!r.ok) throw new Error("setup: assign failed");
        w.lookNow();
        expect(await eventually(() => seen.some((x) => x.shard === 1 && x.epoch === r.assignment.epoch), notifyBudgetMs)).toBe(true);
        await w.close();
        w.lookNow();
      });

      if (options.capabilities.interruptNotifications) {
        const interrupt = options.capabilities.interruptNotifications;
        it("watch() recovers after its notification connection drops and delivers what changed meanwhile", async () => {
          const [a, b] = await openPair();
          const m = await master(a);
          const seen: ShardAssignment[] = [];
          const w = await b.shardMap.watch((changed) => seen.push(...changed));
          try {
            await interrupt(b);
            const r1 = await a.shardMap.assign(0, 0, "c1", m);
            if (!r1.ok) throw new Error("assign failed");
            expect(await eventually(() => seen.some((s) => s.owner === "c1"), notifyBudgetMs + 3000)).toBe(true);
            await a.shardMap.assign(0, r1.assignment.epoch, "c2", m);
            expect(await eventually(() => seen.some((s) => s.owner === "c2"), notifyBudgetMs)).toBe(true);
          } finally {
            await w.close();
          }
        });
      }
    });

    describe("liveness", () => {
      const rec = (id: string, meta: Record<string, unknown> = {}) => ({
        id,
        name: id.split(".")[0]!,
        role: "coreapp" as const,
        address: "127.0.0.1:6250",
        meta,
      });

      it("beat() registers a node that list() returns with its meta and a small age", async () => {
        const [a, b] = await openPair();
        await a.liveness.beat(rec("c1.abc", { shard: 2, nested: { ok: true } }));
        const list = await b.liveness.list();
        expect(list).toHaveLength(1);
        expect(list[0]).toMatchObject(rec("c1.abc", { shard: 2, nested: { ok: true } }));
        expect(list[0]!.ageMs).toBeGreaterThanOrEqual(0);
        expect(list[0]!.ageMs).toBeLessThan(1000);
      });

      it("list() ages grow with store time and beat() resets them", async () => {
        const [a] = await openPair();
        await a.liveness.beat(rec("c1.abc"));
        await a.liveness.beat(rec("c2.abc"));
        await sleep(ageResolutionMs + 400);
        await a.liveness.beat(rec("c2.abc", { again: 1 }));
        const [c1, c2] = await a.liveness.list();
        expect(c1!.ageMs).toBeGreaterThanOrEqual(300);
        expect(c2!.ageMs).toBeLessThan(300);
        expect(c2!.meta).toEqual({ again: 1 });
      });

      it("beat() with a seq writes only over a lower one: a beat that lands after a later one changes neither the record, nor its age, nor the seq list() reports", async () => {
        const [a, b] = await openPair();
        await a.liveness.beat({ ...rec("c1.abc", { said: "first" }), seq: 1 });
        await a.liveness.beat({ ...rec("c1.abc", { said: "third" }), seq: 3 });
        await sleep(ageResolutionMs + 400);
        await a.liveness.beat({ ...rec("c1.abc", { said: "second, late" }), seq: 2 });
        await a.liveness.beat({ ...rec("c1.abc", { said: "third again" }), seq: 3 });
        const [late] = await b.liveness.list();
        expect(late!.meta).toEqual({ said: "third" });
        expect(late!.ageMs).toBeGreaterThanOrEqual(300);
        expect(late!.seq).toBe(3);
        await a.liveness.beat({ ...rec("c1.abc", { said: "fourth" }), seq: 4 });
        const [next] = await b.liveness.list();
        expect(next!.meta).toEqual({ said: "fourth" });
        expect(next!.seq).toBe(4);
        expect(next!.ageMs).toBeLessThan(300);
        // Without a seq the record is written whatever it held; a removed record starts over.
        await a.liveness.beat(rec("c1.abc", { said: "no seq" }));
        const [unordered] = await b.liveness.list();
        expect(unordered!.meta).toEqual({ said: "no seq" });
        expect(unordered!.seq).toBe(undefined);
        await a.liveness.beat({ ...rec("c1.abc", { said: "seq again" }), seq: 2 });
        expect((await b.liveness.list())[0]!.meta).toEqual({ said: "seq again" });
        await a.liveness.remove("c1.abc");
        await a.liveness.beat({ ...rec("c1.abc", { said: "back" }), seq: 1 });
        expect((await b.liveness.list())[0]!.meta).toEqual({ said: "back" });
      });

      it("removeFenced() deletes only under the live master lease: from a lapsed or superseded one it deletes nothing", async () => {
        const [a, b] = await openPair();
        const r1 = await a.leases.acquire(MASTER_LEASE, "m1", ttlMs);
        if (!r1.acquired) throw new Error("setup");
        await a.liveness.beat(rec("c1.abc"));
        await a.liveness.beat(rec("c2.abc"));
        expect(await a.liveness.removeFenced("c1.abc", r1.lease)).toBe("removed");
        expect(await a.liveness.removeFenced("c1.abc", r1.lease)).toBe("removed"); // no record: nothing to do
        await sleep(ttlMs + expiryLagMs + 300);
        // The master lease lapsed: fenced even before anyone else takes over.
        expect(await a.liveness.removeFenced("c2.abc", r1.lease)).toBe("fenced");
        expect(await a.liveness.removeFenced("nobody.abc", r1.lease)).toBe("fenced"); // fenced, not "no record"
        const m2 = await master(b, "m2");
        expect(await a.liveness.removeFenced("c2.abc", r1.lease)).toBe("fenced");
        // The live holder's name with an older tenure's epoch is fenced too.
        expect(await a.liveness.removeFenced("c2.abc", { ...m2, epoch: r1.lease.epoch })).toBe("fenced");
        expect((await b.liveness.list()).map((n) => n.id)).toEqual(["c2.abc"]);
        expect(await b.liveness.removeFenced("c2.abc", m2)).toBe("removed");
        expect(await a.liveness.list()).toEqual([]);
      });

      it("removeFenced() with a seq deletes only the record of that beat: after another beat it deletes nothing, and a lapsed lease still says fenced", async () => {
        const [a, b] = await openPair();
        const r1 = await a.leases.acquire(MASTER_LEASE, "m1", ttlMs);
        if (!r1.acquired) throw new Error("setup");
        const m1 = r1.lease;
        await a.liveness.beat({ ...rec("c1.abc"), seq: 5 });
        await a.liveness.beat({ ...rec("c2.abc"), seq: 5 });
        await a.liveness.beat(rec("c3.abc")); // written without a seq
        expect(await b.liveness.removeFenced("c1.abc", m1, 4)).toBe("superseded");
        await a.liveness.beat({ ...rec("c1.abc", { again: 1 }), seq: 6 });
        // The removal was decided on beat 5; the node beat since.
        expect(await b.liveness.removeFenced("c1.abc", m1, 5)).toBe("superseded");
        expect(await b.liveness.removeFenced("c3.abc", m1, 1)).toBe("superseded");
        expect((await b.liveness.list()).map((n) => [n.id, n.seq])).toEqual([
          ["c1.abc", 6],
          ["c2.abc", 5],
          ["c3.abc", undefined],
        ]);
        expect(await b.liveness.removeFenced("c2.abc", m1, 5)).toBe("removed");
        expect(await b.liveness.removeFenced("c2.abc", m1, 5)).toBe("removed"); // no record: nothing to do
        expect(await b.liveness.removeFenced("c3.abc", m1)).toBe("removed"); // no seq given: whatever it holds
        await sleep(ttlMs + expiryLagMs + 300);
        expect(await b.liveness.removeFenced("c1.abc", m1, 5)).toBe("fenced"); // fenced, whatever the record holds
        expect(await b.liveness.removeFenced("c1.abc", m1, 6)).toBe("fenced");
        expect((await a.liveness.list()).map((n) => n.id)).toEqual(["c1.abc"]);
      });

      it("remove() deletes a node and is idempotent", async () => {
        const [a] = await openPair();
        await a.liveness.beat(rec("c1.abc"));
        await a.liveness.remove("c1.abc");
        await a.liveness.remove("c1.abc");
        expect(await a.liveness.list()).toEqual([]);
      });
    });

    describe("schema", () => {
      it("migrate() is idempotent, also when several nodes run it at once", async () => {
        const ns = randomNamespace();
        const stores = await Promise.all([open(ns), open(ns), open(ns)]);
        await Promise.all(stores.map((s) => s.migrate()));
        await stores[0]!.migrate();
        expect((await stores[1]!.leases.acquire("l", "n1", ttlMs)).acquired).toBe(true);
      });
    });

    if (options.capabilities.openAt) {
      const openAt = options.capabilities.openAt;
      describe("unreachable store", () => {
        const operationTimeoutMs = 500;
        const expectUnavailableWithin = async (call: () => Promise<unknown>, budgetMs: number) => {
          const started = Date.now();
          const error = await call().then(
            () => null,
            (e: unknown) => e,
          );
          expect(error).toBeInstanceOf(StoreUnavailableError);
          expect((error as StoreUnavailableError).retryable).toBe(true);
          expect(Date.now() - started).toBeLessThan(budgetMs);
        };

        it("acquire() and renew() against a blackholed server throw StoreUnavailableError within the operation timeout, never hang", async () => {
          const hole = await startBlackhole();
          try {
            const store = await openAt(randomNamespace(), hole.host, hole.port, operationTimeoutMs).then((s) => {
              opened.push(s);
              return s;
            });
            await expectUnavailableWithin(() => store.leases.acquire("l", "n1", ttlMs), operationTimeoutMs * 3 + 500);
            await expectUnavailableWithin(
              () => store.leases.renew({ name: "l", holder: "n1", epoch: 1 }, ttlMs),
              operationTimeoutMs * 3 + 500,
            );
          } finally {
            await hole.close();
          }
        });

        it("acquire() against a refused port throws StoreUnavailableError naming the backend and host", async () => {
          const port = await refusedPort();
          const store = await openAt(randomNamespace(), "127.0.0.1", port, operationTimeoutMs).then((s) => {
            opened.push(s);
            return s;
          });
          const error = await store.leases.acquire("l", "n1", ttlMs).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(StoreUnavailableError);
          expect(String((error as Error).message)).toContain("127.0.0.1");
        });
      });
    }
  });
}
