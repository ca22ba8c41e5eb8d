import { EventEmitter } from "node:events";
import type { LeaseHolder } from "../core/lease-holder.js";
import { ClusterView } from "../core/master/cluster-view.js";
import { runElection } from "../core/master/election.js";
import { FailsafePromises } from "../core/master/failsafe-promises.js";
import { HeartbeatMonitor } from "../core/master/heartbeat-monitor.js";
import { Membership } from "../core/master/membership.js";
import { abortOn, ShardManager, type PromotionEvent } from "../core/master/shard-manager.js";
import type { TransportServer } from "../core/ports/transport.js";
import { ClusterDocumentFollower } from "../core/cluster-document-follower.js";
import { ControlPlane } from "../core/master/control-plane.js";
import { settingsOf } from "../core/timing.js";
import {
  every,
  prepareSchema,
  startFollowing,
  startSignal,
  type MulticonnectNode,
  type NodeDeps,
  type NodeIdentity,
  type StartOptions,
} from "./deps.js";
import { NodeMetrics, type Readiness } from "./metrics.js";

/**
 * Events a master emits: `"role"` when this master becomes the primary master or stops being it,
 * and (on the primary) `"promotion"` when it names a shard's new primary coreapp, with the
 * previous owner, the new epoch and the cause (`reason`).
 */
