import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, readdirSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import type { ClusterStatus } from "../../src/nodes/cluster-status.js";
import { freePort } from "../../src/testing/net.js";

/** The built CLI: integration tests run the same binary a user runs (`npm test` builds it first). */
export const CLI = resolve("dist/cli/main.js");

/** Milliseconds on CLOCK_MONOTONIC, the clock the example app stamps its event log with. */
export const monoNow = (): number => Number(process.hrtime.bigint()) / 1e6;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One line of the example app's event log. */
export interface AppEvent {
  t: number;
  node: string;
  pid: number;
  type: "promote" | "demote" | "request";
  shard: number;
  epoch: number;
}

export interface ProcessNode {
  name: string;
  role: "master" | "coreapp" | "webapp";
  /** The process the harness started: the supervisor when the cluster is supervised, else the node. */
  child: ChildProcess;
  /** Supervised: the node process itself (the supervisor's child), once seen. */
  nodePid?: number;
  /** CLOCK_MONOTONIC ms when the harness killed it (SIGKILL), if it did. */
  killedAt?: number;
  /** When the harness froze it (SIGSTOP) and let it go on (SIGCONT). */
  pausedAt?: number;
  resumedAt?: number;
}

export interface ClusterOptions {
  /** The `store:` section of the config. */
  store: Record<string, unknown>;
  shards?: number;
  settings?: Record<string, string>;
  masters?: number;
  coreapps?: number;
  /** More top-level keys of the config file (e.g. `admin_token`, `node_retention`). */
  extraConfig?: Record<string, unknown>;
  /**
   * Run every node under `multiconnect start`'s supervisor (crash failover), and coreapps also under
   * `--watchdog` when `watchdog` is set. Default false: `--no-supervise`, so that kill9() kills the
   * node itself and the tests of the detectors' timeout path keep meaning what they say.
   */
  supervise?: boolean;
  watchdog?: boolean;
}

/** Short intervals for process-level tests: failover in about 1.5 s. */
export const TEST_SETTINGS = {
  heartbeat_interval: "250ms",
  unhealthy_interval: "1500ms",
  db_heartbeat_interval: "500ms",
  db_unhealthy_interval: "3s",
};

/**
 * A real cluster of node processes started from the built CLI with one config file, as a user
 * would run it. Records when it kills or pauses a node, on the same monotonic clock as the
 * example app's event log, so safety can be checked from the log afterwards.
 */
export class ProcessCluster {
  readonly dir = mkdtempSync(join(tmpdir(), "mc-cluster-"));
  readonly config = join(this.dir, "cluster.yaml");
  readonly eventLog = join(this.dir, "events.jsonl");
  readonly nodes: ProcessNode[] = [];
  webappPort = 0;

  constructor(readonly options: ClusterOptions) {}

  async start(): Promise<void> {
    const o = this.options;
    writeFileSync(
      this.config,
      stringify({
        cluster_name: "itest",
        shards: o.shards ?? 1,
        secret: "integration-test-secret-0123456789",
        settings: o.settings ?? TEST_SETTINGS,
        store: o.store,
        node: { listen_host: "127.0.0.1", external_hostname: "127.0.0.1" },
        log_level: "info",
        ...o.extraConfig,
      }),
    );
    this.webappPort = await freePort();
    for (let i = 1; i <= (o.masters ?? 2); i++) this.spawn("master", `master-${i}`, 0);
    for (let i = 1; i <= (o.coreapps ?? 3); i++) this.spawn("coreapp", `coreapp-${i}`, 0);
    this.spawn("webapp", "webapp-1", this.webappPort);
  }

