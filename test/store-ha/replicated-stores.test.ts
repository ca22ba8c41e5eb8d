import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { EtcdStore } from "../../src/adapters/etcd/index.js";
import { PostgresStore } from "../../src/adapters/postgres/index.js";
import { RedisStore } from "../../src/adapters/redis/index.js";
import { ConfigError, StoreConfigurationError } from "../../src/core/errors.js";
import type { AcquireResult, Lease } from "../../src/core/ports/leases.js";
import { randomNamespace } from "../../src/testing/net.js";
import { EtcdCluster } from "../../chaos/store-ha/etcd-cluster.js";
import { PostgresStandbyPair } from "../../chaos/store-ha/postgres-standby.js";
import { RedisSentinelSet, SENTINEL_NAME } from "../../chaos/store-ha/redis-sentinel.js";
import { until } from "../../chaos/store-ha/process.js";
import { parseConfig } from "../../src/config/load.js";
import { SystemClock } from "../../src/core/clock.js";
import { openStore } from "../../src/nodes/open-store.js";

/**
 * The store's own failover, at the level of the lease port: a lease granted and renewed before the
 * store fails over is still held, at the same epoch, by the server that takes over, and the next
 * epoch is higher. Each test starts its own replicated store (free ports, data under /tmp) and
 * stops it even when it fails. The whole-cluster version with the oracle is `npm run chaos --
 * --store-ha` (docs/reliability.md).
 */
const TTL = 10_000;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "mc-store-ha-"));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function held(r: AcquireResult): Lease {
  if (!r.acquired) throw new Error(`expected the lease, got ${JSON.stringify(r)}`);
  return r.lease;
}

/** Renews until the store answers again (it is failing over), then returns the answer. */
async function renewAcross(store: { leases: { renew(l: Lease, ttl: number): Promise<boolean> } }, lease: Lease): Promise<boolean> {
  return until("a renewal answered after the failover", () => store.leases.renew(lease, TTL), 30_000);
}

describe("Redis with Sentinel", () => {
  it("new RedisStore() refuses Sentinels without a name, beside a fixed server, or without waiting for a replica", () => {
    expect(() => new RedisStore({ sentinels: ["127.0.0.1:26379"] })).toThrow(ConfigError);
    expect(() => new RedisStore({ sentinels: ["127.0.0.1:26379"] })).toThrow(/store\.sentinel_name/);
    expect(() => new RedisStore({ sentinels: "127.0.0.1:26379", sentinelName: "mc", url: "redis://x" })).toThrow(/store\.sentinels/);
    expect(() => new RedisStore({ sentinels: ["nohost"], sentinelName: "mc" })).toThrow(/host:port/);
    expect(() => new RedisStore({ sentinels: ["127.0.0.1:26379"], sentinelName: "mc", waitReplicas: 0 })).toThrow(/store\.wait_replicas/);
  });

  it("migrate() refuses wait_replicas on a primary without that many replicas (the shared server has none)", async () => {
    const store = new RedisStore({ url: "redis://127.0.0.1:6379", keyPrefix: `mc-test:${randomNamespace()}:`, waitReplicas: 1 });
    cleanups.push(() => store.close());
    await expect(store.migrate()).rejects.toThrow(StoreConfigurationError);
    await expect(store.migrate()).rejects.toThrow(/0 replica\(s\) online and store\.wait_replicas is 1/);
  });

  it("a lease renewed before kill -9 of the primary is still held at its epoch on the promoted replica", async () => {
    const set = await RedisSentinelSet.start(tempDir());
    cleanups.push(() => set.stop());
    const options = {
      sentinels: set.sentinels.map((s) => `127.0.0.1:${s.port}`),
      sentinelName: SENTINEL_NAME,
      keyPrefix: `mc:${randomNamespace()}`,
    };
    const a = new RedisStore(options);
    const b = new RedisStore(options);
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    await a.migrate();
    // A server that started less than a TTL ago quarantines new leases (scripts.ts): wait it out.
    const lease = await acquireWhenFree(a, "a");
    expect(await a.leases.renew(lease, TTL)).toBe(true);
    const old = await set.primary();
    await old.kill9();
    await set.waitNewPrimary(old);
    // With one replica, the promoted one has none until the old primary returns as its replica:
    // until then every write waits for an acknowledgement in vain (safe, unavailable).
    await expect(a.leases.renew(lease, TTL)).rejects.toThrow(/acknowledged by 0 of the 1 replica|unreachable/);
    await set.restartAsReplica(old);
    expect(await renewAcross(a, lease)).toBe(true);
    const other = await b.leases.acquire("shard-0", "b", TTL);
    expect(other).toMatchObject({ acquired: false, holder: "a", epoch: lease.epoch });
    await a.leases.release(lease);
    // The promoted replica is another server incarnation: the next epoch is re-based, never lower.
    const next = await acquireWhenFree(b, "b");
    expect(next.epoch).toBeGreaterThan(lease.epoch);
  }, 90_000);
});

