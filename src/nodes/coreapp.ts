import { EventEmitter } from "node:events";
import type { AppResponse, CoreappApplication } from "../core/coreapp/application.js";
import { FailsafeGuard } from "../core/coreapp/failsafe-guard.js";
import { ShardOwner, type OwnerEvent, type OwnerState, type ShardOwnerTiming } from "../core/coreapp/shard-owner.js";
import type { Timing } from "../core/timing.js";
import { DEFAULT_PLACEMENT, type Placement } from "../core/master/placement.js";
import type { ShardMapWatch } from "../core/ports/shard-map.js";
import type { ForwardRequest, ForwardResponse, ForwardResult, TransportServer } from "../core/ports/transport.js";
import { APP_ERROR_CODE } from "../core/api-errors.js";
import { ClusterDocumentFollower } from "../core/cluster-document-follower.js";
import {
  every,
  prepareSchema,
  startFollowing,
  startSignal,
  withRetry,
  type MulticonnectNode,
  type NodeDeps,
  type NodeIdentity,
  type StartOptions,
} from "./deps.js";
import { HeldLeases, withLeases, type NodeTokens } from "./held-leases.js";
import { NodeMetrics, type Readiness } from "./metrics.js";
import { SDK_VERSION } from "../version.js";

/** Response header with the name of the coreapp that served the request. */
export const SERVED_BY_HEADER = "x-multiconnect-node";
/** Response header with the epoch of the shard's primary that served the request. */
export const EPOCH_HEADER = "x-multiconnect-epoch";

/** How long a forwarded request may wait for this coreapp's promotion to its shard and epoch. */
const HOLD_WHILE_PROMOTING_MS = 2000;

/**
 * Events a coreapp emits: `"owner"` when the map names it a shard's owner, when it takes the
 * shard's lease, when it is promoted to the shard's primary at an epoch, and when it is demoted from
 * it, with the reason (lease lost, renamed by the master, stopping).
 */
export interface CoreappEvents {
  /** This coreapp was named a shard's owner, took its lease, was promoted for it, or demoted. */
  owner: [event: OwnerEvent];
  /** What this node holds in the store changed (it took or gave back a shard's lease); see `tokens()`. */
  tokens: [tokens: NodeTokens];
}

/**
 * A coreapp node: a standby until the primary master names it a shard's owner; then it takes the
 * shard's ownership lease, runs the application's `onPromote`, and answers forwarded requests
 * stamped with its epoch. It needs only the store to keep serving, so it goes on when every
 * master is down.
 */
