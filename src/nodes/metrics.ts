import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { OwnerEvent } from "../core/coreapp/shard-owner.js";
import type { PromotionEvent } from "../core/master/shard-manager.js";
import type { ShardAssignment } from "../core/ports/shard-map.js";

/** How a node exposes its Prometheus metrics (docs/observability.md lists every series). */
export interface MetricsOptions {
  /**
   * A prom-client `Registry` of the host application to register the node's series into, so that
   * the host's own `/metrics` carries them. Default: a registry of the node's own, which also
   * carries prom-client's default process metrics. Several nodes may share one registry: every
   * series has a `node` label. Hazard: the host's registry must not already hold a
   * `multiconnect_*` metric of another shape, or registration throws.
   */
  readonly registry?: Registry;
}

/** What a node reports about its readiness: `ready` is the verdict, `checks` the reasons. */
export interface Readiness {
  /** True when every check passes. */
  readonly ready: boolean;
  /** Each check by name (per role: started, shardMapLoaded, stopping, …). */
  readonly checks: Readonly<Record<string, boolean>>;
}

/** What a node knows of the shard map right now, read when metrics are scraped. */
export interface NodeView {
  /** The node's role, a label of its series. */
  readonly role: "master" | "coreapp" | "webapp";
  /** Whether it is ready now (`GET /readyz`). */
  readiness(): Readiness;
  /** Masters only: whether this node holds the master lease. */
  primaryMaster?(): boolean;
  /** The assignments this node knows (a webapp's routes, the primary master's map, a coreapp's own shard). */
  shards(): readonly ShardAssignment[];
}

const STORE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const FORWARD_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The metric objects of one registry. prom-client refuses a second metric of one name in a
 * registry, so nodes sharing a registry share these and tell their series apart by `node`; the
 * gauges that describe state are computed at scrape time from every attached node's view.
 */
class MetricSet {
  readonly views = new Map<string, NodeView>();
  readonly promotions: Counter<"node" | "shard" | "cause">;
  readonly demotions: Counter<"node" | "shard" | "cause">;
  readonly renewalFailures: Counter<"node" | "lease" | "reason">;
  readonly storeSeconds: Histogram<"node" | "operation">;
  readonly storeErrors: Counter<"node" | "operation" | "kind">;
  readonly requests: Counter<"node" | "outcome">;
  readonly forwardSeconds: Histogram<"node" | "outcome">;
  readonly forwardAttempts: Counter<"node">;
  readonly connectionsRefused: Counter<"node">;
  readonly appErrors: Counter<"node" | "shard">;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    const views = this.views;
    new Gauge({
      name: "multiconnect_node_info",
      help: "1 for every node of this process, labelled with its role.",
      labelNames: ["node", "role"],
      registers,
      collect() {
        this.reset();
        for (const [node, v] of views) this.set({ node, role: v.role }, 1);
      },
    });
    new Gauge({
      name: "multiconnect_node_ready",
      help: "1 when the node answers /readyz with 200 (started and able to do its role's job), else 0.",
      labelNames: ["node", "role"],
      registers,
      collect() {
        this.reset();
        for (const [node, v] of views) this.set({ node, role: v.role }, v.readiness().ready ? 1 : 0);
      },
    });
    new Gauge({
      name: "multiconnect_primary_master",
      help: "Masters only: 1 while this master holds the master lease, else 0.",
      labelNames: ["node"],
      registers,
      collect() {
        this.reset();
        for (const [node, v] of views) if (v.primaryMaster) this.set({ node }, v.primaryMaster() ? 1 : 0);
      },
    });
    new Gauge({
      name: "multiconnect_shard_epoch",
      help: "The epoch of each shard's assignment as this node knows it (0: never assigned).",
      labelNames: ["node", "shard"],
      registers,
      collect() {
        this.reset();
        for (const [node, v] of views) for (const a of v.shards()) this.set({ node, shard: String(a.shard) }, a.epoch);
      },
    });
    new Gauge({
      name: "multiconnect_shard_owner",
      help: '1 for the node id this node believes owns each shard (owner="" when the shard has none).',
      labelNames: ["node", "shard", "owner"],
      registers,
      collect() {
        this.reset();
        for (const [node, v] of views) for (const a of v.shards()) this.set({ node, shard: String(a.shard), owner: a.owner ?? "" }, 1);
      },
    });
    this.promotions = new Counter({
      name: "multiconnect_promotions_total",
      help: "Masters: promotions this node wrote as primary master. Coreapps: times this node became a shard's primary.",
      labelNames: ["node", "shard", "cause"],
      registers,
    });
    this.demotions = new Counter({
      name: "multiconnect_demotions_total",
      help: "Coreapps: times this node stopped being a shard's primary (onDemote ran), by cause.",
      labelNames: ["node", "shard", "cause"],
      registers,
    });
    this.renewalFailures = new Counter({
      name: "multiconnect_lease_renewal_failures_total",
      help: "Lease renewals that failed: reason=error (the store call threw) or refused (the lease had expired or changed holder).",
      labelNames: ["node", "lease", "reason"],
      registers,
    });
    this.storeSeconds = new Histogram({
      name: "multiconnect_store_call_seconds",
      help: "Duration of every store call (port.method), successful or not.",
      labelNames: ["node", "operation"],
      buckets: STORE_BUCKETS,
      registers,
    });
    this.storeErrors = new Counter({
      name: "multiconnect_store_call_errors_total",
      help: "Store calls that threw: kind=unavailable (retryable, the store could not be reached in time) or other.",
      labelNames: ["node", "operation", "kind"],
      registers,
    });
    this.requests = new Counter({
      name: "multiconnect_requests_total",
      help: "Webapps: API requests handled, by outcome.",
      labelNames: ["node", "outcome"],
      registers,
    });
    this.forwardSeconds = new Histogram({
      name: "multiconnect_forward_seconds",
      help: "Webapps: time from forwarding a request to having the coreapp's answer (retries included), by outcome.",
      labelNames: ["node", "outcome"],
      buckets: FORWARD_BUCKETS,
      registers,
    });
    this.connectionsRefused = new Counter({
      name: "multiconnect_connections_refused_total",
      help: "Webapps: client connections closed on arrival because webapp.max_connections were already open.",
      labelNames: ["node"],
      registers,
    });
    this.forwardAttempts = new Counter({
      name: "multiconnect_forward_attempts_total",
      help: "Webapps: forwarding attempts, including retries during failovers.",
      labelNames: ["node"],
      registers,
    });
    this.appErrors = new Counter({
      name: "multiconnect_app_errors_total",
      help: "Coreapps: requests whose application handle() threw.",
      labelNames: ["node", "shard"],
      registers,
    });
  }
}

