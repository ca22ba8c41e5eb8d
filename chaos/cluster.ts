import { spawn, type ChildProcess } from "node:child_process";
import { openSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import type { ClusterStatus } from "../src/nodes/cluster-status.js";
import { freePort, type Backend, type Endpoint } from "./backends.js";
import { FaultProxy } from "../src/testing/fault-proxy.js";
import { monoNow } from "../src/testing/oracle.js";

/** The built CLI: the harness runs the binary a user runs (`npm run chaos` builds it first). */
export const CLI = resolve("dist/cli/main.js");

/** libfaketime, for wall-clock jumps on one node (Debian's `faketime` package). */
export const FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Short intervals, as the integration tests use: failover in under 2 s. */
export const CHAOS_SETTINGS = {
  heartbeat_interval: "250ms",
  unhealthy_interval: "1500ms",
  db_heartbeat_interval: "500ms",
  db_unhealthy_interval: "3s",
};

/** A node's role, as `multiconnect start --role` takes it. */
export type Role = "master" | "coreapp" | "webapp";

/** One node process of a harness's cluster. */
export interface NodeProcess {
  readonly name: string;
  readonly role: Role;
  readonly child: ChildProcess;
}

/** One node process and the proxies on its links. */
export interface ChaosNode extends NodeProcess {
  /** This node's own link to the store (null for SQLite). */
  readonly storeProxy: FaultProxy | null;
  /** Coreapps: the proxy every other node dials to reach it. */
  readonly inbound: FaultProxy | null;
  /** With `faketime`: the file holding this node's wall-clock offset ("+0", "+1h", "-1h"). */
  readonly clockFile: string | null;
  /** With `opsPorts`: the node's operations endpoint (`/metrics`), for the soak's heap samples. */
  readonly opsPort: number | null;
}

/** How `ChaosCluster` builds a run's cluster. */
export interface ChaosClusterOptions {
  readonly backend: Backend;
  /** The run's directory: configs, logs, the SQLite file. */
  readonly dir: string;
  /** Fresh table/key prefix for this run. */
  readonly ns: string;
  /** The store server to dial (shared, or a private one). */
  readonly server: Endpoint | null;
  /** The oracle's `host:port`. */
  readonly oracle: string;
  readonly masters?: number;
  readonly coreapps?: number;
  readonly shards?: number;
  /** Coreapps run under `--watchdog` (whose supervisor also releases a dead child's leases). */
  readonly watchdog?: boolean;
  /** Every node runs under `multiconnect start`'s supervisor (crash failover); default `--no-supervise`. */
  readonly supervise?: boolean;
  /** Every node runs under libfaketime with its own offset file. */
  readonly faketime?: boolean;
  /**
   * False: coreapps advertise their own listener, with no proxy in front (default true). The
   * store-HA runs inject no node faults, and on a starved host a proxy hop in the runner's one
   * event loop delays every heartbeat.
   */
  readonly inboundProxies?: boolean;
  /** Every node serves its operations endpoint on a port of its own (`ChaosNode.opsPort`). */
  readonly opsPorts?: boolean;
  /** Settings over CHAOS_SETTINGS (config file keys), e.g. failsafe mode. */
  readonly settings?: Readonly<Record<string, unknown>>;
}

/** A response the load generator saw. */
export interface Sample {
  readonly sentAt: number;
  readonly doneAt: number;
  readonly ok: boolean;
  readonly status: number;
  readonly node?: string;
  readonly epoch?: number;
  /** The shard key the request carried. */
  readonly key: string;
  /** The webapp it was sent through. */
  readonly webapp: string;
}

/**
 * What the single-host harness (ChaosCluster) and the multi-host bed (chaos/hosts/cluster.ts)
 * share: the node processes, waiting for the cluster, the client traffic through a webapp that
 * every run judges, and stopping it all. Subclasses start the nodes and say where a webapp is.
 */
export abstract class NodeCluster<N extends NodeProcess> {
  readonly nodes: N[] = [];
  readonly samples: Sample[] = [];
  /** The webapps the client sends through, in order of preference (a client with a list of endpoints). */
  clientWebapps: string[] = ["webapp-1"];
  protected readonly secret = `chaos-${Math.random().toString(36).slice(2)}-secret-value`;
  private loadRunning = false;
  private loadDone: Promise<void> | null = null;

  constructor(
    /** The run's directory: configs and every node's log. */
    protected readonly dir: string,
    /** How long `waitReady` waits by default. */
    private readonly readyTimeoutMs: number,
  ) {
    live.add(this);
  }

  /** The base URL of webapp `name` as the client reaches it. */
  protected abstract webappUrl(name: string): string;

  /** The running node called `name` (the latest one, if it was restarted). */
  node(name: string): N {
    const n = this.nodes.filter((x) => x.name === name).at(-1);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  running(role?: Role): N[] {
    return this.nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null && (!role || n.role === role));
  }

  /** `GET /v1/health` from the first running webapp that answers. */
  async health(): Promise<ClusterStatus | null> {
    for (const w of new Set(this.nodes.filter((n) => n.role === "webapp").map((n) => n.name))) {
      try {
        const r = await fetch(`${this.webappUrl(w)}/v1/health`, { signal: AbortSignal.timeout(2000) });
        if (r.ok) return (await r.json()) as ClusterStatus;
      } catch {
        // try the next one
      }
    }
    return null;
  }

  /**
   * Waits until every shard has a connected primary, a primary master exists and every running
   * master and webapp is healthy (so the health API's failover bound is the one for this cluster's
   * masters, not a momentary count while one of them has not written its liveness record yet). A
   * node that exits first ends the wait with NodeStartError.
   */
  async waitReady(timeoutMs = this.readyTimeoutMs): Promise<ClusterStatus> {
    return this.waitFor(async () => {
      const dead = this.nodes.find((n) => n.child.exitCode !== null || n.child.signalCode !== null);
      if (dead) throw new NodeStartError(dead.name, this.lastLogLine(dead.name));
      const h = await this.health();
      if (!h?.primary_master) return null;
      const healthy = (roles: string[]) => h.nodes.filter((n) => roles.includes(n.role) && n.healthy).length;
      if (healthy(["primary_master", "secondary_master"]) < this.running("master").length) return null;
      if (healthy(["webapp"]) < this.running("webapp").length) return null;
      const connected = h.nodes.filter((n) => n.gateway_status === "connected");
      return connected.length === h.shards.length && h.shards.every((s) => s.owner) ? h : null;
    }, timeoutMs);
  }

  async waitFor<T>(probe: () => Promise<T | null>, timeoutMs: number, stepMs = 50): Promise<T> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (performance.now() > end) throw new Error(`cluster condition not reached in ${timeoutMs} ms; logs in ${this.dir}`);
      await sleep(stepMs);
    }
  }

  /**
   * Sends requests through the first of `clientWebapps` every `everyMs` (never more than
   * `maxInflight` at once, so a blackholed request does not stop the others) and records every
   * answer on the monotonic clock. The requests carry the shard keys `keys` in turn (several keys
   * reach several shards).
   */
  startLoad(everyMs = 50, maxInflight = 400, keys: readonly string[] = ["k"]): void {
    this.loadRunning = true;
    let inflight = 0;
    let next = 0;
    const pending = new Set<Promise<void>>();
    this.loadDone = (async () => {
      while (this.loadRunning) {
        if (inflight < maxInflight) {
          inflight++;
          const p = this.send(this.clientWebapps[0]!, keys[next++ % keys.length]!).then((s) => {
            this.samples.push(s);
            inflight--;
          });
          pending.add(p);
          void p.finally(() => pending.delete(p));
        }
        await sleep(everyMs);
      }
      await Promise.all(pending);
    })();
  }

  async stopLoad(): Promise<void> {
    this.loadRunning = false;
    await this.loadDone;
  }

  private async send(webapp: string, key: string): Promise<Sample> {
    const sentAt = monoNow();
    try {
      const r = await fetch(`${this.webappUrl(webapp)}/v1/messages`, {
        method: "POST",
        headers: { "x-shard-key": key, "content-type": "text/plain" },
        body: "chaos",
        signal: AbortSignal.timeout(12_000),
      });
      await r.arrayBuffer();
      const node = r.headers.get("x-multiconnect-node") ?? undefined;
      const epoch = r.headers.has("x-multiconnect-epoch") ? Number(r.headers.get("x-multiconnect-epoch")) : undefined;
      return {
        sentAt,
        doneAt: monoNow(),
        ok: r.ok,
        status: r.status,
        key,
        webapp,
        ...(node ? { node } : {}),
        ...(epoch !== undefined ? { epoch } : {}),
      };
    } catch {
      return { sentAt, doneAt: monoNow(), ok: false, status: 0, key, webapp };
    }
  }

  protected lastLogLine(name: string): string {
    const lines = readFileSync(join(this.dir, `${name}.log`), "utf8")
      .trim()
      .split("\n");
    return lines.at(-1) ?? "";
  }

  /** The last lines of every node's log, for a failed run's report. */
  logs(lines = 20): string {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith(".log"))
      .map((f) => `--- ${f}\n${readFileSync(join(this.dir, f), "utf8").split("\n").slice(-lines).join("\n")}`)
      .join("\n");
  }

  /**
   * Stops the load and every node: SIGCONT (a frozen node must be able to exit) and SIGTERM, SIGKILL
   * after 3 s; `extraPids` (the upstream sessions' owners: watchdog children) are continued and
   * killed too. Resolves once every node process has exited, so the next run may bind its ports.
   */
  protected async stopNodes(extraPids: number[]): Promise<void> {
    live.delete(this);
    await this.stopLoad();
    const running = this.running();
    const exited = (n: N) =>
      new Promise((r) => (n.child.exitCode !== null || n.child.signalCode !== null ? r(null) : n.child.once("exit", r)));
    for (const pid of extraPids) signal(pid, "SIGCONT");
    for (const n of running) {
      n.child.kill("SIGCONT");
      n.child.kill("SIGTERM");
    }
    await Promise.race([Promise.all(running.map(exited)), sleep(3000)]);
    for (const n of running) n.child.kill("SIGKILL");
    // Watchdog children (known to the oracle by pid) must not outlive the run.
    for (const pid of extraPids) signal(pid, "SIGKILL");
    await Promise.all(running.map(exited));
  }
}