export interface MasterEvents {
  /** This master became primary or secondary. */
  role: [role: "primary_master" | "secondary_master"];
  /** As primary, this master named a new owner for a shard. */
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
  private readonly follower: ClusterDocumentFollower;
  private readonly control: ControlPlane;
  private readonly membership: Membership;
  private readonly failsafe: FailsafePromises;
  private tenure: LeaseHolder | null = null;
  private server: TransportServer | null = null;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly deps: NodeDeps,
    private readonly identity: NodeIdentity,
    private readonly shards: number,
    /** How long a silent node's record is kept (see docs/operations.md); 0 disables pruning. */
    private readonly nodeRetentionMs: number = 0,
  ) {
    super();
    this.id = identity.id;
    this.name = identity.name;
    const { store, transport, clock, timing } = deps;
    const log = deps.log.child({ node: identity.name });
    this.deps = { ...deps, log };
    this.metrics = deps.metrics ?? NodeMetrics.detached(identity.name);
    this.view = new ClusterView(store.liveness, clock, timing.evaluateTickMs);
    this.monitor = new HeartbeatMonitor(identity.id, transport, clock, timing, log);
    this.membership = new Membership(store.liveness, store.shardMap, log, timing.dbUnhealthyIntervalMs, (node, cause) => {
      const lease = this.tenure?.held ? this.tenure.lease : null;
      if (!lease) return;
      this.control.record(lease, {
        type: "node_removed",
        shard: null,
        cause: cause.kind === "retention" ? `silent for longer than node_retention (${cause.retentionMs} ms)` : "forgotten by an operator",
        evidence: { node: node.id, name: node.name, role: node.role, silentMs: Math.round(node.ageMs) },
        epochs: { master: lease.epoch },
      });
    });
    this.follower = new ClusterDocumentFollower(store.clusterDocument, timing, store.capabilities, clock, log);
    // The file's settings, copied before the cluster document may change the live timing.
    const seed = { settings: settingsOf(timing), shardCount: shards };
    this.control = new ControlPlane(identity.id, store.clusterDocument, store.history, this.follower, seed, clock, log, (node) =>
      this.manager.clearHold(node),
    );
    const control = { pauseOf: (shard: number) => this.follower.pauseOf(shard), record: this.control.record.bind(this.control) };
    const promoted = (e: PromotionEvent) => {
      this.metrics.promotionWritten(e);
      this.emit("promotion", e);
    };
    this.failsafe = new FailsafePromises(identity.id, clock, timing, (shard) =>
      this.role === "primary_master" ? this.manager.epochOf(shard) : null,
    );
    this.manager = new ShardManager(
      identity.id,
      shards,
      store.shardMap,
      this.view,
      this.monitor,
      clock,
      timing,
      log,
      promoted,
      control,
      this.failsafe,
    );
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

  /** The cluster document as this master last read it (settings, pauses, shard count), or null. */
  get clusterDocument(): ClusterDocumentFollower {
    return this.follower;
  }

  /** The coreapps held out of automatic promotion (meaningful on the primary master). */
  heldOut(): string[] {
    return this.manager.heldOut();
  }

  /** `primary_master` while this master holds the master lease, else `secondary_master`. */
  get role(): "primary_master" | "secondary_master" {
    return this.tenure?.held ? "primary_master" : "secondary_master";
  }

  /**
   * Joins the cluster. Retries while the store is unreachable until `options.signal` aborts; then
   * it rejects with the signal's reason, and `stop()` releases what was opened.
   */
  async start(options: StartOptions = {}): Promise<void> {
    const { store, transport, clock, timing, log } = this.deps;
    const signal = startSignal(this.stop$.signal, options.signal);
    await prepareSchema(store, clock, signal, log, "master");
    await startFollowing(this.follower, this.shards);
    this.server = await transport.listen(this.id, this.identity.listenHost, this.identity.port, {
      switchover: (_from, command) => this.manager.switchover(this.tenure, command),
      admin: (_from, command) => this.control.handle(this.tenure, command),
      failsafe: (from, request) => {
        const reply = this.failsafe.answer(request);
        if (reply.ok)
          log.warn({ coreapp: from, shard: request.shard, epoch: request.epoch }, "failsafe: promised not to reassign the shard");
        return reply;
      },
    });
    const address = `${this.identity.externalHostname}:${this.identity.advertisePort ?? this.server.port}`;
    this.monitor.start();
    this.loops.push(
      every(
        clock,
        () => timing.masterBeatIntervalMs,
        this.stop$.signal,
        log,
        "master liveness beat",
        async () => {
          // Whether this master reaches the store decides whether it may give failsafe promises.
          await this.noted(
            store.liveness.beat({
              id: this.id,
              name: this.name,
              role: "master",
              address,
              meta: {
                view: this.monitor.view(),
                primary: this.role === "primary_master",
                heldOut: this.role === "primary_master" ? this.manager.heldOut() : [],
              },
            }),
          );
          await this.noted(this.view.refresh());
          this.monitor.updatePeers(this.view.all());
          if (this.tenure?.held) this.control.notePauseExpiries(this.tenure.lease);
        },
      ),
      runElection(store.leases, clock, this.id, timing, log, this.stop$.signal, (holder) => this.lead(holder)),
    );
    this.started = true;
  }

  /** Awaits a store operation, telling failsafe whether it succeeded. */
  private async noted<T>(operation: Promise<T>): Promise<T> {
    try {
      const value = await operation;
      this.failsafe.noteStore(true);
      return value;
    } catch (error) {
      this.failsafe.noteStore(false);
      throw error;
    }
  }

  private async lead(holder: LeaseHolder): Promise<void> {
    this.tenure = holder;
    this.emit("role", "primary_master");
    try {
      // Only the primary master upgrades an older schema (see prepareSchema; idempotent), then
      // loads the map and manages shards.
      await this.deps.store.migrate().catch((e: unknown) => this.deps.log.warn({ err: String(e) }, "migration failed"));
      this.control.record(holder.lease, {
        type: "master_elected",
        shard: null,
        cause: "acquired the master lease",
        evidence: { name: this.name },
        epochs: { master: holder.lease.epoch },
      });
      await this.control
        .ensureDocument(holder.lease)
        .catch((e: unknown) => this.deps.log.warn({ err: String(e) }, "cannot write the cluster document yet"));
      await this.view.refresh().catch(() => {});
      this.monitor.updatePeers(this.view.all());
      const tenure = AbortSignal.any([this.stop$.signal, abortOn(holder.lost)]);
      const pruning =
        this.nodeRetentionMs > 0
          ? every(
              this.deps.clock,
              () => this.deps.timing.dbHeartbeatIntervalMs,
              tenure,
              this.deps.log,
              "pruning silent nodes",
              async () => {
                await this.membership.prune(this.nodeRetentionMs);
              },
            )
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
    this.metrics.detach();
    await this.tenure?.release();
    await Promise.allSettled(this.loops);
    await this.follower.close();
    await this.monitor.close();
    await this.server?.close();
    await this.deps.store.liveness.remove(this.id).catch(() => {});
  }

  /** `await using node = ...` stops it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
