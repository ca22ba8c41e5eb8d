import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/adapters/memory/index.js";
import { FramedTransport } from "../../src/adapters/transport/index.js";
import { SystemClock } from "../../src/core/clock.js";
import type { ForwardRequest, ForwardResult } from "../../src/core/ports/transport.js";
import { silentLogger } from "../../src/core/silent-logger.js";
import { Router } from "../../src/core/webapp/router.js";

/**
 * The router on the real transport, through an owner that goes away: a request its connection
 * lost before the owner acknowledged it is sent to the new owner and runs once; one the owner had
 * acknowledged fails as in doubt and is never sent again.
 */
const SECRET = "router-ack-secret-0123456789-abcdef";
const CLUSTER = "router-ack";
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Behaviour = "hold-before-start" | "hold-after-start" | "serve";

async function coreapp(store: MemoryStore, name: string, behaviour: Behaviour) {
  const self = `${name}.${randomBytes(3).toString("hex")}`;
  const t = new FramedTransport({ nodeId: self, clusterName: CLUSTER, secret: SECRET, inProcessShortcut: false });
  const ran: ForwardRequest[] = [];
  let arrived = 0;
  const server = await t.listen(self, "127.0.0.1", 0, {
    forward: async (_f, r, started): Promise<ForwardResult> => {
      arrived++;
      if (behaviour === "hold-before-start") return new Promise(() => {});
      await started();
      ran.push(r);
      if (behaviour === "hold-after-start") return new Promise(() => {});
      return { outcome: "served", response: { status: 200, headers: {}, body: Buffer.from(name) } };
    },
  });
  await store.liveness.beat({ id: self, name, role: "coreapp", address: `127.0.0.1:${server.port}`, meta: {} });
  const stop = async () => {
    await server.close();
    await t.close();
  };
  cleanups.push(stop);
  return { id: self, ran, arrivals: () => arrived, stop };
}

async function router(store: MemoryStore) {
  // Over the network: the owners listen in this process, where the shortcut would call them directly.
  const t = new FramedTransport({
    nodeId: `web.${randomBytes(3).toString("hex")}`,
    clusterName: CLUSTER,
    secret: SECRET,
    inProcessShortcut: false,
  });
  const r = new Router(
    store.shardMap,
    store.liveness,
    t,
    new SystemClock(),
    { shards: 1, retryWindowMs: 5000, forwardTimeoutMs: 10_000 },
    silentLogger,
  );
  await r.start();
  cleanups.push(async () => {
    await r.close();
    await t.close();
  });
  return r;
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
};

const REQ = { shard: 0, method: "POST", path: "/v1/messages", headers: {}, body: Buffer.from("m") };

describe("Router over the framed transport, when the owner goes away", () => {
  it("a request not yet acknowledged when the owner's connection closes is served by the new owner, once", async () => {
    const store = new MemoryStore();
    const old = await coreapp(store, "old", "hold-before-start");
    const next = await coreapp(store, "next", "serve");
    store.storage.shards.set(0, { shard: 0, owner: old.id, epoch: 1 });
    const r = await router(store);
    const pending = r.forward(REQ);
    await until(() => old.arrivals() === 1);
    // The failover: the map names the new owner, and the old one's process goes away.
    store.storage.shards.set(0, { shard: 0, owner: next.id, epoch: 2 });
    await old.stop();
    const result = await pending;
    expect(result).toMatchObject({ ok: true, failed: false, node: next.id, epoch: 2 });
    expect(old.ran).toHaveLength(0);
    expect(next.ran).toHaveLength(1);
  });

  it("a request the owner acknowledged fails as in doubt when its connection closes, and is not sent again", async () => {
    const store = new MemoryStore();
    const old = await coreapp(store, "old", "hold-after-start");
    const next = await coreapp(store, "next", "serve");
    store.storage.shards.set(0, { shard: 0, owner: old.id, epoch: 1 });
    const r = await router(store);
    const pending = r.forward(REQ);
    await until(() => old.ran.length === 1);
    store.storage.shards.set(0, { shard: 0, owner: next.id, epoch: 2 });
    await old.stop();
    const result = await pending;
    expect(result).toMatchObject({ ok: false, inDoubt: true });
    expect(next.arrivals()).toBe(0);
  });

  it("an acknowledged request with no answer fails by retry_window + the in-doubt bound, not the forward timeout", async () => {
    const store = new MemoryStore();
    const old = await coreapp(store, "old", "hold-after-start");
    store.storage.shards.set(0, { shard: 0, owner: old.id, epoch: 1 });
    // Over the network: the owners listen in this process, where the shortcut would call them directly.
    const t = new FramedTransport({
      nodeId: `web.${randomBytes(3).toString("hex")}`,
      clusterName: CLUSTER,
      secret: SECRET,
      inProcessShortcut: false,
    });
    const options = { shards: 1, retryWindowMs: 200, forwardTimeoutMs: 10_000, inDoubtBoundMs: 300 };
    const r = new Router(store.shardMap, store.liveness, t, new SystemClock(), options, silentLogger);
    await r.start();
    cleanups.push(async () => {
      await r.close();
      await t.close();
    });
    const begun = performance.now();
    const result = await r.forward(REQ);
    expect(result).toMatchObject({ ok: false, inDoubt: true });
    // Bounded by 500 ms of window and bound; generous upper limit for a loaded machine.
    expect(performance.now() - begun).toBeGreaterThanOrEqual(450);
    expect(performance.now() - begun).toBeLessThan(5000);
    expect(old.ran).toHaveLength(1);
  });
});