  /** Starts one node process; `env` adds to the harness's environment (e.g. MULTICONNECT_TEST_PROTOCOL). */
  spawn(role: ProcessNode["role"], name: string, port: number, env: Record<string, string> = {}): ProcessNode {
    const log = openSync(join(this.dir, `${name}.log`), "a");
    const args = [CLI, "start", "--config", this.config, "--role", role, "--name", name, "--port", String(port)];
    if (!this.options.supervise) args.push("--no-supervise");
    else if (this.options.watchdog && role === "coreapp") args.push("--watchdog");
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", log, log],
      env: { ...process.env, MC_EVENT_LOG: this.eventLog, ...env },
    });
    const node = { name, role, child };
    this.nodes.push(node);
    return node;
  }

  node(name: string): ProcessNode {
    const n = this.nodes.find((x) => x.name === name && x.child.exitCode === null && x.child.signalCode === null);
    if (!n) throw new Error(`no running node ${name}`);
    return n;
  }

  /** Stops a node gracefully (SIGTERM) and waits for it to exit. */
  async stopNode(name: string): Promise<void> {
    const n = this.node(name);
    const exited = new Promise((r) => n.child.once("exit", r));
    n.child.kill("SIGTERM");
    await Promise.race([exited, sleep(10_000)]);
  }

  /** Supervised: the node process (the supervisor's only child), or undefined while it has none. */
  nodePid(n: ProcessNode): number | undefined {
    if (!this.options.supervise) return n.child.pid;
    if (n.nodePid !== undefined) return n.nodePid;
    try {
      const pid = Number(readFileSync(`/proc/${n.child.pid}/task/${n.child.pid}/children`, "utf8").trim().split(/\s+/)[0]);
      if (pid > 0) n.nodePid = pid;
    } catch {
      // not started yet, or gone
    }
    return n.nodePid;
  }

  /** Learns every supervised node's own pid (call once the cluster runs; the event log names those). */
  learnNodePids(): void {
    for (const n of this.nodes) this.nodePid(n);
  }

  /** Supervised: kill -9 of the node process only; its supervisor sees it die. */
  kill9Node(name: string): void {
    const n = this.node(name);
    const pid = this.nodePid(n);
    if (pid === undefined) throw new Error(`${name}: no node process under its supervisor`);
    n.killedAt = monoNow();
    process.kill(pid, "SIGKILL");
  }

  /** Supervised: kill -9 of the supervisor and the node process at the same instant. */
  kill9Both(name: string): void {
    const n = this.node(name);
    const pid = this.nodePid(n);
    if (pid === undefined) throw new Error(`${name}: no node process under its supervisor`);
    n.killedAt = monoNow();
    n.child.kill("SIGKILL");
    process.kill(pid, "SIGKILL");
  }

  /** Supervised: SIGSTOP of the node process only (the supervisor's watchdog sees it freeze). */
  pauseNode(name: string): void {
    const n = this.node(name);
    const pid = this.nodePid(n);
    if (pid === undefined) throw new Error(`${name}: no node process under its supervisor`);
    n.pausedAt = monoNow();
    process.kill(pid, "SIGSTOP");
  }

  kill9(name: string): void {
    const n = this.node(name);
    n.killedAt = monoNow();
    n.child.kill("SIGKILL");
  }

  pause(name: string): void {
    const n = this.node(name);
    n.pausedAt = monoNow();
    n.child.kill("SIGSTOP");
  }

  resume(name: string): void {
    const n = this.node(name);
    n.child.kill("SIGCONT");
    n.resumedAt = monoNow();
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
   * Waits until the health API shows every running master and coreapp registered and healthy,
   * one primary master, and every shard with a connected primary — so the failover bound it
   * reports is the one for the whole cluster.
   */
  async waitReady(timeoutMs = 30_000): Promise<ClusterStatus> {
    const running = (role: ProcessNode["role"]) =>
      this.nodes.filter((n) => n.role === role && n.child.exitCode === null && n.child.signalCode === null).length;
    return this.waitFor(async () => {
      const h = await this.health();
      if (!h?.primary_master) return null;
      const healthy = (test: (n: ClusterStatus["nodes"][number]) => boolean) => h.nodes.filter((n) => n.healthy && test(n)).length;
      if (healthy((n) => n.role.endsWith("master")) < running("master")) return null;
      if (healthy((n) => n.role === "coreapp") < running("coreapp")) return null;
      const connected = h.nodes.filter((n) => n.gateway_status === "connected");
      return connected.length === h.shards.length && h.shards.every((s) => s.owner) ? h : null;
    }, timeoutMs);
  }

  async waitFor<T>(probe: () => Promise<T | null>, timeoutMs: number, stepMs = 50): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (Date.now() > end) throw new Error(`cluster condition not reached in ${timeoutMs} ms; logs in ${this.dir}`);
      await sleep(stepMs);
    }
  }

  /** Sends one request through the webapp; returns the serving node and epoch, or the error. */
  async send(key = "k", body = "hello"): Promise<{ ok: boolean; status: number; node?: string; epoch?: number; text: string }> {
    try {
      const r = await fetch(`http://127.0.0.1:${this.webappPort}/v1/messages`, {
        method: "POST",
        headers: { "x-shard-key": key, "content-type": "text/plain" },
        body,
        signal: AbortSignal.timeout(15_000),
      });
      const text = await r.text();
      const node = r.headers.get("x-multiconnect-node") ?? undefined;
      const epoch = r.headers.has("x-multiconnect-epoch") ? Number(r.headers.get("x-multiconnect-epoch")) : undefined;
      return { ok: r.ok, status: r.status, node, epoch, text };
    } catch (error) {
      return { ok: false, status: 0, text: String(error) };
    }
  }

  events(): AppEvent[] {
    if (!existsSync(this.eventLog)) return [];
    return readFileSync(this.eventLog, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AppEvent);
  }

  /**
   * S1 from the event log: per shard, the intervals during which each coreapp process acted as
   * primary never overlap, and every request was served inside its node's interval. An interval
   * runs from `promote` to `demote`, or to the process's kill; a process frozen by SIGSTOP does
   * nothing, so an interval that a freeze interrupted ends at the freeze — provided the process
   * served nothing after it went on (a request then is reported). Returns the violations.
   */
  overlaps(): string[] {
    type Tenure = { node: string; pid: number; shard: number; epoch: number; from: number; to: number };
    this.learnNodePids();
    const byPid = new Map(this.nodes.flatMap((n) => [[n.child.pid!, n] as const, ...(n.nodePid ? [[n.nodePid, n] as const] : [])]));
    const tenures: Tenure[] = [];
    const open = new Map<string, AppEvent>();
    const events = this.events();
    const close = (p: AppEvent, end: number) => {
      const n = byPid.get(p.pid);
      const froze = n?.pausedAt !== undefined && n.pausedAt > p.t && end > n.pausedAt ? n.pausedAt : end;
      tenures.push({ node: p.node, pid: p.pid, shard: p.shard, epoch: p.epoch, from: p.t, to: Math.min(end, froze) });
    };
    for (const e of events) {
      const k = `${e.pid}/${e.shard}`;
      if (e.type === "promote") open.set(k, e);
      if (e.type === "demote" && open.has(k)) {
        close(open.get(k)!, e.t);
        open.delete(k);
      }
    }
    for (const p of open.values()) close(p, byPid.get(p.pid)?.killedAt ?? Infinity);
    const out: string[] = [];
    for (const a of tenures)
      for (const b of tenures)
        if (a.shard === b.shard && a.pid !== b.pid && a.from <= b.from && b.from < a.to) {
          out.push(
            `shard ${a.shard}: ${a.node}@${a.epoch} [${a.from.toFixed(1)}, ${a.to.toFixed(1)}] overlaps ${b.node}@${b.epoch} from ${b.from.toFixed(1)}`,
          );
        }
    for (const r of events.filter((e) => e.type === "request")) {
      const inside = tenures.some((t) => t.pid === r.pid && t.shard === r.shard && t.epoch === r.epoch && t.from <= r.t && r.t <= t.to);
      if (!inside) out.push(`shard ${r.shard}: ${r.node} served a request at epoch ${r.epoch} outside its tenure (t=${r.t.toFixed(1)})`);
    }
    return out;
  }

  logs(): string {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith(".log"))
      .map((f) => `--- ${f}\n${readFileSync(join(this.dir, f), "utf8").split("\n").slice(-15).join("\n")}`)
      .join("\n");
  }

  async stop(): Promise<void> {
    const running = this.nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
    for (const n of running) {
      n.child.kill("SIGCONT");
      n.child.kill("SIGTERM");
    }
    await Promise.race([
      Promise.all(running.map((n) => new Promise((r) => (n.child.exitCode !== null ? r(null) : n.child.once("exit", r))))),
      sleep(5000),
    ]);
    for (const n of running) n.child.kill("SIGKILL");
  }
}
