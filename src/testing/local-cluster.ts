import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import type { ClusterStatus } from "../nodes/cluster-status.js";
import { FaultProxy } from "./fault-proxy.js";
import { freePort, randomNamespace } from "./net.js";
import { Oracle, type OracleMode } from "./oracle.js";

/**
 * The dev cluster's intervals: a failover within a few seconds. Not shorter: on a loaded CI
 * machine a heartbeat through the fault proxy then misses its timeout (a third of
 * unhealthy_interval, here 1 s) and no coreapp ever looks healthy.
 */
export const LOCAL_CLUSTER_SETTINGS = {
  heartbeat_interval: "500ms",
  unhealthy_interval: "3s",
  db_heartbeat_interval: "1s",
  db_unhealthy_interval: "5s",
} as const;

/** How `LocalCluster` builds its cluster. */
export interface LocalClusterOptions {
  /**
   * Path of the module holding your application, as `multiconnect start --app` takes it: a default
   * export that is a `CoreappApplication`, or a function `(nodeName) => CoreappApplication`. The
   * nodes are separate processes, so this is a module path, not an object. Required.
   */
  readonly app: string;
  /** Masters (default 2). */
  readonly masters?: number;
  /** Coreapps (default 3). */
  readonly coreapps?: number;
  /** Shards (default 1). */
  readonly shards?: number;
  /**
   * The config's `store:` section. Default: SQLite in the cluster's directory. For PostgreSQL,
   * MySQL and Redis given by host and port (not `url`), every node dials the store through a fault
   * proxy of its own, so `cut()` also cuts that node's store link. A random `table_prefix` /
   * `key_prefix` is added unless you set one, so runs never share state (tables and keys stay
   * behind in the database afterwards).
   */
  readonly store?: Readonly<Record<string, unknown>>;
  /** The config's `settings:` section (default `LOCAL_CLUSTER_SETTINGS`). */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
  /** The upstream oracle's mode (default "strict": it records everything, as a real upstream). */
  readonly oracleMode?: OracleMode;
  /** Extra environment for every node process (they also get `MC_ORACLE`, the oracle's `host:port`). */
  readonly env?: Readonly<Record<string, string>>;
  /** Node.js options of the node processes, e.g. `["--import", "tsx"]` for an application written in TypeScript. */
  readonly execArgv?: readonly string[];
  /** The nodes' `log_level` (default "info"). */
  readonly logLevel?: "debug" | "info" | "warn" | "error" | "silent";
  /** Where configs and logs (`<node>.log`) go (default: a fresh temporary directory). */
  readonly dir?: string;
}

/** One node process of a `LocalCluster`. */
export interface LocalNode {
  readonly name: string;
  readonly role: "master" | "coreapp" | "webapp";
  readonly child: ChildProcess;
  /** Coreapps: the proxy every other node dials to reach it. */
  readonly inbound: FaultProxy | null;
  /** This node's own link to the store (null for SQLite and stores given by URL). */
  readonly storeLink: FaultProxy | null;
  /** The node's operations endpoint on 127.0.0.1: `/metrics`, `/livez`, `/readyz` (docs/observability.md). */
  readonly opsPort: number;
}

const STORE_PORTS: Record<string, number> = { postgres: 5432, mysql: 3306, redis: 6379 };

/**
 * A whole cluster on this machine, for your test suite: masters, coreapps running *your*
 * application and one webapp, each a separate process of the `multiconnect` CLI (so `kill()` is
 * a real SIGKILL and the kernel closes the dead process's sockets), plus the upstream oracle your
 * application reports its sessions to. Assert on `oracle.report()` that your `onPromote` /
 * `onDemote` never held two sessions of one shard at once, through `kill()`, `pause()` and `cut()`.
 *
 * ```ts
 * const cluster = new LocalCluster({ app: "./test/my-app.js" });
 * await cluster.start();
 * await cluster.waitReady();
 * cluster.kill(await cluster.primary(0));
 * await cluster.waitReady();
 * await cluster.stop();
 * expect(cluster.oracle.report().overlaps).toBe(0);
 * ```
 */
export class LocalCluster {
  readonly dir: string;
  readonly oracle: Oracle;
  readonly nodes: LocalNode[] = [];
  /** The webapp's port on 127.0.0.1 (after `start`). */
  webappPort = 0;
  private readonly secret = randomBytes(24).toString("base64url");
  private readonly store: Record<string, unknown>;
  /** Nodes cut off by `cut()` and not yet healed. */
  private readonly cutOff = new Set<string>();

  constructor(readonly options: LocalClusterOptions) {
    if (!options.app) throw new Error("LocalCluster: options.app (the path of your application module) is required");
    this.dir = options.dir ?? mkdtempSync(join(tmpdir(), "mc-local-"));
    this.oracle = new Oracle(options.oracleMode ?? "strict");
    this.store = withNamespace(options.store ?? { backend: "sqlite", path: join(this.dir, "cluster.db") });
  }