const sets = new WeakMap<Registry, MetricSet>();

function metricSet(registry: Registry): MetricSet {
  let set = sets.get(registry);
  if (!set) sets.set(registry, (set = new MetricSet(registry)));
  return set;
}

/**
 * One node's metrics: the few calls the nodes make (`request`, `forwarded`, `promoted`, …) and the
 * view read at scrape time. Built by the composition root; a node built without one gets a
 * detached instance whose series nobody scrapes, so call sites never test for its presence.
 */
export class NodeMetrics {
  private readonly set: MetricSet;

  constructor(
    /** The node's name: the `node` label of its series. */
    readonly node: string,
    options: MetricsOptions = {},
  ) {
    const registry = options.registry ?? ownRegistry();
    this.set = metricSet(registry);
  }

  /** A metrics object on a registry of its own that nothing exposes (nodes built without compose). */
  static detached(node: string): NodeMetrics {
    return new NodeMetrics(node, { registry: new Registry() });
  }

  /** The registry this node's series live in. */
  get registry(): Registry {
    return this.set.registry;
  }

  /** Makes the node's state part of every scrape; `detach` ends that (on stop). */
  attach(view: NodeView): void {
    this.set.views.set(this.node, view);
  }

  /** Stops reporting the node's state (see `attach`). */
  detach(): void {
    this.set.views.delete(this.node);
  }

  /** A webapp request's outcome: ok, no_primary, in_doubt, app_error, bad_request, too_large, rate_limited, error. */
  request(outcome: string): void {
    this.set.requests.inc({ node: this.node, outcome });
  }

  /** A client connection the webapp closed on arrival (`webapp.max_connections` reached). */
  connectionRefused(): void {
    this.set.connectionsRefused.inc({ node: this.node });
  }

  /** A forwarded request's latency and attempts, by outcome (ok, no_primary, in_doubt, app_error). */
  forwarded(outcome: string, seconds: number, attempts: number): void {
    this.set.forwardSeconds.observe({ node: this.node, outcome }, seconds);
    this.set.forwardAttempts.inc({ node: this.node }, attempts);
  }

  /** A promotion the primary master wrote to the shard map. */
  promotionWritten(e: PromotionEvent): void {
    this.set.promotions.inc({ node: this.node, shard: String(e.shard), cause: promotionCause(e.reason) });
  }

  /** A coreapp's own promotion or demotion. */
  ownerChanged(e: OwnerEvent): void {
    if (e.type === "promoted") this.set.promotions.inc({ node: this.node, shard: String(e.shard), cause: "named_by_shard_map" });
    else if (e.type === "demoted") this.set.demotions.inc({ node: this.node, shard: String(e.shard), cause: demotionCause(e.reason) });
  }

  /** The application's `handle()` threw for a request of `shard`. */
  appError(shard: number): void {
    this.set.appErrors.inc({ node: this.node, shard: String(shard) });
  }

  /** One store call: its duration, and its error when it threw. */
  storeCall(operation: string, seconds: number, error?: unknown): void {
    this.set.storeSeconds.observe({ node: this.node, operation }, seconds);
    if (error !== undefined) {
      const kind = (error as { retryable?: boolean } | null)?.retryable === true ? "unavailable" : "other";
      this.set.storeErrors.inc({ node: this.node, operation, kind });
    }
  }

  /** A lease renewal that threw (`error`) or that the store refused (`refused`). */
  renewalFailed(lease: "master" | "shard", reason: "error" | "refused"): void {
    this.set.renewalFailures.inc({ node: this.node, lease, reason });
  }
}

/** A fresh registry for one node, with prom-client's process metrics (CPU, memory, event loop). */
function ownRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * The bounded `cause` label of a promotion, from the reason the shard manager gives in words
 * (the words carry numbers, which would make every promotion a new series).
 */
export function promotionCause(reason: string): string {
  if (reason.startsWith("switchover")) return "switchover";
  if (reason.startsWith("shard has no owner")) return "no_owner";
  if (reason.startsWith("no liveness record")) return "owner_left";
  if (reason.startsWith("store detector")) return "store_detector";
  if (reason.startsWith("heartbeat detector")) return "heartbeat_detector";
  if (reason.startsWith("not serving")) return "owner_not_serving";
  if (reason.startsWith("the owner gave up")) return "owner_gave_up";
  return "other";
}

/** The bounded `cause` label of a coreapp's demotion, from the reason its shard owner gives. */
export function demotionCause(reason: string): string {
  if (reason === "shutting down") return "shutdown";
  if (reason.startsWith("the shard map no longer names")) return "reassigned";
  if (reason.startsWith("confirmation deadline passed")) return "lease_deadline";
  if (reason.startsWith("renewal refused")) return "lease_refused";
  if (reason === "released") return "released";
  return "other";
}
