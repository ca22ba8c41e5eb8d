import { afterEach, describe, expect, it } from "vitest";
import { MemoryStorage, MemoryStore } from "../../src/adapters/memory/index.js";
import { SystemClock } from "../../src/core/clock.js";
import type { CoreappApplication } from "../../src/core/coreapp/application.js";
import { silentLogger } from "../../src/core/silent-logger.js";
import { deriveTiming } from "../../src/core/timing.js";
import { Router } from "../../src/core/webapp/router.js";
import { Coreapp } from "../../src/nodes/coreapp.js";
import { DEFAULT_PLACEMENT, type Placement } from "../../src/core/master/placement.js";
import type { PromotionEvent } from "../../src/core/master/shard-manager.js";
import { Master } from "../../src/nodes/master.js";
import { MemoryNetwork } from "../support/memory-transport.js";

/**
 * The core algorithms together, in one process, on the memory store and an in-process network,
 * with short intervals. Every test asserts S1 (never two coreapps serving one shard) at every
 * millisecond; failover timing is not asserted here (see the benchmarks), only that it happens.
 */
const settings = { heartbeatIntervalMs: 20, unhealthyIntervalMs: 150, dbHeartbeatIntervalMs: 50, dbUnhealthyIntervalMs: 300 };
const timing = deriveTiming(settings);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Cluster {
  readonly storage = new MemoryStorage();
  readonly net = new MemoryNetwork();
  readonly clock = new SystemClock();
  readonly masters: Master[] = [];
  readonly coreapps: Coreapp[] = [];
  readonly stores = new Map<string, MemoryStore>();
  readonly overlaps: string[] = [];
  readonly promotions: { name: string; shard: number; epoch: number }[] = [];
  /** The primary masters' shard-map writes, with their reasons. */
  readonly assignments: PromotionEvent[] = [];
  private readonly guard: NodeJS.Timeout;

  constructor(readonly shards = 1) {
    this.guard = setInterval(() => this.checkSafety(), 1);
  }

  private deps(id: string) {
    const store = new MemoryStore(this.storage);
    this.stores.set(id, store);
    return { store, transport: this.net.endpoint(id), clock: this.clock, timing, log: silentLogger };
  }

  private identity(name: string) {
    return { id: `${name}.x`, name, listenHost: "127.0.0.1", port: 0, externalHostname: "mem" };
  }

  async addMaster(name: string): Promise<Master> {
    const m = new Master(this.deps(`${name}.x`), this.identity(name), this.shards);
    m.on("promotion", (e) => this.assignments.push(e));
    this.masters.push(m);
    await m.start();
    return m;
  }

  async addCoreapp(name: string, placement: Placement = DEFAULT_PLACEMENT): Promise<Coreapp> {
    const app: CoreappApplication = {
      onPromote: (shard, epoch) => void this.promotions.push({ name, shard, epoch }),
      onDemote: () => {},
      handle: (req) => ({ status: 200, body: `${name}:${req.epoch}` }),
    };
    const c = new Coreapp(this.deps(`${name}.x`), this.identity(name), app, 1000, placement);
    this.coreapps.push(c);
    await c.start();
    return c;
  }

  router(): Router {
    const store = new MemoryStore(this.storage);
    return new Router(store.shardMap, store.liveness, this.net.endpoint("webapp.x"), this.clock, { shards: this.shards, retryWindowMs: 2000, forwardTimeoutMs: 500 }, silentLogger);
  }

  serving(shard: number): Coreapp[] {
    return this.coreapps.filter((c) => {
      const s = c.state();
      return s.serving && s.shard === shard;
    });
  }

  /** Cuts a node off from everything: the store and every other node, as a crash or a pause looks. */
  isolate(node: { id: string }): void {
    this.stores.get(node.id)!.unavailable = true;
    for (const other of [...this.masters, ...this.coreapps, { id: "webapp.x" }]) this.net.cut(node.id, other.id);
  }

  async waitFor(check: () => boolean, ms = 5000): Promise<void> {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error("condition not reached in time");
      await sleep(5);
    }
  }

  private checkSafety(): void {
    for (let shard = 0; shard < this.shards; shard++) {
      const s = this.serving(shard);
      if (s.length > 1) this.overlaps.push(`shard ${shard}: ${s.map((c) => c.name).join(", ")}`);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.guard);
    for (const s of this.stores.values()) s.unavailable = false;
    this.net.heal();
    await Promise.all([...this.masters, ...this.coreapps].map((n) => n.stop()));
  }
}

