import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, closeSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import type { ClusterStatus } from "../../src/nodes/cluster-status.js";
import { freePort } from "../../src/testing/net.js";
import { monoNow, sleep } from "./clock.js";
import { JsonLog, type PinoLine } from "./logs.js";
import type { BenchStore } from "./stores.js";

/** The built CLI: the benchmark runs the same binary a user runs (`npm run bench` builds it first). */
export const CLI = resolve("dist/cli/main.js");

/** The four cluster settings, as written in a config file. */
export interface Settings {
  readonly heartbeat_interval: string;
  readonly unhealthy_interval: string;
  readonly db_heartbeat_interval: string;
  readonly db_unhealthy_interval: string;
}

/** One line of the example app's event log (MC_EVENT_LOG), stamped on CLOCK_MONOTONIC. */
export interface AppEvent {
  readonly t: number;
  readonly node: string;
  readonly pid: number;
  readonly type: "promote" | "demote" | "request";
  readonly shard: number;
  readonly epoch: number;
}

/** The three kinds of node. */
export type Role = "master" | "coreapp" | "webapp";

/** A node process of a bench cluster. */
export interface BenchNode {
  readonly name: string;
  readonly role: Role;
  readonly child: ChildProcess;
  /** Its pino log (stderr), parsed incrementally. */
  readonly log: JsonLog<PinoLine>;
  readonly logPath: string;
  /** When the harness killed it, on both clocks. */
  killed?: { mono: number; wall: number };
  readonly exited: Promise<void>;
}

/** What a bench cluster is made of. */
export interface BenchClusterOptions {
  readonly store: BenchStore;
  readonly settings: Settings;
  /** Where the cluster's directory (config, logs, event log) is created. */
  readonly parentDir: string;
  readonly shards?: number;
  readonly masters?: number;
  readonly coreapps?: number;
  /**
   * Whether the example app writes its event log. It costs one synchronous file append per request,
   * so it is on for the failover and switchover runs (which need its stamps) and off for throughput.
   */
  readonly eventLog: boolean;
  /** Extra `node` flags for processes of one role (e.g. `--cpu-prof` for the webapp). */
  readonly execArgv?: Partial<Record<Role, string[]>>;
  readonly logLevel?: "info" | "warn";
  /** Start a webapp (default true; the peers item runs masters only). */
  readonly webapp?: boolean;
  /** Run every node under `multiconnect start`'s supervisor (crash failover); default `--no-supervise`. */
  readonly supervise?: boolean;
}

/** A free TCP port on the loopback interface. */
export { freePort };

/** Parses a duration as the config file writes it ("500ms", "3s") into milliseconds. */
export function durationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(text);
  if (!m) throw new Error(`bench: cannot parse duration ${text}`);
  return Number(m[1]) * (m[2] === "s" ? 1000 : 1);
}

/**
 * A real cluster of node processes started from the built CLI with one config file, as a user runs
 * it (the same idea as test/support/process-cluster.ts, plus what a long benchmark session needs:
 * replacement coreapps under fresh names, incremental log reading, kill stamps on both clocks).
 */
export class BenchCluster {
  readonly dir: string;
  readonly config: string;
  readonly eventLogPath: string;
  readonly events: JsonLog<AppEvent>;
  readonly nodes: BenchNode[] = [];
  webappPort = 0;
  private readonly counts: Record<Role, number> = { master: 0, coreapp: 0, webapp: 0 };

  constructor(readonly o: BenchClusterOptions) {
    this.dir = mkdtempSync(join(o.parentDir, `${o.store.backend}-`));
    this.config = join(this.dir, "cluster.yaml");
    this.eventLogPath = join(this.dir, "events.jsonl");
    this.events = new JsonLog<AppEvent>(this.eventLogPath, false);
  }

  /** Writes the config file and starts the masters, the coreapps and one webapp. */
  async start(): Promise<void> {
    const o = this.o;
    writeFileSync(
      this.config,
      stringify({
        cluster_name: "bench",
        shards: o.shards ?? 1,
        secret: "benchmark-secret-0123456789abcdef",
        settings: o.settings,
        store: o.store.section,
        node: { listen_host: "127.0.0.1", external_hostname: "127.0.0.1" },
        log_level: o.logLevel ?? "info",
      }),
    );
    this.webappPort = await freePort();
    for (let i = 0; i < (o.masters ?? 2); i++) this.spawnNode("master");
    for (let i = 0; i < (o.coreapps ?? 3); i++) this.spawnNode("coreapp");
    if (o.webapp ?? true) this.spawn("webapp", "webapp-1", this.webappPort);
  }

  /** Starts one more coreapp under a fresh name (a restarted process is a new node to the cluster). */
  spawnCoreapp(): BenchNode {
    return this.spawnNode("coreapp");
  }

  /** Starts one more node of `role` under a fresh name (`role-N`). */
  spawnNode(role: "master" | "coreapp"): BenchNode {
    return this.spawn(role, `${role}-${++this.counts[role]}`, 0);
  }

