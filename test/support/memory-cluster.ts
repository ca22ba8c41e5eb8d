import { MemoryStorage, MemoryStore } from "../../src/adapters/memory/index.js";
import { SystemClock } from "../../src/core/clock.js";
import type { CoreappApplication } from "../../src/core/coreapp/application.js";
import { DEFAULT_PLACEMENT, type Placement } from "../../src/core/master/placement.js";
import type { PromotionEvent } from "../../src/core/master/shard-manager.js";
import { silentLogger } from "../../src/core/silent-logger.js";
import { deriveTiming, type ClusterSettings } from "../../src/core/timing.js";
import { Router } from "../../src/core/webapp/router.js";
import { Coreapp } from "../../src/nodes/coreapp.js";
import { Master } from "../../src/nodes/master.js";
import { MemoryNetwork } from "./memory-transport.js";

/** Short intervals for the in-process clusters of the core tests. */
export const settings = { heartbeatIntervalMs: 20, unhealthyIntervalMs: 150, dbHeartbeatIntervalMs: 50, dbUnhealthyIntervalMs: 300 };
const SHORT: ClusterSettings = settings;
/** The timing these settings derive; each node gets its own copy, since the cluster document changes it in place. */
export const timing = deriveTiming(settings);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The core algorithms together, in one process, on the memory store and an in-process network.
 * It checks S1 (never two coreapps serving one shard) every millisecond and collects violations
 * in `overlaps`, which every test asserts empty.
 */
export class Cluster {
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

  constructor(
    readonly shards = 1,
    /** The cluster settings every node starts with (the short ones above unless given). */
    readonly settings: ClusterSettings = SHORT,
  ) {
    this.guard = setInterval(() => this.checkSafety(), 1);
  }

  deps(id: string) {
    const store = new MemoryStore(this.storage);
    this.stores.set(id, store);
    return { store, transport: this.net.endpoint(id), clock: this.clock, timing: deriveTiming(this.settings), log: silentLogger };
  }

  identity(name: string) {
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
    return new Router(
      store.shardMap,
      store.liveness,
      this.net.endpoint("webapp.x"),
      this.clock,
      { shards: this.shards, retryWindowMs: 2000, forwardTimeoutMs: 500 },
      silentLogger,
    );
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

  /** Waits until `check()` holds, for at most `ms`; the error then includes `explain()` when given. */
  async waitFor(check: () => boolean, ms = 5000, explain?: () => string): Promise<void> {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error(`condition not reached in time${explain ? `: ${explain()}` : ""}`);
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

/** A cluster of two masters and `coreapps` coreapps, once every shard has a serving primary. */
export async function startCluster(c: Cluster, coreapps = 3): Promise<Cluster> {
  await c.addMaster("m1");
  await c.addMaster("m2");
  for (let i = 1; i <= coreapps; i++) await c.addCoreapp(`c${i}`);
  for (let s = 0; s < c.shards; s++) await c.waitFor(() => c.serving(s).length === 1);
  return c;
}
