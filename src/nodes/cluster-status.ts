import { MASTER_LEASE } from "../core/ports/leases.js";
import type { NodeStatus } from "../core/ports/liveness.js";
import type { Store } from "../core/ports/store.js";
import { failoverBoundMs, type Timing } from "../core/timing.js";

/** One node as the health API and `multiconnect status` show it. */
export interface NodeHealth {
  readonly id: string;
  readonly name: string;
  /** A master whose record is stale is plain `master` (and `down`): it is no one's secondary. */
  readonly role: "primary_master" | "secondary_master" | "master" | "coreapp" | "webapp";
  /**
   * `down` once the record is older than `db_unhealthy_interval`. A down node stays listed until the
   * primary master removes it after `node_retention` (or `multiconnect forget`).
   */
  readonly state: "up" | "down";
  /** Coreapps: `connected` for a shard's serving primary, `disconnected` otherwise. */
  readonly gateway_status?: "connected" | "disconnected";
  readonly shard?: number;
  readonly epoch?: number;
  readonly address: string;
  /** Milliseconds since the node's last liveness record, by the store's clock. */
  readonly last_seen_ms: number;
  /** False when the record is older than `db_unhealthy_interval`. */
  readonly healthy: boolean;
}

export interface ClusterStatus {
  readonly primary_master: { id: string; epoch: number } | null;
  readonly nodes: NodeHealth[];
  readonly shards: { shard: number; owner: string | null; owner_name: string | null; epoch: number }[];
  /** L1's bound for this configuration, as computed in core/timing.ts. */
  readonly failover_bound_ms: number;
}

/** Reads the cluster's state from the store: three reads, no node is contacted. */
export async function readClusterStatus(store: Store, timing: Timing, shards: number): Promise<ClusterStatus> {
  const [nodes, map, master] = await Promise.all([store.liveness.list(), store.shardMap.read(), store.leases.current(MASTER_LEASE)]);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const entries = Array.from({ length: shards }, (_, shard) => map.find((a) => a.shard === shard) ?? { shard, owner: null, epoch: 0 });
  const fresh = (n: NodeStatus) => n.ageMs <= timing.dbUnhealthyIntervalMs;
  const liveMasters = nodes.filter((n) => n.role === "master" && fresh(n)).length;
  return {
    primary_master: master ? { id: master.holder, epoch: master.epoch } : null,
    nodes: nodes.map((n) => describe(n, master?.holder ?? null, entries, fresh(n))),
    shards: entries.map((a) => ({ ...a, owner_name: a.owner ? byId.get(a.owner)?.name ?? null : null })),
    failover_bound_ms: failoverBoundMs(timing, Math.max(liveMasters, 1), store.capabilities),
  };
}

function describe(n: NodeStatus, primary: string | null, map: { shard: number; owner: string | null; epoch: number }[], healthy: boolean): NodeHealth {
  const base = { id: n.id, name: n.name, address: n.address, last_seen_ms: Math.round(n.ageMs), healthy, state: healthy ? ("up" as const) : ("down" as const) };
  if (n.role === "master") return { ...base, role: n.id === primary ? "primary_master" : healthy ? "secondary_master" : "master" };
  if (n.role === "webapp") return { ...base, role: "webapp" };
  const owned = map.find((a) => a.owner === n.id);
  const serving = !!owned && n.meta["serving"] === true && n.meta["epoch"] === owned.epoch && healthy;
  return {
    ...base,
    role: "coreapp",
    gateway_status: serving ? "connected" : "disconnected",
    ...(owned ? { shard: owned.shard, epoch: owned.epoch } : {}),
  };
}
