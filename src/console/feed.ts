import type { IncomingMessage, ServerResponse } from "node:http";
import type { HistoryEvent } from "../core/ports/history.js";
import type { Logger } from "../core/ports/logger.js";
import type { NodeStatus } from "../core/ports/liveness.js";
import type { ShardAssignment } from "../core/ports/shard-map.js";
import type { Store } from "../core/ports/store.js";
import type { Timing } from "../core/timing.js";
import { readClusterStatus, type ClusterStatus } from "../nodes/cluster-status.js";
import { SDK_VERSION } from "../version.js";
import type { ConsoleEvent, ConsoleNode, ConsolePatch, ConsoleShard, ConsoleState } from "./types.js";

/**
 * The shard map as the serving process holds it in memory: a webapp's router, or the standalone
 * console's own watch. The console shows owners and epochs from here, so a promotion reaches the
 * browsers as soon as this process learns it, with no store read in between.
 */
export interface ConsoleRoutes {
  /** The cluster's shard count. */
  readonly shards: number;
  /** The owner and epoch this process knows for `shard` (null: none yet). */
  route(shard: number): ShardAssignment | null;
  /** Calls `listener` with the shards whose route moved to a newer epoch; returns the unsubscribe function. */
  onChange(listener: (changed: readonly ShardAssignment[]) => void): () => void;
}

/** What a {@link ConsoleFeed} reads and how often. */
export interface ConsoleFeedOptions {
  /** The cluster's store: nodes, settings, pauses and history are read from it. */
  readonly store: Store;
  /** The node's timing (used until the cluster document's settings are read). */
  readonly timing: Timing;
  /** The in-memory shard map. */
  readonly routes: ConsoleRoutes;
  /** Shown in the page's header: the webapp's name, or `multiconnect console`. */
  readonly servedBy: string;
  /** Whether an admin token is configured, so the page can say that actions cannot work without one. */
  readonly actionsEnabled: boolean;
  /** Where read failures go (once per change of message). */
  readonly log: Logger;
  /**
   * How often the store is read while at least one browser watches (default 1 s): six reads of
   * the store per period for this process, however many browsers are connected, and none while no
   * browser is. Shard owners do not wait for it: they come from memory the moment they change.
   */
  readonly refreshMs?: number;
  /** History events kept and shown (default 50). */
  readonly historyLimit?: number;
  /** Browsers one process streams to at once (default 1000); more get 503. */
  readonly maxClients?: number;
}

/**
 * After a route change the store is read again at once and this long afterwards: the primary
 * master appends the promotion's history event just after its shard-map write, so the first read
 * can miss it.
 */
const FOLLOW_UP_MS = 400;
/** A comment line every 15 s keeps idle proxies and load balancers from closing the stream. */
const KEEP_ALIVE_MS = 15_000;
/** A browser that has this much unsent data is too slow to follow: it is cut off and reconnects to a fresh state. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** What one store read gives. */
interface StoreView {
  readonly status: ClusterStatus;
  readonly records: readonly NodeStatus[];
  readonly history: readonly HistoryEvent[];
  readonly readAtMs: number;
}

/**
 * The console's live feed: ONE shared view of the cluster per process, streamed to every browser
 * as server-sent events. A browser gets the whole state when it connects, then patches with what
 * changed. The store is read once per `refreshMs` (and right after a route change) while anyone
 * watches — so a hundred open browsers cost the store what one does — and shard owners are pushed
 * from the in-memory map the moment they move. `EventSource` reconnects by itself (the stream
 * asks it to retry after 1 s); each reconnection starts with the whole state again.
 */
export class ConsoleFeed {
  private readonly clients = new Set<ServerResponse>();
  /** The browsers that got their whole state: only they get patches. */
  private readonly ready = new WeakSet<ServerResponse>();
  private readonly refreshMs: number;
  private readonly historyLimit: number;
  private readonly maxClients: number;
  private view: StoreView | null = null;
  private storeError: string | null = null;
  /** The JSON of each field as last sent (shards: of each shard). */
  private sentFields = new Map<string, string>();
  private sentShards: string[] = [];
  private refreshing: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private followUp: NodeJS.Timeout | null = null;
  private keepAlive: NodeJS.Timeout | null = null;
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(private readonly o: ConsoleFeedOptions) {
    this.refreshMs = o.refreshMs ?? 1000;
    this.historyLimit = o.historyLimit ?? 50;
    this.maxClients = o.maxClients ?? 1000;
    this.unsubscribe = o.routes.onChange(() => this.routesChanged());
  }

  /** Browsers connected now. */
  get clientCount(): number {
    return this.clients.size;
  }

