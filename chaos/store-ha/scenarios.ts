import { monoNow } from "../../src/testing/oracle.js";
import type { Backend } from "../backends.js";
import { FAILSAFE, type RunContext, type Scenario } from "../scenarios.js";
import { EtcdCluster } from "./etcd-cluster.js";
import { PostgresStandbyPair } from "./postgres-standby.js";
import { sleep, until } from "./process.js";
import { RedisSentinelSet } from "./redis-sentinel.js";

/**
 * The store's own high availability (`npm run chaos -- --store-ha`): each backend here is a
 * replicated store the harness starts for the run (chaos/store-ha/*), and each scenario fails that
 * store over while the cluster serves load. Safety is judged by the oracle as in every scenario
 * (0 overlaps, 0 stale-epoch actions, 0 epoch regressions); each scenario then also requires the
 * cluster to serve again within `RECOVERY_MS` of its last fault.
 */
export const STORE_HA_BACKENDS: Record<string, Backend> = {
  "etcd-cluster": haBackend("etcd-cluster", (dir) => EtcdCluster.start(dir)),
  "redis-sentinel": haBackend("redis-sentinel", (dir) => RedisSentinelSet.start(dir)),
  "postgres-standby": haBackend("postgres-standby", (dir) => PostgresStandbyPair.start(dir)),
};

/**
 * The cluster's start deadline: nine server processes beside six nodes starting at once (etcd's
 * client alone parses protobuf for seconds) take longer than the default 30 s on a busy 2-core host.
 */
const READY_MS = 90_000;

/** Service must be back this long after a scenario's last fault (a generous deadline, not a bound). */
const RECOVERY_MS = 30_000;

function haBackend(name: Backend["name"], start: Backend["privateServer"] & {}): Backend {
  return {
    name,
    shared: null,
    store() {
      throw new Error(`${name}: the store section comes from the running store (PrivateServer.storeSection)`);
    },
    privateServer: (dir) => start(dir),
  };
}

const only = (name: string) => (b: Backend) => (b.name === name ? null : `runs on ${name} only`);

/** Waits until a request sent after `since` (monotonic ms) was served; throws after RECOVERY_MS. */
async function servedAfter(ctx: RunContext, since: number): Promise<void> {
  await until(
    "service after the store's failover",
    async () => (ctx.cluster.samples.some((s) => s.ok && s.sentAt > since) ? true : null),
    RECOVERY_MS,
  );
}

/** The store failovers, one per replicated store, with failsafe mode off. */
const STORE_FAILOVERS: Scenario[] = [
  {
    name: "etcd-member-faults",
    summary:
      "3-member etcd: kill -9 of the leader (restarted 1.5 s after a new leader), then the new leader and then a follower SIGSTOPped for 3 s each",
    expect: "any",
    privateStore: true,
    readyMs: READY_MS,
    notApplicable: only("etcd-cluster"),
    async inject(ctx) {
      const etcd = ctx.server as EtcdCluster;
      const leader = await until("an etcd leader", () => etcd.leader());
      ctx.fault(`kill -9 etcd leader ${leader.name}`);
      await leader.kill9();
      await until("a new etcd leader", () => etcd.leader());
      await sleep(1500);
      await leader.start();
      await sleep(2000);
      const second = await until("an etcd leader", () => etcd.leader());
      ctx.fault(`SIGSTOP etcd leader ${second.name} for 3 s`);
      second.freeze(true);
      await sleep(3000);
      second.freeze(false);
      await sleep(2000);
      const leaderNow = await until("an etcd leader", () => etcd.leader());
      const followers = etcd.members.filter((m) => m !== leaderNow);
      const follower = followers[Math.floor(ctx.rng() * followers.length)]!;
      ctx.fault(`SIGSTOP etcd follower ${follower.name} for 3 s`);
      follower.freeze(true);
      await sleep(3000);
      follower.freeze(false);
      await servedAfter(ctx, monoNow());
    },
  },
  {
    name: "sentinel-failovers",
    summary:
      "Redis primary + replica + 3 Sentinels: kill -9 of the primary (it returns empty, as a replica), SENTINEL FAILOVER, then the primary SIGSTOPped for 4 s (Sentinel fails over meanwhile)",
    expect: "any",
    privateStore: true,
    readyMs: READY_MS,
    notApplicable: only("redis-sentinel"),
    async inject(ctx) {
      const set = ctx.server as RedisSentinelSet;
      const first = await set.primary();
      ctx.fault(`kill -9 redis primary ${first.name}`);
      await first.kill9();
      const second = await set.waitNewPrimary(first);
      await sleep(1000);
      await set.restartAsReplica(first);
      await sleep(1500);
      ctx.fault(`SENTINEL FAILOVER away from ${second.name}`);
      await set.forceFailover();
      const third = await set.waitNewPrimary(second);
      await until(`${second.name} replicating from ${third.name}`, async () =>
        (await set.connectedReplicas(third.port)) >= 1 ? true : null,
      );
      await sleep(1500);
      ctx.fault(`SIGSTOP redis primary ${third.name} for 4 s`);
      third.freeze(true);
      await sleep(4000);
      third.freeze(false);
      await set.waitNewPrimary(third);
      await servedAfter(ctx, monoNow());
    },
  },
  {
    name: "standby-promotion",
    summary: "PostgreSQL primary + synchronous streaming standby: kill -9 of the primary, pg_promote() of the standby",
    expect: "any",
    privateStore: true,
    readyMs: READY_MS,
    notApplicable: only("postgres-standby"),
    async inject(ctx) {
      const pair = ctx.server as PostgresStandbyPair;
      ctx.fault("kill -9 postgres primary, pg_promote() on the standby");
      await pair.failover();
      await servedAfter(ctx, monoNow());
    },
  },
];

/**
 * The same failover with failsafe mode on (docs/safety.md, "Failsafe"). A store failover is an
 * outage of the store for every node at once, which is what failsafe is for: the primaries should
 * serve through it on the masters' promises, and no promise may let a second tenure overlap the
 * first when the promoted server comes back (it may lack the last writes of the old one).
 */
function withFailsafe(s: Scenario): Scenario {
  return { ...s, name: `${s.name}-failsafe`, summary: `${s.summary}; failsafe mode on`, settings: { ...s.settings, ...FAILSAFE } };
}

/** The scenarios of `--store-ha`: each store's failover with failsafe mode off, then on. */
export const STORE_HA_SCENARIOS: Scenario[] = [...STORE_FAILOVERS, ...STORE_FAILOVERS.map(withFailsafe)];
