import { describe, expect, it } from "vitest";
import type { ShardAssignment } from "../../src/core/ports/shard-map.js";
import { startDiffingWatch } from "../../src/core/shard-map-watch.js";
import { SleeplessClock } from "../support/sleepless-clock.js";

const settle = () => new Promise((r) => setTimeout(r, 20));

describe("startDiffingWatch", () => {
  it("lookNow() reads the map at once; without it a store that only polls is not read before its next tick", async () => {
    let map: ShardAssignment[] = [{ shard: 0, owner: "a", epoch: 1 }];
    const seen: ShardAssignment[] = [];
    const watch = await startDiffingWatch({
      read: async () => map,
      resyncMs: 50,
      clock: new SleeplessClock(), // the poll tick never comes
      onChange: (changed) => seen.push(...changed),
    });
    try {
      expect(seen).toEqual([{ shard: 0, owner: "a", epoch: 1 }]);
      map = [{ shard: 0, owner: "b", epoch: 2 }];
      await settle();
      expect(seen).toHaveLength(1);
      watch.lookNow();
      await settle();
      expect(seen).toEqual([
        { shard: 0, owner: "a", epoch: 1 },
        { shard: 0, owner: "b", epoch: 2 },
      ]);
    } finally {
      await watch.close();
    }
  });
});