let cluster: Cluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

async function started(shards = 1, coreapps = 3): Promise<Cluster> {
  const c = (cluster = new Cluster(shards));
  await c.addMaster("m1");
  await c.addMaster("m2");
  for (let i = 1; i <= coreapps; i++) await c.addCoreapp(`c${i}`);
  for (let s = 0; s < shards; s++) await c.waitFor(() => c.serving(s).length === 1);
  return c;
}

describe("cluster on the memory store", () => {
  it("elects exactly one primary master and gives every shard exactly one serving primary", async () => {
    const c = await started(2, 3);
    expect(c.masters.filter((m) => m.role === "primary_master")).toHaveLength(1);
    expect(new Set([0, 1].map((s) => c.serving(s)[0]!.name)).size).toBe(2);
    expect(c.overlaps).toEqual([]);
  });

  it("a crashed primary coreapp is replaced by a standby with a higher epoch, never two at once", async () => {
    const c = await started();
    const old = c.serving(0)[0]!;
    const oldEpoch = old.state().epoch!;
    c.isolate(old);
    await c.waitFor(() => c.serving(0).some((x) => x !== old));
    const now = c.serving(0);
    expect(now).toHaveLength(1);
    expect(now[0]!.state().epoch).toBeGreaterThan(oldEpoch);
    expect(old.state().serving).toBe(false);
    expect(c.overlaps).toEqual([]);
  });

  it("a primary the masters cannot reach but the store still sees hands over cleanly", async () => {
    const c = await started();
    const old = c.serving(0)[0]!;
    for (const m of c.masters) c.net.cut(m.id, old.id);
    await c.waitFor(() => c.serving(0).some((x) => x !== old));
    await c.waitFor(() => old.state().shard === null);
    expect(c.overlaps).toEqual([]);
  });

  it("a primary cut from the store only says it gave its tenure up, and is replaced at once, not after the not-serving rule", async () => {
    const c = await started();
    const old = c.serving(0)[0]!;
    c.stores.get(old.id)!.unavailable = true;
    await c.waitFor(() => c.serving(0).some((x) => x !== old));
    const replaced = c.assignments.at(-1)!;
    expect(replaced.from).toBe(old.id);
    expect(replaced.reason).toBe("the owner gave up this assignment: confirmation deadline passed without a successful renewal");
    expect(old.state().ended).toMatchObject({ shard: 0, refused: false });
    expect(c.overlaps).toEqual([]);
  });

  it("after a store outage longer than the lease, every tenure has a higher epoch than the last: the same coreapp resumes under a new one", async () => {
    const c = await started(1, 1);
    const only = c.coreapps[0]!;
    const before = only.state().epoch!;
    for (const store of c.stores.values()) store.unavailable = true;
    await c.waitFor(() => !only.state().serving);
    for (const store of c.stores.values()) store.unavailable = false;
    await c.waitFor(() => c.serving(0).length === 1);
    expect(only.state().epoch).toBeGreaterThan(before);
    const epochs = c.promotions.map((p) => p.epoch);
    expect(epochs).toEqual([...epochs].sort((a, b) => a - b));
    expect(new Set(epochs).size).toBe(epochs.length);
    expect(c.overlaps).toEqual([]);
  });

  it("placement: the standby with the higher node.priority is promoted; a nofailover one never automatically, and by switchover only with force", async () => {
    const c = (cluster = new Cluster(1));
    await c.addMaster("m1");
    await c.addMaster("m2");
    const first = await c.addCoreapp("c1");
    await c.waitFor(() => c.serving(0).length === 1);
    const never = await c.addCoreapp("c2", { priority: 100, nofailover: true });
    await c.addCoreapp("c3", { priority: -1, nofailover: false });
    const preferred = await c.addCoreapp("c4", { priority: 5, nofailover: false });
    await sleep(settings.heartbeatIntervalMs * 3); // every master has heard every standby
    c.isolate(first);
    await c.waitFor(() => c.serving(0).some((x) => x !== first));
    expect(c.serving(0)).toEqual([preferred]);

    const primary = c.masters.find((m) => m.role === "primary_master")!;
    const address = (await c.stores.get(primary.id)!.liveness.list()).find((n) => n.id === primary.id)!.address;
    const ask = (force: boolean) => c.net.endpoint("cli.x").switchover({ id: primary.id, address }, { shard: 0, to: "c2", ...(force ? { force } : {}) }, 5000);
    const refused = await ask(false);
    expect(refused).toMatchObject({ ok: false, error: { code: 409, message: "c2 is marked nofailover: switch to it with force" } });
    expect(await ask(true)).toMatchObject({ ok: true, to: never.id });
    expect(c.serving(0)).toEqual([never]);
    expect(c.overlaps).toEqual([]);
  });

  it("losing the primary master moves the master lease, not the shard", async () => {
    const c = await started();
    const primary = c.masters.find((m) => m.role === "primary_master")!;
    const serving = c.serving(0)[0]!;
    const epoch = serving.state().epoch;
    c.isolate(primary);
    await c.waitFor(() => c.masters.some((m) => m !== primary && m.role === "primary_master"));
    await sleep(timing.unhealthyIntervalMs * 2);
    expect(c.serving(0)).toEqual([serving]);
    expect(serving.state().epoch).toBe(epoch);
    expect(primary.role).toBe("secondary_master");
    expect(c.overlaps).toEqual([]);
  });

  it("heartbeat answers slower than heartbeat_interval are not a failure (no false promotion)", async () => {
    const c = await started();
    const serving = c.serving(0)[0]!;
    const epoch = serving.state().epoch;
    c.net.slowHeartbeats.set(serving.id, settings.heartbeatIntervalMs * 2);
    await sleep(settings.unhealthyIntervalMs * 4);
    expect(c.serving(0)).toEqual([serving]);
    expect(serving.state().epoch).toBe(epoch);
    expect(c.promotions).toHaveLength(1);
  });

  it("a store that loses its shard map gets it rewritten by the primary master, with one primary throughout", async () => {
    const c = await started();
    c.storage.shards.clear();
    await c.waitFor(() => (c.storage.shards.get(0)?.owner ?? null) !== null);
    await c.waitFor(() => c.serving(0).length === 1);
    expect(c.storage.shards.get(0)!.epoch).toBeGreaterThan(0);
    expect(c.overlaps).toEqual([]);
  });

  it("with every master stopped, the primary coreapp keeps serving requests", async () => {
    const c = await started();
    const router = c.router();
    await router.start();
    try {
      for (const m of c.masters) await m.stop();
      await sleep(timing.leaseTtlMs * 4);
      const r = await router.forward({ shard: 0, method: "POST", path: "/v1/messages", headers: {}, body: new Uint8Array() });
      expect(r.ok).toBe(true);
      expect(c.serving(0)).toHaveLength(1);
    } finally {
      await router.close();
    }
  });

  it("switchover moves the shard with no request failing at the client", async () => {
    const c = await started();
    const router = c.router();
    await router.start();
    try {
      const old = c.serving(0)[0]!;
      const failures: string[] = [];
      const served = new Set<string>();
      let running = true;
      const load = (async () => {
        while (running) {
          const r = await router.forward({ shard: 0, method: "POST", path: "/", headers: {}, body: new Uint8Array() });
          if (r.ok) served.add(Buffer.from(r.response.body).toString());
          else failures.push(r.reason);
          await sleep(1);
        }
      })();
      await sleep(50);
      const primary = c.masters.find((m) => m.role === "primary_master")!;
      // The master's own handler, reached over the transport as the CLI reaches it.
      const address = (await c.stores.get(primary.id)!.liveness.list()).find((n) => n.id === primary.id)!.address;
      const reply = await c.net.endpoint("cli.x").switchover({ id: primary.id, address }, { shard: 0 }, 5000);
      expect(reply.ok).toBe(true);
      await sleep(50);
      running = false;
      await load;
      expect(failures).toEqual([]);
      expect(c.serving(0)[0]).not.toBe(old);
      expect([...served].some((s) => s.startsWith(old.name))).toBe(true);
      expect([...served].some((s) => !s.startsWith(old.name))).toBe(true);
      expect(c.overlaps).toEqual([]);
    } finally {
      await router.close();
    }
  });
});
