import { MASTER_LEASE } from "../core/ports/leases.js";
import type { NodeStatus } from "../core/ports/liveness.js";
import type { Store } from "../core/ports/store.js";
import { toKeys } from "../core/master/control-plane.js";
import { deriveTiming, failoverBoundMs, type Timing } from "../core/timing.js";

/** One node as the health API and `multiconnect status` show it. */
export interface NodeHealth {
  /** The node's id (`name.<random>`). */
  readonly id: string;
  /** The node's name. */
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
  /** Coreapps: the shard it owns or is taking. */
  readonly shard?: number;
  /** Coreapps: the epoch of that ownership. */
  readonly epoch?: number;
  /**
   * Coreapps in failsafe mode: `serving` when its last liveness record says it serves its shard on
   * the masters' promises, without the store (docs/safety.md, "Failsafe"). Absent otherwise.
   */
  readonly failsafe?: "serving";
  /** Coreapps: how long its current tenure has served in failsafe, as of its last record (ms). */
  readonly failsafe_served_ms?: number;
  /** `host:port` other nodes reach it at. */
  readonly address: string;
  /** Milliseconds since the node's last liveness record, by the store's clock. */
  readonly last_seen_ms: number;
  /** False when the record is older than `db_unhealthy_interval`. */
  readonly healthy: boolean;
}

/** A pause of automatic failover, as status shows it. */
export interface PauseStatus {
  /** The paused shard, or null for the whole cluster. */
  readonly shard: number | null;
  /** Who paused. */
  readonly by: string;
  /** Why. */
  readonly reason: string;
  /** When it began, ISO 8601 (the store's clock; see StoreCapabilities.writerWallClock). */
  readonly paused_at: string;
  /** Milliseconds until it ends by itself, by the store's clock. */
  readonly ends_in_ms: number;
}

/** One shard waiting for a primary, as status shows it (see `ClusterStatus.unserved`). */
export interface UnservedStatus {
  /** The shard. */
  readonly shard: number;
  /** Why it needs a primary. */
  readonly reason: string;
  /** How long the primary master has found no coreapp to promote for it, in milliseconds. */
  readonly waiting_ms: number;
  /** Every registered coreapp with why it was not promoted (empty: none is registered). */
  readonly passed_over: {
    /** The coreapp's name. */
    readonly name: string;
    /** Why it was not promoted. */
    readonly reason: string;
  }[];
}

/** Reads the primary master's published `unserved` list, dropping anything malformed. */
function unservedOf(meta: unknown): UnservedStatus[] {
  if (!Array.isArray(meta)) return [];
  return meta.flatMap((u: Record<string, unknown>) => {
    if (typeof u !== "object" || u === null || typeof u["shard"] !== "number" || typeof u["reason"] !== "string") return [];
    const passed = Array.isArray(u["passedOver"]) ? (u["passedOver"] as Record<string, unknown>[]) : [];
    return [
      {
        shard: u["shard"],
        reason: u["reason"],
        waiting_ms: typeof u["waitingMs"] === "number" ? u["waitingMs"] : 0,
        passed_over: passed.flatMap((p) =>
          typeof p?.["name"] === "string" && typeof p["reason"] === "string" ? [{ name: p["name"], reason: p["reason"] }] : [],
        ),
      },
    ];
  });
}

/** The cluster as the store records it, as `GET /v1/health` and `multiconnect status` show it. */
export interface ClusterStatus {
  /** The holder of the master lease and its epoch; null while no master holds it. */
  readonly primary_master: {
    /** The primary master's node id. */
    id: string;
    /** Its master-lease epoch. */
    epoch: number;
  } | null;
  /** Every node with a liveness record. */
  readonly nodes: NodeHealth[];
  /** Every shard with its owner's id and name (null when none) and the epoch of that ownership. */
  readonly shards: {
    /** The shard number. */
    shard: number;
    /** The owner's node id, or null. */
    owner: string | null;
    /** The owner's name, or null. */
    owner_name: string | null;
    /** The epoch of that ownership. */
    epoch: number;
  }[];
  /** The live settings (config file keys) and the cluster document's version (0: none written yet). */
  readonly settings: {
    /** The cluster document's version; 0 while none was written (the config file's values). */
    readonly version: number;
  } & Readonly<Record<string, number>>;
  /** The pauses of automatic failover in force. */
  readonly pauses: PauseStatus[];
  /** Coreapps the primary master holds out of automatic promotion after repeated failures. */
  readonly held_out: string[];
  /**
   * Shards that need a primary while the primary master has no coreapp it may promote, with why it
   * passed over each registered coreapp ("no heartbeat answer yet", "silent 2100 ms", "nofailover",
   * …), as the primary master last published it (every master beat). Empty when every shard is served.
   */
  readonly unserved: UnservedStatus[];
  /** L1's bound for the live settings, as computed in core/timing.ts. */
  readonly failover_bound_ms: number;
}

