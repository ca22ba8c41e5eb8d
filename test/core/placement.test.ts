import { describe, expect, it } from "vitest";
import {
  chooseStandby,
  HOLD_AFTER_REPLACEMENTS,
  HOLD_WINDOW_MS,
  placementOf,
  ReplacementMemory,
  type StandbyCandidate,
} from "../../src/core/master/placement.js";

const candidate = (name: string, o: Partial<StandbyCandidate> = {}): StandbyCandidate => ({
  id: `${name}.x`,
  name,
  silenceMs: 10,
  priority: 0,
  nofailover: false,
  ...o,
});
const COOLDOWN = 3000;
const pick = (cs: StandbyCandidate[], memory = new ReplacementMemory(), now = 100_000) =>
  chooseStandby(cs, memory, now, COOLDOWN)?.name ?? null;

describe("chooseStandby()", () => {
  it("prefers higher priority, then the most recent answer, then the id", () => {
    expect(pick([candidate("a"), candidate("b", { priority: 5 })])).toBe("b");
    expect(pick([candidate("a", { silenceMs: 200 }), candidate("b", { silenceMs: 20 })])).toBe("b");
    expect(pick([candidate("b"), candidate("a")])).toBe("a");
  });

  it("never promotes a nofailover coreapp automatically, even when it is the only one", () => {
    expect(pick([candidate("a", { nofailover: true, priority: 100 }), candidate("b")])).toBe("b");
    expect(pick([candidate("a", { nofailover: true })])).toBeNull();
  });

  it("passes over a coreapp cooling down after a replacement, but takes it when it is the only one left", () => {
    const memory = new ReplacementMemory();
    memory.replaced("a", 100_000);
    expect(pick([candidate("a", { priority: 9 }), candidate("b")], memory, 100_000 + COOLDOWN - 1)).toBe("b");
    expect(pick([candidate("a")], memory, 100_000 + COOLDOWN - 1)).toBe("a");
    expect(pick([candidate("a", { priority: 9 }), candidate("b")], memory, 100_000 + COOLDOWN)).toBe("a");
  });

  it(`holds out a coreapp replaced ${HOLD_AFTER_REPLACEMENTS} times within the window until an operator clears it`, () => {
    const memory = new ReplacementMemory();
    for (let i = 0; i < HOLD_AFTER_REPLACEMENTS; i++) memory.replaced("a", 1000 * i);
    const later = 10 * COOLDOWN;
    expect(memory.heldOutNames(later)).toEqual(["a"]);
    expect(pick([candidate("a", { priority: 9 }), candidate("b")], memory, later)).toBe("b");
    expect(pick([candidate("a")], memory, later)).toBe("a"); // a shard is never left without a primary for it
    memory.clear("a", later);
    expect(memory.heldOut("a", later)).toBe(false);
    expect(pick([candidate("a", { priority: 9 }), candidate("b")], memory, later)).toBe("a");
    // Replacements older than the window no longer count.
    const fresh = new ReplacementMemory();
    for (let i = 0; i < HOLD_AFTER_REPLACEMENTS; i++) fresh.replaced("a", 1000 * i);
    expect(fresh.heldOut("a", HOLD_WINDOW_MS + 1000)).toBe(false);
  });
});

describe("placementOf()", () => {
  it("reads priority and nofailover from liveness meta, with defaults for absent or malformed values", () => {
    expect(placementOf({ priority: 3, nofailover: true })).toEqual({ priority: 3, nofailover: true });
    expect(placementOf({})).toEqual({ priority: 0, nofailover: false });
    expect(placementOf({ priority: "9", nofailover: "yes" })).toEqual({ priority: 0, nofailover: false });
  });
});