/**
 * A cluster of real node processes for one chaos run: every node has a config file of its own so
 * that its store link goes through its own fault proxy, and every coreapp advertises a proxy in front
 * of its listener (`node.advertise_port`), so links node→store and node→coreapp can be cut one by one.
 */
export class ChaosCluster extends NodeCluster<ChaosNode> {
  webappPort = 0;

  constructor(readonly o: ChaosClusterOptions) {
    super(o.dir, 30_000);
  }

  protected webappUrl(): string {
    return `http://127.0.0.1:${this.webappPort}`;
  }

  async start(): Promise<void> {
    this.webappPort = await freePort();
    for (let i = 1; i <= (this.o.masters ?? 2); i++) await this.spawn("master", `master-${i}`);
    for (let i = 1; i <= (this.o.coreapps ?? 3); i++) await this.spawn("coreapp", `coreapp-${i}`);
    await this.spawn("webapp", "webapp-1");
  }

  /** Starts one node (also used to bring a node back after a kill: a new process, a new id). */
  async spawn(role: Role, name: string): Promise<ChaosNode> {
    const { o } = this;
    let storeProxy: FaultProxy | null = null;
    if (o.server) {
      storeProxy = new FaultProxy(o.server.host, o.server.port, `${name}→store`);
      await storeProxy.start();
    }
    const port = role === "webapp" ? this.webappPort : await freePort();
    let inbound: FaultProxy | null = null;
    if (role === "coreapp" && o.inboundProxies !== false) {
      inbound = new FaultProxy("127.0.0.1", port, `→${name}`);
      await inbound.start();
    }
    const opsPort = o.opsPorts ? await freePort() : null;
    const config = join(o.dir, `${name}.yaml`);
    writeFileSync(
      config,
      stringify({
        cluster_name: "chaos",
        shards: o.shards ?? 1,
        secret: this.secret,
        settings: { ...CHAOS_SETTINGS, ...o.settings },
        store: o.backend.store(o.ns, storeProxy ? { host: "127.0.0.1", port: storeProxy.port } : null, o.dir),
        node: {
          listen_host: "127.0.0.1",
          external_hostname: "127.0.0.1",
          port,
          ...(inbound ? { advertise_port: inbound.port } : {}),
          ...(opsPort ? { ops_port: opsPort } : {}),
        },
        log_level: process.env["MC_CHAOS_LOG_LEVEL"] ?? "info",
      }),
      { mode: 0o600 },
    );
    const env: NodeJS.ProcessEnv = { ...process.env, MC_EVENT_LOG: join(o.dir, "events.jsonl"), MC_ORACLE: o.oracle };
    let clockFile: string | null = null;
    if (o.faketime) {
      clockFile = join(o.dir, `${name}.faketime`);
      writeFileSync(clockFile, "+0\n");
      // Only the wall clock moves; timers and performance.now() stay on the real monotonic clock.
      Object.assign(env, {
        LD_PRELOAD: FAKETIME_LIB,
        FAKETIME_TIMESTAMP_FILE: clockFile,
        FAKETIME_DONT_FAKE_MONOTONIC: "1",
        FAKETIME_CACHE_DURATION: "1",
      });
    }
    const args = [CLI, "start", "--config", config, "--role", role, "--name", name];
    // Unsupervised unless the scenario asks for it: kill -9 of the spawned process then kills the node
    // itself, and the detectors' timeout path stays what the older scenarios measure.
    if (role === "coreapp" && o.watchdog) args.push("--watchdog");
    else if (!o.supervise) args.push("--no-supervise");
    const log = openSync(join(o.dir, `${name}.log`), "a");
    const child = spawn(process.execPath, args, { stdio: ["ignore", log, log], env });
    const node: ChaosNode = { name, role, child, storeProxy, inbound, clockFile, opsPort };
    this.nodes.push(node);
    return node;
  }