export class Coreapp extends EventEmitter<CoreappEvents> implements MulticonnectNode {
  readonly id: string;
  readonly name: string;
  /** This node's metrics (`metrics.registry` holds them). */
  readonly metrics: NodeMetrics;
  private readonly owner: ShardOwner;
  private readonly follower: ClusterDocumentFollower;
  private readonly stop$ = new AbortController();
  private server: TransportServer | null = null;
  private watch: ShardMapWatch | null = null;
  private loop: Promise<void> | null = null;
  private address = "";
  private readonly heldLeases: HeldLeases;
  private readonly failsafe: FailsafeGuard;
  /** Liveness beats run one at a time: failsafe's master set is confirmed by the beat that carried it. */
  private beating: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: NodeDeps,
    private readonly identity: NodeIdentity,
    private readonly app: CoreappApplication,
    drainTimeoutMs: number,
    private readonly placement: Placement = DEFAULT_PLACEMENT,
  ) {
    super();
    this.id = identity.id;
    this.name = identity.name;
    const log = deps.log.child({ node: identity.name });
    this.heldLeases = new HeldLeases(deps.store.leases, () => this.emit("tokens", this.tokens()));
    this.deps = { ...deps, log, store: withLeases(deps.store, this.heldLeases) };
    // A view of the node's live timing (read through, never copied: settings change at run time) plus the drain timeout.
    const ownerTiming: ShardOwnerTiming = Object.assign(Object.create(deps.timing) as Timing, { drainTimeoutMs });
    this.follower = new ClusterDocumentFollower(deps.store.clusterDocument, deps.timing, deps.store.capabilities, deps.clock, log);
    const metrics = (this.metrics = deps.metrics ?? NodeMetrics.detached(identity.name));
    this.failsafe = new FailsafeGuard(deps.transport, deps.clock, deps.timing, log);
    this.owner = new ShardOwner(
      identity.id,
      this.heldLeases,
      app,
      deps.clock,
      ownerTiming,
      log,
      (e) => {
        // Nothing another node reads has changed yet: the map named it, or it took the lease.
        if (e.type === "named" || e.type === "acquired") return void this.emit("owner", e);
        metrics.ownerChanged(e);
        this.emit("owner", e);
        void this.beat().catch(() => {}); // make the change visible in the store at once
      },
      this.failsafe,
    );
    metrics.attach({
      role: "coreapp",
      readiness: () => this.readiness(),
      shards: () => {
        const s = this.owner.state();
        return s.serving && s.shard !== null ? [{ shard: s.shard, owner: this.id, epoch: s.epoch ?? 0 }] : [];
      },
    });
  }

  /**
   * Ready once started (registered, watching the shard map) and until stop() begins. A standby is
   * ready: being available for promotion is its job.
   */
  readiness(): Readiness {
    const checks = { started: this.loop !== null, shardMapWatch: this.watch !== null, stopping: this.stop$.signal.aborted };
    return { ready: checks.started && checks.shardMapWatch && !checks.stopping, checks };
  }

  /** The cluster document as this node last read it (its live settings), or null. */
  get clusterDocument(): ClusterDocumentFollower {
    return this.follower;
  }

  /**
   * What this node holds in the store now, for whoever watches its process (docs/embedding.md,
   * "Crash failover"); the `"tokens"` event fires on every change.
   */
  tokens(): NodeTokens {
    return { node: this.id, name: this.name, role: "coreapp", leases: this.heldLeases.list() };
  }

  /** The shard this coreapp owns or is taking, if any, and its epoch. */
  state(): OwnerState {
    return this.owner.state();
  }

  /** See `ShardOwner.tenureRemainingMs`: what the watchdog enforces (src/watchdog). */
  tenureRemainingMs(): number | null {
    return this.owner.tenureRemainingMs();
  }

  /** See `ShardOwner.tenureLapseMs`: how long the watchdog may wait past `tenureRemainingMs` (src/watchdog). */
  tenureLapseMs(): number | null {
    return this.owner.tenureLapseMs();
  }

  /** See `ShardOwner.atRisk`: whether the watchdog must keep this process to its pet deadline. */
  atRisk(): boolean {
    return this.owner.atRisk();
  }

  /**
   * Joins the cluster. Retries while the store is unreachable until `options.signal` aborts; then
   * it rejects with the signal's reason, and `stop()` releases what was opened.
   */
  async start(options: StartOptions = {}): Promise<void> {
    const { store, transport, clock, timing, log } = this.deps;
    const signal = startSignal(this.stop$.signal, options.signal);
    await prepareSchema(store, clock, signal, log, "coreapp");
    await startFollowing(this.follower, null);
    this.server = await transport.listen(this.id, this.identity.listenHost, this.identity.port, {
      heartbeat: (_from, message) => {
        if (message.mapChanged) {
          this.watch?.lookNow();
          this.owner.lookAgain();
        }
        const s = this.owner.state();
        // A primary serving in failsafe answers as serving: it is, on every master's promise.
        return { id: this.id, shard: s.serving ? s.shard : null, epoch: s.serving ? s.epoch : null, ended: s.ended };
      },
      forward: (_from, request, started) => this.forward(request, started),
    });
    this.address = `${this.identity.externalHostname}:${this.identity.advertisePort ?? this.server.port}`;
    await withRetry(clock, signal, log, "registration", () => this.beat());
    this.watch = await withRetry(clock, signal, log, "shard-map watch", () =>
      store.shardMap.watch(
        (changed) => {
          // When this node learned that it was named: separates the shard map's notification delay
          // from the wait for the previous owner's lease in a failover (operators and bench/ read it).
          for (const a of changed) if (a.owner === this.id) log.info({ shard: a.shard, epoch: a.epoch }, "named primary by the shard map");
          this.owner.onMapChange(changed);
        },
        (error) => log.warn({ err: String(error) }, "shard-map watch interrupted; resyncing"),
      ),
    );
    this.owner.start();
    this.loop = every(
      clock,
      () => timing.dbHeartbeatIntervalMs,
      this.stop$.signal,
      log,
      "coreapp liveness beat",
      () => this.beat(),
    );
  }

  /**
   * The `seq` of the last liveness beat sent. The store keeps the record of the highest, so one that
   * timed out and lands after a later one does not bring back what it said: an older failsafe set or
   * `failsafe_max`, which the failsafe guard no longer counts on once a later beat was accepted.
   */
  private beats = 0;

  private beat(): Promise<void> {
    const next = this.beating.catch(() => {}).then(() => this.beatOnce());
    this.beating = next;
    return next;
  }

  /**
   * One liveness beat. With failsafe on it first reads the registry for the masters to ask and
   * publishes them (`meta.failsafe`): a master missing from that list knows the coreapp will not
   * ask it, and waits `failsafe_max` past this record before replacing it (docs/safety.md).
   */
  private async beatOnce(): Promise<void> {
    if (this.stop$.signal.aborted) return;
    const { store, clock } = this.deps;
    const registry = this.failsafe.enabled ? await store.liveness.list().catch(() => null) : null;
    const failsafe = this.failsafe.beforeBeat(registry);
    const s = this.owner.state();
    const sentAt = clock.now();
    await store.liveness.beat({
      id: this.id,
      name: this.name,
      role: "coreapp",
      address: this.address,
      seq: ++this.beats,
      meta: {
        shard: s.shard,
        epoch: s.epoch,
        serving: s.serving,
        ...(s.failsafe ? { serving_failsafe: true } : {}),
        ...(s.failsafeServedMs ? { failsafe_served_ms: s.failsafeServedMs } : {}),
        ...(failsafe ? { failsafe } : {}),
        ...this.placement,
        version: SDK_VERSION,
      },
    });
    this.failsafe.afterBeat(sentAt, failsafe);
  }

  /**
   * Serves a forwarded request if this coreapp is the primary of its shard at its epoch, else
   * answers `not-serving` (nothing ran). `started()` sends the acknowledgement and resolves once it
   * is in the kernel's hands; the application's handler runs only after it, so a webapp that lost
   * the connection without an acknowledgement knows the request did not run and sends it elsewhere.
   */
  private async forward(request: ForwardRequest, started: () => Promise<void>): Promise<ForwardResult> {
    // Newly named owner still taking over (waiting for the previous owner's lease): hold the
    // request briefly rather than bounce it, so the client sees latency instead of a retry.
    if (!this.owner.serves(request.shard, request.epoch)) {
      await this.owner.whenServing(request.shard, request.epoch, HOLD_WHILE_PROMOTING_MS);
    }
    const answer = await this.owner.run(request.shard, request.epoch, async () => {
      await started();
      // The acknowledgement took a turn of the event loop: the tenure may have ended meanwhile.
      // Still nothing ran, and an acknowledged request answered not-serving is retried as such.
      if (!this.owner.serves(request.shard, request.epoch)) return null;
      return this.handle(request);
    });
    if (answer === null) return { outcome: "not-serving", shard: request.shard, epoch: request.epoch, node: this.name };
    return answer;
  }

  /**
   * Runs the application's `handle()`. An exception is the application's failure, not the
   * cluster's: it is logged with its stack and answered 500 with its own code as a `failed`
   * outcome, so the webapp counts it and never sends it again. The body names no exception text:
   * that may carry data the client must not see.
   */
  private async handle(request: ForwardRequest): Promise<{ outcome: "served" | "failed"; response: ForwardResponse }> {
    try {
      return { outcome: "served", response: toForwardResponse(await this.app.handle({ ...request }), this.name, request.epoch) };
    } catch (error) {
      this.metrics.appError(request.shard);
      this.deps.log.error({ err: error, shard: request.shard, epoch: request.epoch, method: request.method }, "application handle() threw");
      const details = `the application on ${this.name} failed to handle the request; its log has the error`;
      const body = JSON.stringify({ errors: [{ code: APP_ERROR_CODE, title: "Application Error", details }] });
      const headers = withServedBy({ "content-type": "application/json" }, this.name, request.epoch);
      return { outcome: "failed", response: { status: 500, headers, body: Buffer.from(body) } };
    }
  }

  async stop(): Promise<void> {
    if (this.stop$.signal.aborted) return;
    this.stop$.abort();
    this.metrics.detach();
    await this.loop;
    // A beat still on its way (an owner event sends one) would write the record back after it left.
    await this.beating.catch(() => {});
    // Leave the registry first: the primary master then promotes a successor at once, which takes
    // the shard as soon as this node has drained, called onDemote and released the lease.
    await this.deps.store.liveness.remove(this.id).catch(() => {});
    await this.owner.close();
    await this.follower.close();
    await this.watch?.close();
    await this.server?.close();
  }

  /** `await using node = ...` stops it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

function toForwardResponse(r: AppResponse, node: string, epoch: number): ForwardResponse {
  if (!Number.isInteger(r?.status) || r.status < 100 || r.status > 599)
    throw new TypeError(`handle() returned status ${String(r?.status)}, not an HTTP status`);
  const body = r.body === undefined ? new Uint8Array() : typeof r.body === "string" ? Buffer.from(r.body) : r.body;
  // The application's headers pass as they are, with who served it; the SDK's outcomes travel beside them, typed.
  return { status: r.status, headers: withServedBy(r.headers, node, epoch), body };
}

/**
 * A copy of `headers` with the two that say who served a request, and at which epoch. Copied by
 * a loop: V8 builds an object spread together with these hyphenated names twenty times slower
 * (about 0.9 µs against 0.04 µs a response, measured on Node 20).
 */
function withServedBy(headers: Readonly<Record<string, string>> | undefined, node: string, epoch: number): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers !== undefined) {
    for (const name of Object.keys(headers)) {
      // An own "__proto__" (JSON.parse makes one) would set the copy's prototype, not a header.
      if (name === "__proto__") throw new TypeError("handle() returned a header named __proto__");
      out[name] = headers[name]!;
    }
  }
  out[SERVED_BY_HEADER] = node;
  out[EPOCH_HEADER] = String(epoch);
  return out;
}
