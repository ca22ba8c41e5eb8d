import { spawnSync } from "node:child_process";
import net from "node:net";
import { inspect } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { RedisStore, type RedisOptions } from "../../src/adapters/redis/index.js";
import { StoreConfigurationError, StoreUnavailableError } from "../../src/core/errors.js";
import { MASTER_LEASE, shardLeaseName, type Lease } from "../../src/core/ports/leases.js";
import type { ShardAssignment } from "../../src/core/ports/shard-map.js";
import type { Store } from "../../src/core/ports/store.js";
import { refusedPort } from "../../src/testing/net.js";
import { DEFAULT_SETTINGS } from "../../src/core/timing.js";
import { kill9, killPrivateRedises, startPrivateRedis } from "../support/private-redis.js";

/**
 * The Redis adapter against private `redis-server` processes that these tests start, kill -9 and
 * restart on free ports (never the shared server): data loss, credentials, eviction settings.
 * A missing `redis-server` fails this file loudly, unless MC_SKIP_REDIS=1.
 */
const missing = spawnSync("redis-server", ["--version"]).error;
if (missing && process.env.MC_SKIP_REDIS !== "1") {
  throw new Error(`redis: cannot run redis-server (${missing.message}); install it or set MC_SKIP_REDIS=1`);
}

const stores: Store[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP relay to `port` whose connections can be cut (and new ones refused) and restored. */
async function startProxy(port: number): Promise<{ port: number; cut(): Promise<void>; restore(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {}).on("close", () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  const listen = (p: number) => new Promise<void>((resolve) => server.listen(p, "127.0.0.1", resolve));
  await listen(0);
  const own = (server.address() as net.AddressInfo).port;
  return {
    port: own,
    cut: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
    restore: () => listen(own),
  };
}

/** Stops a server the way a crash does (SIGKILL) and waits for its exit. */

function open(port: number, o: RedisOptions = {}): RedisStore {
  const store = new RedisStore({ host: "127.0.0.1", port, keyPrefix: "mc-restart:", operationTimeoutMs: 500, ...o });
  stores.push(store);
  return store;
}

/** Acquires, waiting out a quarantine (holder null) if there is one. */
async function acquireSoon(store: Store, name: string, holder: string, ttlMs: number): Promise<Lease> {
  for (let i = 0; i < 20; i++) {
    const r = await store.leases.acquire(name, holder, ttlMs);
    if (r.acquired) return r.lease;
    if (r.holder !== null) throw new Error(`setup: ${name} is held by ${r.holder}`);
    await sleep(r.expiresInMs + 20);
  }
  throw new Error(`setup: ${name} never became free`);
}

/** Retries `call` while the store is unavailable (a client reconnecting to a restarted server). */
async function once<T>(call: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof StoreUnavailableError) || i >= 20) throw error;
      await sleep(100);
    }
  }
}

/** Waits until `check()` holds; fails naming what it waited for after `timeoutMs`. */
async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`condition not reached within ${timeoutMs} ms: ${check.toString()}`);
    await sleep(20);
  }
}

/** A call's outcome as a value: its result, or the error it threw. */
const settle = (p: Promise<unknown>): Promise<unknown> => p.catch((e: unknown) => e);

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
  await killPrivateRedises();
});