  /** Stops every node (see `stopNodes`) and closes the proxies. */
  async stop(extraPids: number[] = []): Promise<void> {
    const proxies = this.nodes.flatMap((n) => [n.storeProxy, n.inbound]).filter((p) => p !== null);
    for (const p of proxies) p.set({ kind: "pass" });
    await this.stopNodes(extraPids);
    await Promise.all(proxies.map((p) => p.close()));
  }

  /** Faults injected by every proxy so far. */
  proxyFaults(): number {
    return this.nodes.reduce((sum, n) => sum + (n.storeProxy?.faults ?? 0) + (n.inbound?.faults ?? 0), 0);
  }
}

/**
 * A node exited before the cluster was ready: the run never had the cluster it meant to test (a
 * port taken in the meantime, say). The runner starts such a run again rather than judge it.
 */
export class NodeStartError extends Error {
  constructor(
    readonly node: string,
    readonly lastLine: string,
  ) {
    super(`${node} exited before the cluster was ready: ${lastLine}`);
  }
}

/** Every cluster not stopped yet (see `killAllNodes`). */
const live = new Set<NodeCluster<NodeProcess>>();

/** Kills (SIGKILL) every node of every cluster not stopped yet. Synchronous, for exit handlers. */
export function killAllNodes(): void {
  for (const c of live) for (const n of c.nodes) n.child.kill("SIGKILL");
}