  spawn(role: Role, name: string, port: number): BenchNode {
    const logPath = join(this.dir, `${name}.log`);
    const fd = openSync(logPath, "a");
    const child = spawn(
      process.execPath,
      [
        ...(this.o.execArgv?.[role] ?? []),
        CLI,
        "start",
        "--config",
        this.config,
        "--role",
        role,
        "--name",
        name,
        "--port",
        String(port),
        ...(this.o.supervise ? [] : ["--no-supervise"]),
      ],
      { stdio: ["ignore", fd, fd], env: { ...process.env, ...(this.o.eventLog ? { MC_EVENT_LOG: this.eventLogPath } : {}) } },
    );
    closeSync(fd);
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    const node: BenchNode = { name, role, child, log: new JsonLog<PinoLine>(logPath), logPath, exited };
    this.nodes.push(node);
    return node;
  }

  /** The nodes still running (of one role). */
  live(role?: Role): BenchNode[] {
    return this.nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null && !n.killed && (!role || n.role === role));
  }

  node(name: string): BenchNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`bench: no node ${name}`);
    return n;
  }

  /** kill -9, stamped just before the signal on both clocks. */
  kill9(name: string): { mono: number; wall: number } {
    const n = this.node(name);
    const stamp = { wall: Date.now(), mono: monoNow() };
    n.killed = stamp;
    n.child.kill("SIGKILL");
    return stamp;
  }

  /**
   * Supervised clusters: kill -9 of the node process only (the supervisor's child), stamped just
   * before the signal; `alsoSupervisor` kills its supervisor in the same instant (the timeout path).
   */
  kill9Node(name: string, alsoSupervisor = false): { mono: number; wall: number } {
    const n = this.node(name);
    const children = readFileSync(`/proc/${n.child.pid}/task/${n.child.pid}/children`, "utf8").trim().split(/\s+/).map(Number);
    if (!(children[0]! > 0)) throw new Error(`bench: ${name} has no node process under its supervisor`);
    const stamp = { wall: Date.now(), mono: monoNow() };
    n.killed = stamp;
    if (alsoSupervisor) n.child.kill("SIGKILL");
    process.kill(children[0]!, "SIGKILL");
    return stamp;
  }

  async health(): Promise<ClusterStatus | null> {
    try {
      const r = await fetch(`http://127.0.0.1:${this.webappPort}/v1/health`, { signal: AbortSignal.timeout(2000) });
      return r.ok ? ((await r.json()) as ClusterStatus) : null;
    } catch {
      return null;
    }
  }

  /**
   * Polls `probe` every `stepMs` until it returns a value. `waitingFor`, when given, says what the
   * probe still waits for, so a timeout explains itself.
   */
  async waitFor<T>(probe: () => Promise<T | null>, timeoutMs: number, stepMs = 50, waitingFor?: () => string): Promise<T> {
    const end = monoNow() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (monoNow() > end) {
        const why = waitingFor ? ` (still waiting for ${waitingFor()})` : "";
        throw new Error(`bench: cluster condition not reached in ${timeoutMs} ms${why}; logs in ${this.dir}`);
      }
      await sleep(stepMs);
    }
  }

  /**
   * Waits until the cluster is steady: a primary master, every shard owned by a running coreapp
   * that serves it (gateway connected), and every running coreapp registered with a fresh record.
   */
  async waitSteady(timeoutMs = 60_000): Promise<ClusterStatus> {
    let waitingFor = "";
    const notYet = (what: string) => {
      waitingFor = what;
      return null;
    };
    return this.waitFor(
      async () => {
        const h = await this.health();
        if (!h) return notYet("an answer from the webapp's /v1/health");
        if (!h.primary_master) return notYet("a primary master");
        const live = new Set(this.live("coreapp").map((n) => n.name));
        for (const name of live) {
          const records = h.nodes.filter((n) => n.name === name);
          if (!records.some((n) => n.healthy)) {
            const seen = records.map((n) => `${n.id} last seen ${n.last_seen_ms} ms ago`).join(", ");
            return notYet(`a fresh liveness record of ${name} (${seen || "none"})`);
          }
        }
        for (const s of h.shards) {
          const owner = h.nodes.find((n) => n.id === s.owner);
          if (!owner || !live.has(owner.name)) return notYet(`a running coreapp to own shard ${s.shard} (owner ${s.owner ?? "none"})`);
          if (owner.gateway_status !== "connected")
            return notYet(`${owner.name} to serve shard ${s.shard} (${owner.gateway_status ?? "no gateway status"})`);
          if (owner.epoch !== s.epoch)
            return notYet(`${owner.name}'s record to show shard ${s.shard}'s epoch ${s.epoch} (it shows ${owner.epoch ?? "none"})`);
        }
        return h;
      },
      timeoutMs,
      100,
      () => waitingFor,
    );
  }

  /** Stops every running node gracefully (SIGTERM), then forcibly after 5 s. */
  async stop(): Promise<void> {
    const running = this.nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
    for (const n of running) n.child.kill("SIGTERM");
    await Promise.race([Promise.all(running.map((n) => n.exited)), sleep(5000)]);
    for (const n of running) if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill("SIGKILL");
  }
}
