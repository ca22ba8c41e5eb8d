import { EventEmitter } from "node:events";
import type { LeaseHolder } from "../core/lease-holder.js";
import { ClusterView } from "../core/master/cluster-view.js";
import { runElection } from "../core/master/election.js";
import { HeartbeatMonitor } from "../core/master/heartbeat-monitor.js";
import { Membership } from "../core/master/membership.js";
import { abortOn, ShardManager, type PromotionEvent } from "../core/master/shard-manager.js";
import type { TransportServer } from "../core/ports/transport.js";
import { every, prepareSchema, type MulticonnectNode, type NodeDeps, type NodeIdentity } from "./deps.js";

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
  private readonly stop$ = new AbortController();
  private readonly view: ClusterView;
  private readonly monitor: HeartbeatMonitor;
  private readonly manager: ShardManager;
  private readonly membership: Membership;
  private tenure: LeaseHolder | null = null;
  private server: TransportServer | null = null;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly deps: NodeDeps,
    private readonly identity: NodeIdentity,
    shards: number,
    /** How long a silent node's record is kept (see docs/operations.md); 0 disables pruning. */
    private readonly nodeRetentionMs: number = 0,
  ) {
    super();
    this.id = identity.id;
    this.name = identity.name;
    const { store, transport, clock, timing } = deps;
    const log = deps.log.child({ node: identity.name });
    this.deps = { ...deps, log };
    this.view = new ClusterView(store.liveness, clock, timing.evaluateTickMs);
    this.monitor = new HeartbeatMonitor(identity.id, transport, clock, timing.heartbeatIntervalMs, timing.heartbeatTimeoutMs, log);
    this.membership = new Membership(store.liveness, store.shardMap, log, timing.dbUnhealthyIntervalMs);
    this.manager = new ShardManager(identity.id, shards, store.shardMap, this.view, this.monitor, clock, timing, log, (e) =>
      this.emit("promotion", e),
    );
  }

  get role(): "primary_master" | "secondary_master" {
    return this.tenure?.held ? "primary_master" : "secondary_master";
  }

  async start(): Promise<void> {
    const { store, transport, clock, timing, log } = this.deps;
    const signal = this.stop$.signal;
    await prepareSchema(store, clock, signal, log, "master");
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
  }

  private async lead(holder: LeaseHolder): Promise<void> {
    this.tenure = holder;
    this.emit("role", "primary_master");
    try {
      // Only the primary master upgrades an older schema (see prepareSchema; idempotent), then
      // loads the map and manages shards.
      await this.deps.store.migrate().catch((e: unknown) => this.deps.log.warn({ err: String(e) }, "migration failed"));
      await this.view.refresh().catch(() => {});
      this.monitor.updatePeers(this.view.all());
      const tenure = AbortSignal.any([this.stop$.signal, abortOn(holder.lost)]);
      const pruning =
        this.nodeRetentionMs > 0
          ? every(this.deps.clock, this.deps.timing.dbHeartbeatIntervalMs, tenure, this.deps.log, "pruning silent nodes", async () => {
              await this.membership.prune(this.nodeRetentionMs);
            })
          : Promise.resolve();
      await this.manager.run(holder, this.stop$.signal);
      await holder.lost;
      await pruning;
    } finally {
      this.tenure = null;
      this.emit("role", "secondary_master");
    }
  }

  async stop(): Promise<void> {
    if (this.stop$.signal.aborted) return;
    this.stop$.abort();
    await this.tenure?.release();
    await Promise.allSettled(this.loops);
    await this.monitor.close();
    await this.server?.close();
    await this.deps.store.liveness.remove(this.id).catch(() => {});
  }
}