/**
 * Makes SIGINT and SIGTERM kill every node of every running cluster before this process exits: the
 * nodes are ordinary children, and an interrupted runner would otherwise leave whole clusters
 * running (and loading the machine) behind it. A supervised coreapp's child dies with its supervisor.
 * `also` runs first (the runner passes the signal on to its worker processes).
 */
export function killClustersOnExit(also: () => void = () => {}): void {
  // `on`, not `once`: a second signal (a runner that forwards the one its worker also got) must not
  // find the default action, which would end this process before it has killed its nodes.
  let exiting = false;
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      if (exiting) return;
      exiting = true;
      also();
      killAllNodes();
      process.exit(130);
    });
  }
}

/** Sends `sig` to `pid`, ignoring a process that is already gone. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already exited
  }
}

/**
 * Sends `sig` to every process of a store server: its process group (`group`, a negative pid, as
 * `PrivateServer.pid` gives it) and every descendant of the group's leader that left the group.
 * PostgreSQL's backends each call setsid() when forked, so the postmaster's group holds the
 * postmaster alone: a group SIGSTOP used to freeze the postmaster while every open connection went
 * on being served (the store-pause scenarios paused nothing the nodes used), and a group SIGKILL left
 * the backends running until they noticed. The descendants are listed both before the group is
 * signalled (a killed leader's children are reparented at once and are no longer found under it)
 * and after (a leader that forked meanwhile; once stopped, it forks nothing more).
 */
export function signalServer(group: number, sig: NodeJS.Signals): void {
  const before = descendantsOf(-group);
  signal(group, sig);
  for (const pid of new Set([...before, ...descendantsOf(-group)])) signal(pid, sig);
}

/** Every live descendant of `root`, from /proc (children, their children, …). */
function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited while listed
    }
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ")".
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const found: number[] = [];
  for (let queue = [root]; queue.length > 0;) {
    const next = children.get(queue.pop()!) ?? [];
    found.push(...next);
    queue.push(...next);
  }
  return found;
}
