import { describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/adapters/memory/index.js";
import { MASTER_LEASE } from "../../src/core/ports/leases.js";
import type { ForwardRequest, ForwardResult, Peer, Transport } from "../../src/core/ports/transport.js";
import { silentLogger } from "../../src/core/silent-logger.js";
import { Router } from "../../src/core/webapp/router.js";
import { SleeplessClock } from "../support/sleepless-clock.js";

// A retry waiting out its backoff goes to the new owner as soon as the map names it. The clock here
// never ends a sleep by itself, so a router that waited for its backoff would never retry.

/** Owners by node id: "old" is no longer serving, "next" serves. Records where each attempt went. */
function transport(attempts: string[]): Transport {
  const forward = async (to: Peer, r: ForwardRequest): Promise<ForwardResult> => {
    attempts.push(to.id);
    if (to.id === "old") return { outcome: "not-serving", shard: r.shard, epoch: r.epoch, node: to.id };
    return { outcome: "served", response: { status: 200, headers: {}, body: Buffer.from(to.id) } };
  };
  return { forward } as unknown as Transport;
}

describe("Router: a retry and the shard map", () => {
  it("a retry backing off after not-serving goes to the new owner the moment the map names it", async () => {
    const store = new MemoryStore();
    for (const id of ["old", "next"]) {
      await store.liveness.beat({ id, name: id, role: "coreapp", address: `127.0.0.1:${id === "old" ? 1 : 2}`, meta: {} });
    }
    const master = await store.leases.acquire(MASTER_LEASE, "m", 60_000);
    if (!master.acquired) throw new Error("setup: no master lease");
    expect(await store.shardMap.assign(0, 0, "old", master.lease)).toMatchObject({ ok: true });
    const attempts: string[] = [];
    const options = { shards: 1, retryWindowMs: 60_000, forwardTimeoutMs: 1000 };
    const router = new Router(store.shardMap, store.liveness, transport(attempts), new SleeplessClock(), options, silentLogger);
    await router.start();
    try {
      const pending = router.forward({ shard: 0, method: "POST", path: "/v1/messages", headers: {}, body: Buffer.from("m") });
      for (let i = 0; i < 100 && attempts.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(attempts).toEqual(["old"]);
      // The switchover: the map names the new owner while the retry waits.
      expect(await store.shardMap.assign(0, 1, "next", master.lease)).toMatchObject({ ok: true });
      const result = await Promise.race([pending, new Promise((r) => setTimeout(() => r("still backing off"), 5000))]);
      expect(result).toMatchObject({ ok: true, node: "next", epoch: 2, attempts: 2 });
      expect(attempts).toEqual(["old", "next"]);
    } finally {
      await router.close();
    }
  });
});