  /** The current state, read from the store first when the last read is older than `refreshMs`. */
  async state(): Promise<ConsoleState> {
    if (!this.view || Date.now() - this.view.readAtMs > this.refreshMs) await this.refresh();
    return this.compose();
  }

  /** Answers `GET /console/events`: keeps the response open as an event stream until the browser leaves. */
  subscribe(req: IncomingMessage, res: ServerResponse): void {
    if (this.closed || this.clients.size >= this.maxClients) {
      res.writeHead(503, { "content-type": "text/plain", "retry-after": "5" });
      res.end(this.closed ? "this node is stopping\n" : `this node already streams to ${this.maxClients} browsers\n`);
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
      connection: "keep-alive",
    });
    res.write("retry: 1000\n\n");
    this.clients.add(res);
    const leave = () => this.drop(res);
    req.once("close", leave);
    res.once("close", leave);
    this.keepAlive ??= setInterval(() => this.broadcast(": keep-alive\n\n"), KEEP_ALIVE_MS).unref();
    void this.state().then(() => {
      if (!this.clients.has(res)) return;
      // Bring the others up to date first, so that the state this browser starts from is exactly
      // what the next patch is computed against.
      this.publish();
      this.send(res, `event: state\ndata: ${JSON.stringify(this.compose())}\n\n`);
      this.ready.add(res);
    });
    this.schedule(this.refreshMs);
  }

  /** Ends every stream and stops reading. */
  close(): void {
    this.closed = true;
    this.unsubscribe();
    for (const res of this.clients) res.end();
    this.clients.clear();
    this.stopTimers();
  }

  private drop(res: ServerResponse): void {
    this.clients.delete(res);
    if (this.clients.size === 0) this.stopTimers();
  }

  private stopTimers(): void {
    for (const t of [this.timer, this.followUp, this.keepAlive]) if (t) clearTimeout(t);
    this.timer = this.followUp = this.keepAlive = null;
  }

  /** Reads the store again in `ms` unless a read is already due sooner. */
  private schedule(ms: number): void {
    if (this.timer || this.closed || this.clients.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.refresh().then(() => this.schedule(this.refreshMs));
    }, ms).unref();
  }

  private routesChanged(): void {
    if (this.clients.size === 0) return;
    this.publish();
    void this.refresh();
    this.followUp ??= setTimeout(() => {
      this.followUp = null;
      void this.refresh();
    }, FOLLOW_UP_MS).unref();
  }

  /** One store read at a time; a read asked for during one runs once right after it. */
  private refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        await this.read();
      } while (this.again && !this.closed);
      this.refreshing = null;
      this.publish();
    })();
    return this.refreshing;
  }

  private async read(): Promise<void> {
    const { store, timing, routes } = this.o;
    try {
      const [status, records, history] = await Promise.all([
        readClusterStatus(store, timing, routes.shards),
        store.liveness.list(),
        store.history.list({ limit: this.historyLimit }),
      ]);
      this.view = { status, records, history, readAtMs: Date.now() };
      this.storeError = null;
    } catch (error) {
      const message = `the console could not read the store: ${(error as Error).message}`;
      if (message !== this.storeError) this.o.log.warn({ err: String(error) }, "console: store read failed; showing the last state read");
      this.storeError = message;
    }
  }

  /** Sends each browser what changed since the last send (nothing when nothing did). */
  private publish(): void {
    if (this.clients.size === 0) return;
    const state = this.compose();
    const patch: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(state)) {
      if (key === "shards") continue;
      const json = JSON.stringify(value);
      if (this.sentFields.get(key) !== json) {
        this.sentFields.set(key, json);
        patch[key] = value;
      }
    }
    const shards: ConsoleShard[] = [];
    for (const s of state.shards) {
      const json = JSON.stringify(s);
      if (this.sentShards[s.shard] !== json) {
        this.sentShards[s.shard] = json;
        shards.push(s);
      }
    }
    if (shards.length > 0) patch["shards"] = shards;
    if (Object.keys(patch).length > 0) this.broadcast(`event: patch\ndata: ${JSON.stringify(patch satisfies ConsolePatch)}\n\n`);
  }

  /** Writes one already serialised message to every browser: the cost of a message does not grow with their number. */
  private broadcast(message: string): void {
    for (const res of this.clients) if (this.ready.has(res)) this.send(res, message);
  }

  private send(res: ServerResponse, message: string): void {
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      res.destroy();
      this.drop(res);
      return;
    }
    res.write(message);
  }

  /** The state from the last store read and the in-memory routes. */
  private compose(): ConsoleState {
    const { routes } = this.o;
    const v = this.view;
    const records = new Map((v?.records ?? []).map((r) => [r.id, r]));
    const nameOf = (id: string | null): string | null => (id === null ? null : (records.get(id)?.name ?? nameFromId(id)));
    const nodes: ConsoleNode[] = (v?.status.nodes ?? []).map((n) => {
      const meta = records.get(n.id)?.meta ?? {};
      const coreapp = n.role === "coreapp";
      return {
        id: n.id,
        name: n.name,
        role: n.role,
        healthy: n.healthy,
        address: n.address,
        lastSeenMs: n.last_seen_ms,
        version: typeof meta["version"] === "string" ? meta["version"] : null,
        shard: coreapp && typeof meta["shard"] === "number" ? meta["shard"] : null,
        epoch: coreapp && typeof meta["epoch"] === "number" ? meta["epoch"] : null,
        serving: coreapp && meta["serving"] === true && n.healthy,
        nofailover: meta["nofailover"] === true,
      };
    });
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const shards: ConsoleShard[] = Array.from({ length: routes.shards }, (_, shard) => {
      const a = routes.route(shard) ?? { shard, owner: null, epoch: 0 };
      const owner = a.owner === null ? undefined : byId.get(a.owner);
      return {
        shard,
        owner: a.owner,
        ownerName: nameOf(a.owner),
        epoch: a.epoch,
        serving: !!owner && owner.serving && owner.shard === shard && owner.epoch === a.epoch,
      };
    });
    const owners = new Set(shards.map((s) => s.owner));
    const heldOut = new Set(v?.status.held_out ?? []);
    const standbys = nodes
      .filter((n) => n.role === "coreapp" && n.healthy && !owners.has(n.id) && n.shard === null && !n.nofailover && !heldOut.has(n.name))
      .map((n) => n.name);
    const s = v?.status;
    return {
      servedBy: this.o.servedBy,
      version: SDK_VERSION,
      shardCount: routes.shards,
      actionsEnabled: this.o.actionsEnabled,
      primaryMaster: s?.primary_master ?? null,
      nodes,
      shards,
      standbys,
      settings: s
        ? {
            version: s.settings.version,
            values: Object.fromEntries(Object.entries(s.settings).filter(([k]) => k !== "version")),
            failoverBoundMs: s.failover_bound_ms,
            pauses: s.pauses.map((p) => ({ shard: p.shard, by: p.by, reason: p.reason, pausedAt: p.paused_at, endsInMs: p.ends_in_ms })),
            heldOut: s.held_out,
          }
        : null,
      history: (v?.history ?? []).map((e) => toConsoleEvent(e, nameOf)),
      storeError: this.storeError,
      readAtMs: v?.readAtMs ?? 0,
    };
  }
}