  /** Starts the oracle and every node; resolves once the processes are spawned (see `waitReady`). */
  async start(): Promise<void> {
    await this.oracle.start();
    this.webappPort = await freePort();
    for (let i = 1; i <= (this.options.masters ?? 2); i++) await this.spawn("master", `master-${i}`);
    for (let i = 1; i <= (this.options.coreapps ?? 3); i++) await this.spawn("coreapp", `coreapp-${i}`);
    await this.spawn("webapp", "webapp-1");
  }

  /** Starts one more node, or a node again after `kill()` (a new process: a new id to the cluster). */
  async spawn(role: LocalNode["role"], name: string): Promise<LocalNode> {
    const server = storeServer(this.store);
    const storeLink = server ? new FaultProxy(server.host, server.port, `${name}→store`) : null;
    await storeLink?.start();
    const port = role === "webapp" ? this.webappPort : await freePort();
    const inbound = role === "coreapp" ? new FaultProxy("127.0.0.1", port, `→${name}`) : null;
    await inbound?.start();
    const opsPort = await freePort();
    const config = join(this.dir, `${name}.yaml`);
    const store = storeLink ? { ...this.store, host: "127.0.0.1", port: storeLink.port } : this.store;
    writeFileSync(
      config,
      stringify({
        cluster_name: "local",
        shards: this.options.shards ?? 1,
        secret: this.secret,
        settings: this.options.settings ?? LOCAL_CLUSTER_SETTINGS,
        store,
        node: {
          listen_host: "127.0.0.1",
          external_hostname: "127.0.0.1",
          port,
          ops_port: opsPort,
          ...(inbound ? { advertise_port: inbound.port } : {}),
        },
        log_level: this.options.logLevel ?? "info",
      }),
      { mode: 0o600 },
    );
    // --no-supervise: kill() then kills the node process itself, as the kit's scenarios expect.
    const args = [
      ...(this.options.execArgv ?? []),
      cliPath(),
      "start",
      "--config",
      config,
      "--role",
      role,
      "--name",
      name,
      "--no-supervise",
    ];
    if (role === "coreapp") args.push("--app", resolve(this.options.app));
    const log = openSync(join(this.dir, `${name}.log`), "a");
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", log, log],
      env: { ...process.env, ...this.options.env, MC_ORACLE: this.oracle.address },
    });
    const node: LocalNode = { name, role, child, inbound, storeLink, opsPort };
    this.nodes.push(node);
    return node;
  }

  /** The running node called `name`. */
  node(name: string): LocalNode {
    const n = this.nodes.findLast((x) => x.name === name && running(x));
    if (!n) throw new Error(`LocalCluster: no running node called ${name}`);
    return n;
  }

  /** The cluster's state as the webapp's `GET /v1/health` reports it, or null when it does not answer. */
  async health(): Promise<ClusterStatus | null> {
    try {
      const r = await fetch(`http://127.0.0.1:${this.webappPort}/v1/health`, { signal: AbortSignal.timeout(2000) });
      return r.ok ? ((await r.json()) as ClusterStatus) : null;
    } catch {
      return null;
    }
  }

  /**
   * Waits until every running master and coreapp is registered and healthy, a primary master
   * exists and every shard has a connected primary coreapp that is running and not cut off. Throws after `timeoutMs` naming the
   * directory with the nodes' logs.
   */
  waitReady(timeoutMs = 60_000): Promise<ClusterStatus> {
    return this.waitFor(
      async () => {
        const h = await this.health();
        return h && this.isReady(h) ? h : null;
      },
      timeoutMs,
      "the cluster to be ready",
    );
  }

  /**
   * Polls `check` every 100 ms until it returns something other than null or undefined, and
   * returns that. Throws after `timeoutMs`, naming `what` and the directory with the nodes' logs.
   */
  async waitFor<T>(check: () => Promise<T | null | undefined>, timeoutMs: number, what = "a condition"): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await check();
      if (v !== null && v !== undefined) return v;
      if (Date.now() > end) throw new Error(`LocalCluster: timed out after ${timeoutMs} ms waiting for ${what}; node logs in ${this.dir}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private isReady(h: ClusterStatus): boolean {
    const count = (role: LocalNode["role"]) => this.nodes.filter((n) => n.role === role && running(n) && !this.cutOff.has(n.name)).length;
    const healthy = (test: (n: ClusterStatus["nodes"][number]) => boolean) => h.nodes.filter((n) => n.healthy && test(n)).length;
    if (!h.primary_master) return false;
    if (healthy((n) => n.role.endsWith("master")) < count("master")) return false;
    if (healthy((n) => n.role === "coreapp") < count("coreapp")) return false;
    // A killed or cut primary stays in the map (and looks connected) until the masters notice.
    return h.shards.every((s) => this.servingOwner(h, s.shard) !== null);
  }

  /** The name of the running, reachable coreapp the map names for `shard`, if it serves it. */
  private servingOwner(h: ClusterStatus, shard: number): string | null {
    const entry = h.shards.find((s) => s.shard === shard);
    const owner = h.nodes.find((n) => n.id === entry?.owner && n.gateway_status === "connected");
    const up = owner && this.nodes.some((n) => n.name === owner.name && running(n) && !this.cutOff.has(n.name));
    return up ? owner.name : null;
  }

  /**
   * The name of the coreapp that serves `shard` now: named by the shard map, serving, running and
   * not cut off. Waits up to `timeoutMs` for one (a failover in progress).
   */
  primary(shard = 0, timeoutMs = 60_000): Promise<string> {
    return this.waitFor(
      async () => {
        const h = await this.health();
        return h && this.servingOwner(h, shard);
      },
      timeoutMs,
      `a primary of shard ${shard}`,
    );
  }

  /** The node's Prometheus metrics, as text (its operations endpoint's `GET /metrics`). */
  async metrics(name: string): Promise<string> {
    const r = await fetch(`http://127.0.0.1:${this.node(name).opsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
    return r.text();
  }

  /** Sends a request through the webapp (the shard key in the default `x-shard-key` header). */
  request(path: string, init: { method?: string; shardKey?: string; body?: string } = {}): Promise<Response> {
    return fetch(`http://127.0.0.1:${this.webappPort}${path}`, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers: init.shardKey === undefined ? {} : { "x-shard-key": init.shardKey },
      ...(init.body === undefined ? {} : { body: init.body }),
      signal: AbortSignal.timeout(15_000),
    });
  }

  /** SIGKILLs the node (no onDemote runs; the kernel closes its sockets) and waits until it is gone. */
  async kill(name: string): Promise<void> {
    const n = this.node(name);
    const gone = new Promise((r) => n.child.once("exit", r));
    n.child.kill("SIGKILL");
    await gone;
  }

  /** Freezes the node (SIGSTOP): its sockets stay open, its timers stop — a long GC pause or a stuck VM. */
  pause(name: string): void {
    this.node(name).child.kill("SIGSTOP");
  }

  /** Lets a paused node go on (SIGCONT). */
  resume(name: string): void {
    this.node(name).child.kill("SIGCONT");
  }

  /**
   * Cuts the node off the network without stopping it: bytes stop both ways on the links into a
   * coreapp (from the masters and the webapp) and on the node's own store link when it has one
   * (not with SQLite, whose store is a file). Connections stay open, as behind a dead route.
   */
  cut(name: string): void {
    const n = this.node(name);
    this.cutOff.add(name);
    n.inbound?.set({ kind: "blackhole" });
    n.storeLink?.set({ kind: "blackhole" });
  }

  /** Undoes `cut()`: held bytes are delivered late, as TCP retransmission would. */
  heal(name: string): void {
    const n = this.node(name);
    this.cutOff.delete(name);
    n.inbound?.set({ kind: "pass" });
    n.storeLink?.set({ kind: "pass" });
  }

  /** Stops every node (SIGTERM, then SIGKILL after 5 s), the proxies and the oracle. Sessions still open are closed now. */
  async stop(): Promise<void> {
    await Promise.all(
      this.nodes.filter(running).map(async (n) => {
        n.child.kill("SIGCONT");
        const gone = new Promise((r) => n.child.once("exit", r));
        n.child.kill("SIGTERM");
        const timer = setTimeout(() => n.child.kill("SIGKILL"), 5000);
        await gone;
        clearTimeout(timer);
      }),
    );
    for (const n of this.nodes) {
      await n.inbound?.close();
      await n.storeLink?.close();
    }
    await this.oracle.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

function running(n: LocalNode): boolean {
  return n.child.exitCode === null && n.child.signalCode === null;
}

/**
 * The CLI the nodes run: the package's own `dist/cli/main.js`. From the TypeScript sources (this
 * repository's tests run them under vitest) the built copy is used, as Node cannot run `.ts`.
 */
function cliPath(): string {
  const here = import.meta.url;
  return fileURLToPath(new URL(here.endsWith(".ts") ? "../../dist/cli/main.js" : "../cli/main.js", here));
}

/** Adds a random table or key prefix unless the section has one. */
function withNamespace(store: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const ns = randomNamespace("lc");
  const backend = String(store["backend"]);
  if (["sqlite", "postgres", "mysql"].includes(backend) && store["table_prefix"] === undefined) return { ...store, table_prefix: `${ns}_` };
  if (["redis", "etcd"].includes(backend) && store["key_prefix"] === undefined) return { ...store, key_prefix: `${ns}/` };
  return { ...store };
}

/** Where a host:port store listens, when it is given that way (proxied per node). */
function storeServer(store: Readonly<Record<string, unknown>>): { host: string; port: number } | null {
  const backend = String(store["backend"]);
  const defaultPort = STORE_PORTS[backend];
  if (defaultPort === undefined || store["url"] !== undefined) return null;
  const host = store["host"];
  return { host: typeof host === "string" ? host : "127.0.0.1", port: Number(store["port"] ?? defaultPort) };
}