describe.skipIf(missing)("redis: a private server without persistence", { timeout: 60_000 }, () => {
  const ttlMs = 800;

  it("after kill -9 and a restart, the cluster document reads as lost, and its rewrite's version and new history sequence numbers exceed every earlier one", async () => {
    const port = await refusedPort();
    const server = await startPrivateRedis(port);
    const a = open(port);
    await a.migrate();
    const master = await acquireSoon(a, MASTER_LEASE, "m1", ttlMs * 2);
    const doc = { settings: DEFAULT_SETTINGS, shardCount: 2, pauses: [] };
    let version = 0;
    for (let i = 0; i < 3; i++) {
      const w = await a.clusterDocument.write(version, doc, master);
      if (!w.ok) throw new Error(`setup: write failed (${w.reason})`);
      version = w.version;
    }
    const event = { type: "promoted", shard: 0, cause: "test", evidence: {}, epochs: {}, node: "m1" } as const;
    const before = await a.history.append(event, master);
    if (!before.ok) throw new Error("setup: append failed");

    await kill9(server);
    await startPrivateRedis(port);

    expect(await once(() => a.clusterDocument.read())).toBeNull();
    expect(await a.clusterDocument.version()).toBe(0);
    expect(await a.history.list()).toEqual([]);
    const again = await acquireSoon(a, MASTER_LEASE, "m1", ttlMs * 2);
    // A writer still holding the old version is told the document is gone, then rewrites it from 0.
    expect(await a.clusterDocument.write(version, doc, again)).toEqual({ ok: false, reason: "conflict", current: null });
    const rewritten = await a.clusterDocument.write(0, doc, again);
    expect(rewritten.ok && rewritten.version).toBeGreaterThan(version);
    const after = await a.history.append(event, again);
    expect(after.ok && after.event.seq).toBeGreaterThan(before.event.seq);
  });

  it("after kill -9 and a restart, new lease and shard epochs exceed every earlier one, and acquire() is refused until the quarantine ends", async () => {
    const port = await refusedPort();
    const server = await startPrivateRedis(port);
    const a = open(port);
    const b = open(port);
    await a.migrate();
    const master = await acquireSoon(a, MASTER_LEASE, "m1", ttlMs);
    const shard0 = await acquireSoon(a, shardLeaseName(0), "c1", ttlMs);
    const shard1 = await acquireSoon(a, shardLeaseName(1), "c2", ttlMs);
    const epochs = [master.epoch, shard0.epoch, shard1.epoch];
    let expected = 0;
    for (const owner of ["c1", "c2", "c1"]) {
      const r = await a.shardMap.assign(0, expected, owner, master);
      if (!r.ok) throw new Error(`setup: assign failed (${r.reason})`);
      expected = r.assignment.epoch;
      epochs.push(expected);
    }
    const r1 = await a.shardMap.assign(1, 0, "c2", master);
    if (!r1.ok) throw new Error("setup: assign failed");
    epochs.push(r1.assignment.epoch);
    const highest = Math.max(...epochs);

    await kill9(server);
    await startPrivateRedis(port);

    // The old holder learns it lost the lease; a newcomer may not take it during the quarantine.
    expect(await settle(a.leases.renew(shard0, ttlMs))).not.toBe(true);
    // The quarantine counts from the first acquire() that notices the loss, so retrying is fair.
    const refused = await once(() => b.leases.acquire(shardLeaseName(0), "c3", ttlMs));
    expect(refused).toMatchObject({ acquired: false, holder: null });
    if (refused.acquired) return;
    expect(refused.expiresInMs).toBeGreaterThan(0);
    expect(refused.expiresInMs).toBeLessThanOrEqual(ttlMs);
    expect(await a.leases.renew(shard0, ttlMs)).toBe(false);
    expect(await b.shardMap.read()).toEqual([]);

    await sleep(refused.expiresInMs + 20);
    const taken = await b.leases.acquire(shardLeaseName(0), "c3", ttlMs);
    expect(taken.acquired && taken.lease.epoch).toBeGreaterThan(highest);
    const master2 = await acquireSoon(b, MASTER_LEASE, "m2", ttlMs);
    expect(master2.epoch).toBeGreaterThan(highest);
    const assigned = await b.shardMap.assign(0, 0, "c3", master2);
    expect(assigned.ok && assigned.assignment.epoch).toBeGreaterThan(highest);
    // The deposed master's epoch no longer opens the shard map.
    expect(await a.shardMap.assign(1, 0, "c9", master)).toEqual({ ok: false, reason: "fenced" });
  });

  it("watch() delivers each shard the server lost as void (owner null), then the new assignment at a higher epoch", async () => {
    const port = await refusedPort();
    const server = await startPrivateRedis(port);
    const a = open(port);
    await a.migrate();
    const master = await acquireSoon(a, MASTER_LEASE, "m1", ttlMs);
    const first = await a.shardMap.assign(0, 0, "c1", master);
    if (!first.ok) throw new Error("setup: assign failed");
    const seen: ShardAssignment[] = [];
    const watch = await a.shardMap.watch((changed) => seen.push(...changed));
    try {
      expect(seen).toEqual([first.assignment]);
      await kill9(server);
      await startPrivateRedis(port);
      await waitUntil(() => seen.length >= 2, 10_000);
      // A coreapp acting on its cached entry would promote at the old epoch on a map that no longer names it.
      expect(seen[1]).toEqual({ shard: 0, owner: null, epoch: first.assignment.epoch });
      const master2 = await acquireSoon(a, MASTER_LEASE, "m2", ttlMs);
      const again = await once(() => a.shardMap.assign(0, 0, "c2", master2));
      if (!again.ok) throw new Error("setup: assign after the restart failed");
      await waitUntil(() => seen.length >= 3, 10_000);
      expect(seen[2]).toEqual(again.assignment);
      expect(again.assignment.epoch).toBeGreaterThan(first.assignment.epoch);
    } finally {
      await watch.close();
    }
  });

  it("renew() while the server shuts down without saving, and after it is back, never returns true", async () => {
    const port = await refusedPort();
    const server = await startPrivateRedis(port);
    const store = open(port);
    await store.migrate();
    const lease = await acquireSoon(store, shardLeaseName(0), "c1", ttlMs);
    expect(await store.leases.renew(lease, 5_000)).toBe(true);
    const exited = new Promise((r) => server.once("exit", r));
    spawnSync("redis-cli", ["-p", String(port), "shutdown", "nosave"]);
    await exited;

    const whileDown = await settle(store.leases.renew(lease, 5_000));
    expect(whileDown).toBeInstanceOf(StoreUnavailableError);

    await startPrivateRedis(port);
    expect(await once(() => store.leases.renew(lease, 5_000))).toBe(false);
    expect(await store.leases.current(shardLeaseName(0))).toBeNull();
    expect(await store.leases.acquire(shardLeaseName(0), "c2", ttlMs)).toMatchObject({ acquired: false, holder: null });
  });

  it("a wrong password gives StoreConfigurationError naming redis and the host, never the password", async () => {
    const port = await refusedPort();
    await startPrivateRedis(port, ["--requirepass", "correct-horse-battery"]);
    const attempts = [
      open(port, { password: "wrong-staple-4711" }),
      open(port, { url: `redis://:wrong-staple-4711@127.0.0.1:${port}/0` }),
      open(port),
    ];
    for (const store of attempts) {
      const error = await settle(store.leases.acquire("l", "n1", ttlMs));
      expect(error).toBeInstanceOf(StoreConfigurationError);
      const text = (error as Error).message;
      expect(text).toContain("redis");
      expect(text).toContain(`127.0.0.1:${port}`);
      expect(inspect(error, { depth: 10 }) + JSON.stringify(error)).not.toMatch(/wrong-staple|correct-horse/);
    }
    const right = open(port, { password: "correct-horse-battery" });
    await right.liveness.beat({ id: "n1.x", name: "n1", role: "master", address: "", meta: {} });
    expect(await right.liveness.list()).toHaveLength(1);
  });

  it("migrate() refuses a server that may evict keys, naming maxmemory-policy", async () => {
    const port = await refusedPort();
    await startPrivateRedis(port, ["--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru"]);
    const error = await settle(open(port).migrate());
    expect(error).toBeInstanceOf(StoreConfigurationError);
    expect((error as Error).message).toMatch(/maxmemory-policy is volatile-lru.*noeviction/);
  });

  it("migrate() starts a new namespace unquarantined on a server up for longer than a ttl, but not after a FLUSHALL", async () => {
    const port = await refusedPort();
    await startPrivateRedis(port);
    await sleep(2_100); // uptime is in whole seconds, and migrate() adds one for the rounding
    const store = open(port);
    await store.migrate();
    expect((await store.leases.acquire(shardLeaseName(0), "c1", ttlMs)).acquired).toBe(true);
    spawnSync("redis-cli", ["-p", String(port), "flushall"]);
    const other = open(port, { keyPrefix: "mc-other:" });
    await other.migrate();
    expect(await other.leases.acquire(shardLeaseName(0), "c2", ttlMs)).toMatchObject({ acquired: false, holder: null });
  });

  it("a call that failed while the connection was cut is never sent after it comes back", async () => {
    const port = await refusedPort();
    await startPrivateRedis(port);
    const proxy = await startProxy(port);
    try {
      const store = open(proxy.port);
      await store.migrate();
      // Beat once first: the server then has the script, so a late replay would not fail on NOSCRIPT.
      await store.liveness.beat({ id: "early.x", name: "early", role: "coreapp", address: "", meta: {} });
      await proxy.cut();
      await sleep(100); // the client has seen the connection close and is reconnecting
      const beat = store.liveness.beat({ id: "late.x", name: "late", role: "coreapp", address: "", meta: {} });
      expect(await settle(beat)).toBeInstanceOf(StoreUnavailableError);
      await proxy.restore();
      expect((await once(() => store.liveness.list())).map((n) => n.id)).toEqual(["early.x"]);
      await sleep(300);
      expect((await store.liveness.list()).map((n) => n.id)).toEqual(["early.x"]);
    } finally {
      await proxy.cut();
    }
  });

  it("a just-started server quarantines even a migrated namespace for one ttl, since it may have lost one", async () => {
    const port = await refusedPort();
    await startPrivateRedis(port);
    const store = open(port);
    await store.migrate();
    const r = await store.leases.acquire(MASTER_LEASE, "m1", ttlMs);
    expect(r).toMatchObject({ acquired: false, holder: null });
    await acquireSoon(store, MASTER_LEASE, "m1", ttlMs);
  });
});
