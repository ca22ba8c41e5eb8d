import { EventEmitter } from "node:events";
import type { LeaseHolder } from "../core/lease-holder.js";
import { ClusterView } from "../core/master/cluster-view.js";
import { runElection } from "../core/master/election.js";
import { HeartbeatMonitor } from "../core/master/heartbeat-monitor.js";
import { ShardManager, type PromotionEvent } from "../core/master/shard-manager.js";
import type { TransportServer } from "../core/ports/transport.js";
import { every, withRetry, type MulticonnectNode, type NodeDeps, type NodeIdentity } from "./deps.js";
import { NodeMetrics, type Readiness } from "./metrics.js";

/** Events a master emits: `"role"` (primary_master | secondary_master) and `"promotion"`. */
export interface MasterEvents {
  role: [role: "primary_master" | "secondary_master"];
  promotion: [event: PromotionEvent];
}

/**
 * A master node. Every master heartbeats every coreapp and publishes what it sees; all compete for
 * the master lease, and the holder (the primary master) keeps every shard served (ShardManager)
 * and answers operator commands. Listens for authenticated switchover commands on its port.
 */
export class Master extends EventEmitter<MasterEvents> implements MulticonnectNode {
  readonly id: string;
  readonly name: string;
  /** This node's metrics (`metrics.registry` holds them). */
  readonly metrics: NodeMetrics;
  private started = false;
  private readonly stop$ = new AbortController();
  private readonly view: ClusterView;
  private readonly monitor: HeartbeatMonitor;
  private readonly manager: ShardManager;
  private tenure: LeaseHolder | null = null;
  private server: TransportServer | null = null;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly deps: NodeDeps,
    private readonly identity: NodeIdentity,
    shards: number,
  ) {
    super();
    this.id = identity.id;
    this.name = identity.name;
    const { store, transport, clock, timing } = deps;
    const log = deps.log.child({ node: identity.name });
    this.deps = { ...deps, log };
    this.metrics = deps.metrics ?? NodeMetrics.detached(identity.name);
    this.view = new ClusterView(store.liveness, clock, timing.evaluateTickMs);
    this.monitor = new HeartbeatMonitor(identity.id, transport, clock, timing.heartbeatIntervalMs, timing.heartbeatTimeoutMs, log);
    this.manager = new ShardManager(identity.id, shards, store.shardMap, this.view, this.monitor, clock, timing, log, (e) => {
      this.metrics.promotionWritten(e);
      this.emit("promotion", e);
    });
    this.metrics.attach({
      role: "master",
      readiness: () => this.readiness(),
      primaryMaster: () => this.role === "primary_master",
      // Only the primary master keeps the map current; a secondary's copy would be stale.
      shards: () => (this.role === "primary_master" ? this.manager.snapshot() : []),
    });
  }

  /** Ready once started (schema checked, listening, in the election) and until stop() begins. */
  readiness(): Readiness {
    const checks = { started: this.started, stopping: this.stop$.signal.aborted };
    return { ready: checks.started && !checks.stopping, checks };
  }

  get role(): "primary_master" | "secondary_master" {
    return this.tenure?.held ? "primary_master" : "secondary_master";
  }

  async start(): Promise<void> {
    const { store, transport, clock, timing, log } = this.deps;
    const signal = this.stop$.signal;
    await withRetry(clock, signal, log, "schema migration", () => store.migrate());
    this.server = await transport.listen(this.id, this.identity.listenHost, this.identity.port, {
      switchover: (_from, command) => this.manager.switchover(this.tenure, command),
    });
    const address = `${this.identity.externalHostname}:${this.identity.advertisePort ?? this.server.port}`;
    this.monitor.start();
    this.loops.push(
      every(clock, timing.masterBeatIntervalMs, signal, log, "master liveness beat", async () => {
        await store.liveness.beat({
          id: this.id,
          name: this.name,
          role: "master",
          address,
          meta: { view: this.monitor.view(), primary: this.role === "primary_master" },
        });
        await this.view.refresh();
        this.monitor.updatePeers(this.view.all());
      }),
      runElection(store.leases, clock, this.id, timing, log, signal, (holder) => this.lead(holder)),
    );
    this.started = true;
  }

  private async lead(holder: LeaseHolder): Promise<void> {
    this.tenure = holder;
    this.emit("role", "primary_master");
    try {
      // The primary master upgrades the schema (idempotent), loads the map, then manages shards.
      await this.deps.store.migrate().catch((e: unknown) => this.deps.log.warn({ err: String(e) }, "migration failed"));
      await this.view.refresh().catch(() => {});
      this.monitor.updatePeers(this.view.all());
      await this.manager.run(holder, this.stop$.signal);
      await holder.lost;
    } finally {
      this.tenure = null;
      this.emit("role", "secondary_master");
    }
  }

  async stop(): Promise<void> {
    if (this.stop$.signal.aborted) return;
    this.stop$.abort();
    this.metrics.detach();
    await this.tenure?.release();
    await Promise.allSettled(this.loops);
    await this.monitor.close();
    await this.server?.close();
    await this.deps.store.liveness.remove(this.id).catch(() => {});
  }
}