/** A history event as the console shows it: owners by name, and the detection time for a promotion. */
export function toConsoleEvent(e: HistoryEvent, nameOf: (id: string | null) => string | null): ConsoleEvent {
  const id = (k: string) => (typeof e.evidence[k] === "string" ? (e.evidence[k] as string) : null);
  const moves = e.type === "promoted" || e.type === "switchover";
  return {
    seq: e.seq,
    atMs: e.atMs,
    type: e.type,
    shard: e.shard,
    cause: e.cause,
    evidence: e.evidence,
    epochs: e.epochs,
    from: moves ? nameOf(id("from")) : null,
    to: moves ? nameOf(id("to")) : null,
    detectedAfterMs: e.type === "promoted" ? detectedAfterMs(e.cause, e.evidence) : null,
  };
}

/**
 * How long the old owner had been failing when the primary master promoted another, by the
 * detector that decided (its verdict opens the cause; src/core/master/health.ts writes them):
 * heartbeat silence to the primary master, the liveness record's age, or the time the owner kept
 * answering "not serving" (also for an owner that gave its shard up). Null when the cause names no
 * detector (a shard that had no owner) or the evidence lacks the figure.
 */
export function detectedAfterMs(cause: string, evidence: Readonly<Record<string, unknown>>): number | null {
  const n = (k: string) => (typeof evidence[k] === "number" && Number.isFinite(evidence[k]) ? (evidence[k] as number) : null);
  if (cause.startsWith("heartbeat detector")) return n("ownSilenceMs");
  if (cause.startsWith("store detector")) return n("recordAgeMs");
  if (cause.startsWith("not serving") || cause.startsWith("the owner gave up")) return n("notServingForMs");
  return null;
}

/** Node ids are `<name>.<random>`; names never contain a dot. */
function nameFromId(id: string): string {
  const dot = id.indexOf(".");
  return dot > 0 ? id.slice(0, dot) : id;
}