/**
 * Reads the cluster's state from the store: four reads, no node is contacted. The bound is computed
 * from the cluster document's settings when there is one (they are the cluster's truth), else from
 * `timing`.
 */
export async function readClusterStatus(store: Store, timing: Timing, shards: number): Promise<ClusterStatus> {
  const [nodes, map, master, doc] = await Promise.all([
    store.liveness.list(),
    store.shardMap.read(),
    store.leases.current(MASTER_LEASE),
    store.clusterDocument.read(),
  ]);
  const live = doc ? deriveTiming(doc.document.settings, store.capabilities) : timing;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const entries = Array.from({ length: shards }, (_, shard) => map.find((a) => a.shard === shard) ?? { shard, owner: null, epoch: 0 });
  const fresh = (n: NodeStatus) => n.ageMs <= live.dbUnhealthyIntervalMs;
  const liveMasters = nodes.filter((n) => n.role === "master" && fresh(n)).length;
  const heldOut = master ? byId.get(master.holder)?.meta["heldOut"] : undefined;
  const unserved = master ? unservedOf(byId.get(master.holder)?.meta["unserved"]) : [];
  return {
    primary_master: master ? { id: master.holder, epoch: master.epoch } : null,
    nodes: nodes.map((n) => describe(n, master?.holder ?? null, entries, fresh(n))),
    shards: entries.map((a) => ({ ...a, owner_name: a.owner ? (byId.get(a.owner)?.name ?? null) : null })),
    settings: { version: doc?.version ?? 0, ...toKeys(live) },
    pauses: (doc?.document.pauses ?? []).map((p) => ({
      shard: p.shard,
      by: p.by,
      reason: p.reason,
      paused_at: new Date(p.pausedAtMs).toISOString(),
      ends_in_ms: Math.round(p.expiresInMs),
    })),
    held_out: Array.isArray(heldOut) ? heldOut.filter((x): x is string => typeof x === "string") : [],
    unserved,
    failover_bound_ms: failoverBoundMs(live, Math.max(liveMasters, 1), store.capabilities),
  };
}

function describe(
  n: NodeStatus,
  primary: string | null,
  map: { shard: number; owner: string | null; epoch: number }[],
  healthy: boolean,
): NodeHealth {
  const base = {
    id: n.id,
    name: n.name,
    address: n.address,
    last_seen_ms: Math.round(n.ageMs),
    healthy,
    state: healthy ? ("up" as const) : ("down" as const),
  };
  if (n.role === "master") return { ...base, role: n.id === primary ? "primary_master" : healthy ? "secondary_master" : "master" };
  if (n.role === "webapp") return { ...base, role: "webapp" };
  const owned = map.find((a) => a.owner === n.id);
  const serving = !!owned && n.meta["serving"] === true && n.meta["epoch"] === owned.epoch && healthy;
  return {
    ...base,
    role: "coreapp",
    gateway_status: serving ? "connected" : "disconnected",
    ...(owned ? { shard: owned.shard, epoch: owned.epoch } : {}),
    ...(owned && n.meta["serving_failsafe"] === true ? { failsafe: "serving" as const } : {}),
    ...(owned && typeof n.meta["failsafe_served_ms"] === "number" ? { failsafe_served_ms: n.meta["failsafe_served_ms"] } : {}),
  };
}
