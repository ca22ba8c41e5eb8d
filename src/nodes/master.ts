import { EventEmitter } from "node:events";
import type { LeaseHolder } from "../core/lease-holder.js";
import { ClusterView } from "../core/master/cluster-view.js";
import { runElection } from "../core/master/election.js";
import { FailsafePromises } from "../core/master/failsafe-promises.js";
import { HeartbeatMonitor } from "../core/master/heartbeat-monitor.js";
import { Membership, type PromotionGate, type RemovalCause } from "../core/master/membership.js";
import { abortOn, ShardManager, type PromotionEvent, type UnservedShard } from "../core/master/shard-manager.js";
import { MASTER_LEASE, type Lease } from "../core/ports/leases.js";
import type { NodeStatus } from "../core/ports/liveness.js";
import type { ExitNotice, ExitReply, TransportServer } from "../core/ports/transport.js";
import type { Store } from "../core/ports/store.js";
import { Wakeup } from "../core/wakeup.js";
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
import { HeldLeases, withLeases, type NodeTokens } from "./held-leases.js";
import { NodeMetrics, type Readiness } from "./metrics.js";
import { SDK_VERSION } from "../version.js";

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
  /** What this node holds in the store changed (it took or gave back the master lease); see `tokens()`. */
  tokens: [tokens: NodeTokens];
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
  /** Nodes whose supervisor reported their process exited: node id → how it ended (see `noteExit`). */
  private readonly exits = new Map<string, string>();
  /** The last exit notice of a primary master's process, for the next `master_elected` record. */
  private masterExit: ExitNotice | null = null;
  private readonly electionWakeup = new Wakeup();
  private readonly heldLeases: HeldLeases;

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
    this.heldLeases = new HeldLeases(store.leases, () => this.emit("tokens", this.tokens()));
    this.deps = { ...deps, log, store: withLeases(store, this.heldLeases) };
    this.metrics = deps.metrics ?? NodeMetrics.detached(identity.name);
    this.view = new ClusterView(store.liveness, clock, timing.evaluateTickMs, store.capabilities.ageResolutionMs);
    this.monitor = new HeartbeatMonitor(identity.id, transport, clock, timing, log);
    const promotions: PromotionGate = {
      removeRecord: (node, remove) => this.manager.removeRecord(node, remove),
      removalUnanswered: (node, seq, master) => this.manager.removalUnanswered(node, seq, master),
    };
    const recordRemoval = (node: NodeStatus, cause: RemovalCause, lease: Lease) =>
      this.control.recorded(lease, {
        type: "node_removed",
        shard: null,
        cause: cause.kind === "retention" ? `silent for longer than node_retention (${cause.retentionMs} ms)` : `forgotten by ${cause.by}`,
        evidence: {
          node: node.id,
          name: node.name,
          role: node.role,
          silentMs: Math.round(node.ageMs),
          ...(cause.kind === "forget" ? { force: cause.force } : {}),
        },
        epochs: { master: lease.epoch },
      });
    this.membership = new Membership(store.liveness, store.shardMap, log, timing, recordRemoval, promotions);
    this.follower = new ClusterDocumentFollower(store.clusterDocument, timing, store.capabilities, clock, log);
    // The file's settings, copied before the cluster document may change the live timing.
    const seed = { settings: settingsOf(timing), shardCount: shards };
    this.control = new ControlPlane(identity.id, store.clusterDocument, store.history, this.follower, seed, clock, log, {
      clearHold: (name) => this.manager.clearHold(name),
      forget: (idOrName, force, by, master) => this.membership.forget(idOrName, force, by, master),
    });
    const control = {
      pauseOf: (shard: number) => this.follower.pauseOf(shard),
      record: this.control.record.bind(this.control),
      exitOf: (node: string) => this.exits.get(node) ?? null,
    };
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

  /** Shards that need a primary and have no coreapp this master may promote, with why (meaningful on the primary master). */
  unserved(): UnservedShard[] {
    return this.manager.unserved();
  }

  /**
   * What this node holds in the store now, for whoever watches its process (docs/embedding.md,
   * "Crash failover"); the `"tokens"` event fires on every change.
   */
  tokens(): NodeTokens {
    return { node: this.id, name: this.name, role: "master", leases: this.heldLeases.list() };
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
      exited: (_from, notice) => this.noteExit(notice),
      failsafe: async (from, request) => {
        // "I reach the store" may rest on a beat from before the outage began: check now, briefly,
        // so that a master which has not yet noticed the outage does not end failsafe with a
        // refusal (safety does not rest on this: a master never reassigns within its own promise).
        if (this.failsafe.reachesStore())
          await this.noted(probeStore(this.deps.store, this.deps.timing.failsafePromiseMs / 6)).catch(() => {});
        const reply = this.failsafe.answer(request);
        if (reply.ok)
          log.warn({ coreapp: from, shard: request.shard, epoch: request.epoch }, "failsafe: promised not to reassign the shard");
        return reply;
      },
    });
    const address = `${this.identity.externalHostname}:${this.identity.advertisePort ?? this.server.port}`;
    let beats = 0;
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
              // Ordered, so that a late beat does not bring back an older view (see the coreapp's).
              seq: ++beats,
              meta: {
                view: this.monitor.view(),
                primary: this.role === "primary_master",
                heldOut: this.role === "primary_master" ? this.manager.heldOut() : [],
                version: SDK_VERSION,
                // Why shards wait for a primary, per coreapp (status and the health API show it).
                unserved: this.role === "primary_master" ? this.manager.unserved() : [],
              },
            }),
          );
          await this.noted(this.view.refresh());
          this.monitor.updatePeers(this.view.all());
          if (this.tenure?.held) this.control.notePauseExpiries(this.tenure.lease);
        },
      ),
      runElection(store.leases, clock, this.id, timing, log, this.stop$.signal, (holder) => this.lead(holder), this.electionWakeup),
    );
    this.started = true;
  }

  /**
   * A supervisor's word that a node's process exited and that its leases were given back (crash
   * failover, docs/safety.md). Every master remembers it, primary or not: a secondary may become
   * primary a moment later (its own primary died too). The primary master evaluates at once, and
   * the verdict replaces a dead owner at once (health.ts); a master that is not primary tries the
   * master lease at once. Acting on a false notice is safe: the next owner still needs the shard's
   * lease, which a live owner keeps until it lets go or it lapses (S4).
   */
  private noteExit(notice: ExitNotice): ExitReply {
    this.deps.log.warn(
      { exited: notice.node, role: notice.role, cause: notice.cause, released: notice.released },
      "a node's process exited",
    );
    this.exits.delete(notice.node);
    this.exits.set(notice.node, notice.cause);
    // Node ids are per process and never come back: the oldest entries can only name long-gone nodes.
    for (const id of this.exits.keys()) {
      if (this.exits.size <= 1024) break;
      this.exits.delete(id);
    }
    if (notice.released.includes(MASTER_LEASE)) {
      this.masterExit = notice;
      this.electionWakeup.wake();
    }
    this.manager.wake();
    return { ok: true };
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
      const previous = this.masterExit;
      this.masterExit = null;
      this.control.record(holder.lease, {
        type: "master_elected",
        shard: null,
        cause: previous ? `acquired the master lease given back when ${previous.node}'s process exited` : "acquired the master lease",
        evidence: previous ? { name: this.name, previous: previous.node, exit: previous.cause } : { name: this.name },
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
                if ((await this.membership.prune(this.nodeRetentionMs, holder.lease)) === "fenced") {
                  holder.abandon("fenced by the store (pruning): the master lease is no longer ours");
                }
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

/** One cheap store read that fails after `ms` (a blackholed connection would otherwise hang it). */
async function probeStore(store: Store, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("store probe timed out")), ms)));
  try {
    await Promise.race([store.leases.current(MASTER_LEASE), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
