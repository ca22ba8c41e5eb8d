import { describe, expect, it } from "vitest";
import { ReplayGuard } from "../../src/adapters/http/replay-window.js";

describe("ReplayGuard", () => {
  it("accept() at the sender cap evicts the least recently seen sender, even when the busiest never pauses", () => {
    let t = 0;
    const guard = new ReplayGuard({ maxSenders: 3, clock: { now: () => t, sleep: async () => {} } });
    let seq = 0;
    expect(guard.accept("webapp", ++seq)).toBe(true); // the busy sender, first seen at t=0
    t = 10;
    expect(guard.accept("quiet-1", 1)).toBe(true);
    t = 20;
    expect(guard.accept("quiet-2", 1)).toBe(true);
    for (; t < 60_000; t += 100) expect(guard.accept("webapp", ++seq)).toBe(true); // every 100 ms for a minute
    const recorded = seq;
    expect(guard.accept("newcomer", 1)).toBe(true); // at the cap: a quiet sender must make room
    expect(guard.accept("webapp", recorded)).toBe(false); // the busy sender is still remembered: replay refused
  });
});
