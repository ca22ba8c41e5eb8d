import { describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { FailsafeGuard } from "../../src/core/coreapp/failsafe-guard.js";
import { FailsafePromises } from "../../src/core/master/failsafe-promises.js";
import type { NodeStatus } from "../../src/core/ports/liveness.js";
import type { FailsafeReply, FailsafeRequest, Peer, Transport } from "../../src/core/ports/transport.js";
import { silentLogger } from "../../src/core/silent-logger.js";
import { deriveTiming } from "../../src/core/timing.js";

/**
 * The time rules of failsafe mode with a manual clock: what a master promises and when it may
 * replace an owner (failsafe-promises.ts), and how a coreapp counts promises (failsafe-guard.ts).
 * Lease TTL 1000 ms (the promise), margin 100 ms, failsafe_max 10 s.
 */
const SETTINGS = { heartbeatIntervalMs: 250, unhealthyIntervalMs: 1250, dbHeartbeatIntervalMs: 500, dbUnhealthyIntervalMs: 5000 };
const timing = () => deriveTiming({ ...SETTINGS, failsafeMaxMs: 10_000 });

const master = (id: string, ageMs = 0): NodeStatus => ({ id, name: id, role: "master", address: `mem:${id}`, meta: {}, ageMs });
const owner = (masters: string[] | null, ageMs: number): NodeStatus => ({
  id: "c1",
  name: "c1",
  role: "coreapp",
  address: "mem:c1",
  meta: masters ? { failsafe: { masters, maxMs: 10_000 } } : {},
  ageMs,
});

describe("FailsafePromises (a master's side)", () => {
  it("answer() promises only while failsafe is on and the store is unreachable, and never for a shard being replaced", () => {
    const clock = new ClockAt(0);
    const t = timing();
    const p = new FailsafePromises("m1", clock, t, () => 3);
    p.noteStore(true);
    expect(p.answer({ shard: 0, epoch: 3 })).toEqual({ ok: false, reason: "this master reaches the store" });
    p.noteStore(false);
    expect(p.answer({ shard: 0, epoch: 2 })).toMatchObject({ ok: false, reason: "the shard map has a newer assignment" });
    const done = p.hold(0);
    expect(p.answer({ shard: 0, epoch: 3 }).ok).toBe(false);
    done();
    expect(p.answer({ shard: 0, epoch: 3 })).toEqual({ ok: true, promiseMs: t.leaseTtlMs });
    const off = new FailsafePromises("m1", clock, deriveTiming(SETTINGS), () => null);
    off.noteStore(false);
    expect(off.answer({ shard: 0, epoch: 3 })).toEqual({ ok: false, reason: "failsafe is off" });
  });

  it("a store operation that neither succeeds nor fails for three beat periods counts as unreachable", async () => {
    const clock = new ManualClock();
    const p = new FailsafePromises("m1", clock, timing(), () => null);
    p.noteStore(true);
    expect(p.reachesStore()).toBe(true);
    await clock.advance(3 * 250 + 1, 50);
    expect(p.reachesStore()).toBe(false);
  });

  it("blocker(): its own promise blocks replacing until it runs out, counted from when the request arrived", async () => {
    const clock = new ManualClock();
    const p = new FailsafePromises("m1", clock, timing(), () => 3);
    p.noteStore(false);
    p.answer({ shard: 0, epoch: 3 });
    const a = { shard: 0, owner: "c1", epoch: 3 };
    await clock.advance(999, 100);
    expect(p.blocker(a, owner(["m1"], 0))).toMatch(/promised/);
    await clock.advance(1, 1);
    expect(p.blocker(a, owner(["m1"], 0))).toBeNull();
  });

  it("blocker(): a master the owner does not list waits until the owner's record is failsafe_max + 10% old", async () => {
    const clock = new ManualClock();
    const p = new FailsafePromises("m3", clock, timing(), () => 3);
    const a = { shard: 0, owner: "c1", epoch: 3 };
    expect(p.blocker(a, owner(["m1", "m2"], 10_999))).toMatch(/does not count this master/);
    expect(p.blocker(a, owner(["m1", "m2"], 11_000))).toBeNull();
    // A listed master relies on its own promises; an owner with failsafe off publishes nothing.
    expect(new FailsafePromises("m1", clock, timing(), () => 3).blocker(a, owner(["m1", "m2"], 0))).toBeNull();
    expect(p.blocker(a, owner(null, 0))).toBeNull();
    // A record the store lost: counted from when this master first saw it missing.
    expect(p.blocker(a, null)).toMatch(/does not count this master/);
    await clock.advance(11_000, 500);
    expect(p.blocker(a, null)).toBeNull();
  });
});

/** A transport whose masters answer what `answers` says; every call is recorded with its send time. */
class FakeMasters {
  answers = new Map<string, FailsafeReply | Error>();
  delayMs = 0;
  constructor(private readonly clock: ManualClock) {}
  transport(): Transport {
    const failsafe = async (to: Peer, _r: FailsafeRequest): Promise<FailsafeReply> => {
      if (this.delayMs > 0) await this.clock.sleep(this.delayMs);
      const a = this.answers.get(to.id) ?? new Error("unreachable");
      if (a instanceof Error) throw a;
      return a;
    };
    return { failsafe } as unknown as Transport;
  }
}

async function guardWithMasters(clock: ManualClock, masters: FakeMasters): Promise<FailsafeGuard> {
  const g = new FailsafeGuard(masters.transport(), clock, timing(), silentLogger);
  const published = g.beforeBeat([master("m1"), master("m2"), master("old", 60_000)]);
  expect(published?.masters).toEqual(["m1", "m2"]); // a master silent past db_unhealthy_interval is not asked
  g.afterBeat(clock.now(), published);
  return g;
}

/** A guard serving shard 0 at epoch 7 on promises of 1000 ms from masters m1 and m2, taken at time 0. */
async function relyingGuard(): Promise<{ clock: ManualClock; m: FakeMasters; g: FailsafeGuard }> {
  const clock = new ManualClock();
  const m = new FakeMasters(clock);
  m.answers.set("m1", { ok: true, promiseMs: 1000 }).set("m2", { ok: true, promiseMs: 1000 });
  const g = await guardWithMasters(clock, m);
  await g.ask(0, 7);
  g.relyOn(0, 7);
  return { clock, m, g };
}

/**
 * A guard whose live settings the test changes (`live`), with masters m1 and m2 promising 1000 ms,
 * and a first beat, publishing failsafe_max = 10 s, accepted at time 0.
 */
function liveGuard(): { clock: ManualClock; live: ReturnType<typeof timing>; g: FailsafeGuard } {
  const clock = new ManualClock();
  const m = new FakeMasters(clock);
  m.answers.set("m1", { ok: true, promiseMs: 1000 }).set("m2", { ok: true, promiseMs: 1000 });
  const live = timing();
  const g = new FailsafeGuard(m.transport(), clock, live, silentLogger);
  g.afterBeat(0, g.beforeBeat([master("m1"), master("m2")]));
  return { clock, live, g };
}

describe("FailsafeGuard (a coreapp's side)", () => {
  it("counts each promise from before the request was sent, less the margin, and serves until the earliest master's", async () => {
    const clock = new ManualClock();
    const m = new FakeMasters(clock);
    m.answers.set("m1", { ok: true, promiseMs: 1000 }).set("m2", { ok: true, promiseMs: 800 });
    const g = await guardWithMasters(clock, m);
    m.delayMs = 300; // the answers take 300 ms: the promise still counts from the request's send time
    const asked = g.ask(0, 7);
    await clock.advance(300, 10);
    await asked;
    expect(g.validUntil(0, 7)).toBe(0 + 800 - 100);
    expect(g.validUntil(0, 8)).toBe(-Infinity); // another assignment: no promise
    m.delayMs = 0;
    await g.ask(0, 7);
    expect(g.validUntil(0, 7)).toBe(300 + 800 - 100);
  });

  it("covers a tenure only once a beat sent since it began was accepted: a removed record may have been rewritten by an older beat", async () => {
    const clock = new ManualClock();
    const m = new FakeMasters(clock);
    m.answers.set("m1", { ok: true, promiseMs: 1000 }).set("m2", { ok: true, promiseMs: 1000 });
    const g = await guardWithMasters(clock, m); // a beat accepted at t=0, before the tenure
    await clock.advance(100, 50);
    g.begin(0, 7);
    await g.ask(0, 7);
    expect(g.validUntil(0, 7)).toBe(-Infinity);
    expect(g.lapseAt(0, 7)).toBe(-Infinity);
    g.afterBeat(clock.now(), g.beforeBeat([master("m1"), master("m2")]));
    await g.ask(0, 7);
    expect(g.validUntil(0, 7)).toBe(100 + 1000 - 100);
  });

  it("needs every master: one missing promise means no failsafe", async () => {
    const clock = new ManualClock();
    const m = new FakeMasters(clock);
    m.answers.set("m1", { ok: true, promiseMs: 1000 }).set("m2", { ok: false, reason: "this master reaches the store" });
    const g = await guardWithMasters(clock, m);
    await g.ask(0, 7);
    expect(g.covers(0, 7)).toBe(false);
  });

  it("once it relies on promises, a refusal ends failsafe: later promises do not extend it", async () => {
    const { clock, m, g } = await relyingGuard();
    await clock.advance(200, 50);
    m.answers.set("m2", new Error("unreachable"));
    await g.ask(0, 7);
    expect(g.endReason).toMatch(/m2 unreachable/);
    m.answers.set("m2", { ok: true, promiseMs: 1000 });
    await clock.advance(200, 50);
    await g.ask(0, 7);
    expect(g.validUntil(0, 7)).toBe(900);
    await clock.advance(500, 50);
    expect(g.covers(0, 7)).toBe(false);
  });

  it("never serves on promises past failsafe_max from its last liveness record the store accepted", async () => {
    const clock = new ManualClock();
    const m = new FakeMasters(clock);
    m.answers.set("m1", { ok: true, promiseMs: 1000 }).set("m2", { ok: true, promiseMs: 1000 });
    const g = await guardWithMasters(clock, m);
    await clock.advance(9500, 500);
    await g.ask(0, 7);
    expect(g.validUntil(0, 7)).toBe(10_000);
  });

  it("counts failsafe_max from the value its record in the store may hold, not a larger live setting it could not publish", async () => {
    const { clock, live, g } = liveGuard(); // the store holds failsafe_max = 10 s
    Object.assign(live, { failsafeMaxMs: 60_000 }); // raised live; the next beat, which says so, fails
    g.beforeBeat([master("m1"), master("m2")]);
    await clock.advance(9500, 500);
    await g.ask(0, 7);
    // Masters it does not ask wait 10 s × 1.1 past its record at t=0, so it may serve until 10 s.
    expect(g.validUntil(0, 7)).toBe(10_000);
    expect(g.lapseAt(0, 7)).toBe(10_500); // the promises' end (asked at 9.5 s for 1 s) comes before 11 s
    await clock.advance(600, 100);
    expect(g.capReached).toBe(true);
    // Once a beat saying 60 s is accepted, that is what the masters read.
    g.afterBeat(clock.now(), g.beforeBeat([master("m1"), master("m2")]));
    expect(g.capReached).toBe(false);
  });

  it("a smaller failsafe_max sent in a beat of unknown outcome counts at once: the store may hold it", async () => {
    const { clock, live, g } = liveGuard();
    Object.assign(live, { failsafeMaxMs: 4000 });
    g.beforeBeat([master("m1"), master("m2")]); // sent with 4 s; its outcome unknown
    Object.assign(live, { failsafeMaxMs: 10_000 }); // raised back before the next beat
    await clock.advance(4000, 500);
    expect(g.capReached).toBe(true);
  });

  it("turned off and on again, it counts nothing from before: a record without failsafe made the masters wait for nothing", async () => {
    const { clock, live, g } = liveGuard();
    Object.assign(live, { failsafeMaxMs: 0 });
    await clock.advance(100, 50);
    g.afterBeat(100, g.beforeBeat([master("m1"), master("m2")])); // accepted: the record says failsafe off
    Object.assign(live, { failsafeMaxMs: 10_000 });
    expect(g.masters()).toEqual([]);
    await g.ask(0, 7);
    expect(g.validUntil(0, 7)).toBe(-Infinity); // on again, but no record saying so was accepted yet
    g.beforeBeat([master("m1")]); // the store goes down with this beat: it may or may not hold it
    await g.ask(0, 7);
    expect(g.covers(0, 7)).toBe(false);
    expect(g.capReached).toBe(true);
  });

  it("a beat without failsafe whose outcome is unknown counts as failsafe off", async () => {
    const { live, g } = liveGuard();
    Object.assign(live, { failsafeMaxMs: 0 });
    g.beforeBeat([master("m1"), master("m2")]); // sent without failsafe; no answer
    Object.assign(live, { failsafeMaxMs: 10_000 });
    await g.ask(0, 7);
    expect(g.covers(0, 7)).toBe(false);
  });

  it("says when a master may reassign the shard: the end of the earliest promise as the master counts it, no margin off", async () => {
    const { g } = await relyingGuard();
    expect(g.validUntil(0, 7)).toBe(900);
    expect(g.lapseAt(0, 7)).toBe(1000);
    expect(g.lapseAt(0, 8)).toBe(-Infinity);
  });

  it("while it serves on promises, a registry read showing the masters' records as old as the outage does not empty its set", async () => {
    // The store returns: the coreapp's beat reads the registry before any master has beaten again.
    const { clock, g } = await relyingGuard();
    const published = g.beforeBeat([master("m1", 6000), master("m2", 6000), master("m3")]);
    expect(published?.masters).toEqual(["m1", "m2"]); // frozen: not emptied, and no master without a promise joins
    g.afterBeat(clock.now(), published);
    expect(g.validUntil(0, 7)).toBe(900);
    expect(g.covers(0, 7)).toBe(true);
  });

  it("asks the masters of a beat whose outcome it does not know as well as the accepted ones", async () => {
    const clock = new ManualClock();
    const m = new FakeMasters(clock);
    const g = await guardWithMasters(clock, m);
    g.beforeBeat([master("m1"), master("m3")]); // this beat fails: the store may hold it or not
    expect(
      g
        .masters()
        .map((x) => x.id)
        .sort(),
    ).toEqual(["m1", "m2", "m3"]);
  });
});

/** A ManualClock that starts at `t`. */
class ClockAt extends ManualClock {
  constructor(t: number) {
    super();
    void this.advance(t);
  }
}