describe("PostgreSQL with a streaming standby", () => {
  it("migrate() refuses several hosts whose primary replicates asynchronously, naming synchronous_standby_names", async () => {
    const pair = await PostgresStandbyPair.start(tempDir(), false);
    cleanups.push(() => pair.stop());
    const store = new PostgresStore({ ...storeOptions(pair), tablePrefix: `t${randomNamespace()}_` });
    cleanups.push(() => store.close());
    await expect(store.migrate()).rejects.toThrow(StoreConfigurationError);
    await expect(store.migrate()).rejects.toThrow(/synchronous_standby_names is empty on the primary/);
  }, 90_000);

  it("after kill -9 of the primary and pg_promote() of the synchronous standby, the lease and its epoch are there", async () => {
    const pair = await PostgresStandbyPair.start(tempDir(), true);
    cleanups.push(() => pair.stop());
    const options = { ...storeOptions(pair), tablePrefix: `t${randomNamespace()}_` };
    const a = new PostgresStore(options);
    const b = new PostgresStore(options);
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    await a.migrate();
    const lease = held(await a.leases.acquire("shard-0", "a", TTL));
    expect(await a.leases.renew(lease, TTL)).toBe(true);
    await pair.failover();
    expect(await renewAcross(a, lease)).toBe(true);
    expect(await b.leases.acquire("shard-0", "b", TTL)).toMatchObject({ acquired: false, holder: "a", epoch: lease.epoch });
    await a.leases.release(lease);
    expect(held(await b.leases.acquire("shard-0", "b", TTL)).epoch).toBe(lease.epoch + 1);
  }, 90_000);

  it("new PostgresStore() refuses hosts beside host, port or url", () => {
    expect(() => new PostgresStore({ hosts: ["a:1", "b:2"], port: 5432 })).toThrow(/store\.hosts/);
    expect(() => new PostgresStore({ hosts: ["a:x"] })).toThrow(/host or host:port/);
  });
});

describe("etcd, three members", () => {
  it("a lease survives kill -9 of the leader, and the client moves on to the members that answer", async () => {
    const etcd = await EtcdCluster.start(tempDir());
    cleanups.push(() => etcd.stop());
    const store = new EtcdStore({ hosts: etcd.members.map((m) => `http://127.0.0.1:${m.port}`), keyPrefix: `mc/${randomNamespace()}/` });
    cleanups.push(() => store.close());
    await store.migrate();
    const lease = held(await store.leases.acquire("shard-0", "a", TTL));
    const leader = await until("an etcd leader", () => etcd.leader());
    await leader.kill9();
    expect(await renewAcross(store, lease)).toBe(true);
    expect(await store.leases.current("shard-0")).toMatchObject({ holder: "a", epoch: lease.epoch });
  }, 90_000);
});

/** Acquires shard-0 for `holder` once no quarantine stands in the way (at most 30 s). */
function acquireWhenFree(store: RedisStore, holder: string): Promise<Lease> {
  return until(
    `${holder} acquires shard-0`,
    async () => {
      const r = await store.leases.acquire("shard-0", holder, TTL);
      return r.acquired ? r.lease : null;
    },
    30_000,
  );
}

function storeOptions(pair: PostgresStandbyPair) {
  const section = pair.storeSection("unused");
  return { hosts: section["hosts"] as string[], user: "postgres", database: "test" };
}

describe("config: replicated stores", () => {
  const file = (store: Record<string, unknown>) => ({ cluster_name: "c1", secret: "0123456789abcdef-secret", store });

  it("parseConfig() takes Sentinel keys and several PostgreSQL hosts, and openStore() hands them to the adapters", async () => {
    const redis = parseConfig(file({ backend: "redis", sentinels: ["127.0.0.1:26379"], sentinel_name: "mc", sentinel_password: "pw" }), {});
    expect(redis.store).toMatchObject({ sentinels: ["127.0.0.1:26379"], sentinel_name: "mc" });
    const opened = await openStore(redis.store, new SystemClock());
    expect((opened as RedisStore).describe()).toBe("redis sentinel mc (127.0.0.1:26379)/0");
    await opened.close();
    const pg = parseConfig(file({ backend: "postgres", hosts: "127.0.0.1:5432,127.0.0.1:5433", user: "postgres" }), {});
    const pgStore = await openStore(pg.store, new SystemClock());
    expect((pgStore as PostgresStore).describe()).toBe("postgres 127.0.0.1:5432,127.0.0.1:5433/test");
    await pgStore.close();
  });

  it("openStore() refuses Sentinels with wait_replicas 0, naming the key", async () => {
    const c = parseConfig(file({ backend: "redis", sentinels: "127.0.0.1:26379", sentinel_name: "mc", wait_replicas: 0 }), {});
    await expect(openStore(c.store, new SystemClock())).rejects.toThrow(/store\.wait_replicas: must be at least 1 with store\.sentinels/);
  });
});
