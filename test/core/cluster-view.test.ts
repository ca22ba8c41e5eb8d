import { describe, expect, it } from "vitest";
import { MemoryStorage, MemoryStore } from "../../src/adapters/memory/index.js";
import { ManualClock } from "../../src/core/clock.js";
import { ClusterView } from "../../src/core/master/cluster-view.js";
import type { LivenessStore, NodeRecord } from "../../src/core/ports/liveness.js";

/** Ages as etcd reports them: whole seconds, rounded down. */
const RESOLUTION_MS = 1000;

/** The memory store's liveness, with its exact ages coarsened the way a whole-second store reports them. */
function coarse(liveness: LivenessStore): LivenessStore {
  return {
    beat: (r) => liveness.beat(r),
    list: async () => (await liveness.list()).map((n) => ({ ...n, ageMs: Math.floor(n.ageMs / RESOLUTION_MS) * RESOLUTION_MS })),
    remove: (id) => liveness.remove(id),
    removeFenced: (id, master) => liveness.removeFenced(id, master),
  };
}

function setup(ageResolutionMs = RESOLUTION_MS) {
  const clock = new ManualClock();
  const store = new MemoryStore(new MemoryStorage(clock));
  const liveness = coarse(store.liveness);
  const view = new ClusterView(liveness, clock, 0, ageResolutionMs);
  const record = (seq?: number): NodeRecord => ({
    id: "m2.b",
    name: "m2",
    role: "master",
    address: "h:1",
    meta: {},
    ...(seq === undefined ? {} : { seq }),
  });
  const ageOf = () => view.get("m2.b")!.ageMs;
  return { clock, liveness, view, record, ageOf };
}

describe("ClusterView on a store with coarse ages", () => {
  it("ages a record by how long its reads have shown the same beat, which the store's whole seconds hide", async () => {
    const { clock, liveness, view, record, ageOf } = setup();
    await liveness.beat(record(1));
    await clock.advance(100, 100);
    await view.refresh();
    expect(ageOf()).toBe(0); // first read of this beat: the store's age, 0
    await clock.advance(300, 100);
    await view.refresh();
    expect(ageOf()).toBe(300); // the store still says 0; the beat has been in view for 300 ms
    await liveness.beat(record(2));
    await clock.advance(50, 50);
    await view.refresh();
    expect(ageOf()).toBe(0); // a new beat: counted again from this read
    await clock.advance(1200, 100);
    await view.refresh();
    expect(ageOf()).toBe(1200); // the store's 1000, or the 1200 of watching: the larger
  });

  it("never ages a record past its true age, whatever the phase of beats and reads", async () => {
    const { clock, liveness, view, record, ageOf } = setup();
    let seq = 0;
    let beatAt = 0;
    let sharpened = 0;
    // A fixed pseudo-random walk: beats every 200–700 ms, reads every 10–400 ms.
    let x = 12345;
    const next = (lo: number, hi: number) => lo + ((x = (x * 1103515245 + 12345) % 2 ** 31) % (hi - lo + 1));
    let nextBeat = 0;
    for (let i = 0; i < 400; i++) {
      if (clock.now() >= nextBeat) {
        await liveness.beat(record(++seq));
        beatAt = clock.now();
        nextBeat = beatAt + next(200, 700);
      }
      await view.refresh();
      const trueAge = clock.now() - beatAt;
      const storeAge = Math.floor(trueAge / RESOLUTION_MS) * RESOLUTION_MS;
      expect(ageOf()).toBeLessThanOrEqual(trueAge);
      expect(ageOf()).toBeGreaterThanOrEqual(storeAge);
      if (ageOf() > storeAge) sharpened++;
      await clock.advance(next(10, 400), 10);
    }
    expect(sharpened).toBeGreaterThan(100); // it did correct the store's ages, not only match them
  });

  it("keeps the store's age for a record without a seq, for a record read the first time, and on a store whose ages are exact", async () => {
    const unordered = setup();
    await unordered.liveness.beat(unordered.record());
    await unordered.view.refresh();
    await unordered.clock.advance(600, 100);
    await unordered.view.refresh();
    expect(unordered.ageOf()).toBe(0);

    const exact = setup(0);
    await exact.liveness.beat(exact.record(1));
    await exact.view.refresh();
    await exact.clock.advance(600, 100);
    await exact.view.refresh();
    expect(exact.ageOf()).toBe(0); // the (coarsened) store's age, taken as it is

    const late = setup();
    await late.liveness.beat(late.record(1));
    await late.clock.advance(600, 100);
    await late.view.refresh();
    expect(late.ageOf()).toBe(0); // written 600 ms before this view first read it: nothing to go on
  });

  it("forgets what it watched of a record it dropped", async () => {
    const { clock, liveness, view, record, ageOf } = setup();
    await liveness.beat(record(1));
    await view.refresh();
    await clock.advance(400, 100);
    await liveness.remove("m2.b");
    await view.drop("m2.b");
    expect(view.get("m2.b")).toBeNull();
    await liveness.beat(record(1)); // the same pair again, after a removal: counted from its first read
    await view.refresh();
    expect(ageOf()).toBe(0);
  });
});
