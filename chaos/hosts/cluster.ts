import { spawn, type ChildProcess } from "node:child_process";
import { openSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { ClusterStatus } from "../../src/nodes/cluster-status.js";
import { DEFAULT_PORTS } from "../../src/nodes/compose.js";
import { monoNow } from "../../src/testing/oracle.js";
import type { Backend, Endpoint } from "../backends.js";
import { CLI, NodeStartError, signal, sleep } from "../cluster.js";
import type { Host } from "./bed.js";

/**
 * The bed's failure-detection settings: twice the single-machine harness's (chaos/cluster.ts), a
 * lease TTL of 2.5 s. A network between hosts has real round trips (the store-delay scenario adds
 * 300 ± 100 ms each way), and the bed's seven processes plus the harness on a 2-core machine are
 * starved often; with the harness's 1.25 s TTL the first trials at load average ~20 saw coreapps
 * that no fault touched miss renewals. Still far below the product's defaults (5 s / 30 s).
 */
export const HOST_SETTINGS = {
  heartbeat_interval: "500ms",
  unhealthy_interval: "3s",
  db_heartbeat_interval: "1s",
  db_unhealthy_interval: "6s",
};

/** One node process on its own host. */
export interface HostNode {
  readonly name: string;
  readonly role: "master" | "coreapp" | "webapp";
  readonly host: Host;
  readonly child: ChildProcess;
}

/** A response the client saw, and which webapp answered it. */
export interface HostSample {
  readonly sentAt: number;
  readonly doneAt: number;
  readonly ok: boolean;
  readonly status: number;
  readonly webapp: string;
  readonly node?: string;
  readonly epoch?: number;
}

/** What a host cluster is made of. */
export interface HostClusterOptions {
  readonly backend: Backend;
  readonly dir: string;
  readonly ns: string;
  /** The store as every host dials it (the store host's proxy). */
  readonly store: Endpoint;
  readonly oracle: string;
  /** Host per node name (master-1, coreapp-1, webapp-1, …). */
  readonly hosts: ReadonlyMap<string, Host>;
}

/**
 * A cluster laid out as in production: one node per host (network namespace), every node on its
 * role's default port (master 6260, coreapp 6250, webapp 9090: no `node.port` in the config, so the
 * product's defaults are what is tested), `EXTERNAL_HOSTNAME` set to the host's name, listening on
 * every address of its host. The client (load generator) sits on the internet side and talks to the
 * webapps by address.
 */
export class HostCluster {
  readonly nodes: HostNode[] = [];
  readonly samples: HostSample[] = [];
  /** The webapps the client sends through, in order of preference (a client with a list of endpoints). */
  clientWebapps: string[] = ["webapp-1"];
  private loadRunning = false;
  private loadDone: Promise<void> | null = null;
  private readonly secret = `chaos-${Math.random().toString(36).slice(2)}-secret-value`;

  constructor(readonly o: HostClusterOptions) {
    liveClusters.add(this);
  }

  host(name: string): Host {
    const h = this.o.hosts.get(name);
    if (!h) throw new Error(`no host for node ${name}`);
    return h;
  }

  async start(): Promise<void> {
    for (const name of this.o.hosts.keys()) this.spawn(name.replace(/-\d+$/, "") as HostNode["role"], name);
  }

  /** Starts node `name` on its host: `ip netns exec` runs the CLI there with the host's identity. */
  spawn(role: HostNode["role"], name: string): HostNode {
    const { o } = this;
    const host = this.host(name);
    const config = join(o.dir, `${name}.yaml`);
    writeFileSync(
      config,
      stringify({
        cluster_name: "chaos-hosts",
        shards: 1,
        secret: this.secret,
        settings: HOST_SETTINGS,
        store: o.backend.store(o.ns, o.store, o.dir),
        log_level: process.env["MC_CHAOS_LOG_LEVEL"] ?? "info",
      }),
      { mode: 0o600 },
    );
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      EXTERNAL_HOSTNAME: host.name,
      MC_EVENT_LOG: join(o.dir, "events.jsonl"),
      MC_ORACLE: o.oracle,
    };
    const log = openSync(join(o.dir, `${name}.log`), "a");
    // `ip netns exec` execs the command in place: the child's pid is the node's own.
    const child = spawn(
      "ip",
      ["netns", "exec", host.netns, process.execPath, CLI, "start", "--config", config, "--role", role, "--name", name],
      {
        stdio: ["ignore", log, log],
        env,
      },
    );
    const node: HostNode = { name, role, host, child };
    this.nodes.push(node);
    return node;
  }

  node(name: string): HostNode {
    const n = this.nodes.filter((x) => x.name === name).at(-1);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  running(role?: HostNode["role"]): HostNode[] {
    return this.nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null && (!role || n.role === role));
  }

  /** `GET /v1/health` from the first webapp that answers. */
  async health(): Promise<ClusterStatus | null> {
    for (const w of ["webapp-1", "webapp-2"]) {
      if (!this.o.hosts.has(w)) continue;
      try {
        const r = await fetch(`${this.url(w)}/v1/health`, { signal: AbortSignal.timeout(2000) });
        if (r.ok) return (await r.json()) as ClusterStatus;
      } catch {
        // try the next one
      }
    }
    return null;
  }

  private url(webapp: string): string {
    return `http://${this.host(webapp).ip}:${DEFAULT_PORTS.webapp}`;
  }

  /**
   * Waits until every shard has a connected primary and every running master and webapp is healthy.
   * 90 s: on this shared 2-core machine at load average 45–55 seven nodes took 25–40 s to get there,
   * and one run at 45 s was lost to it (a harness accident, not a finding).
   */
  async waitReady(timeoutMs = 90_000): Promise<ClusterStatus> {
    return this.waitFor(async () => {
      const dead = this.nodes.find((n) => n.child.exitCode !== null || n.child.signalCode !== null);
      if (dead) throw new NodeStartError(dead.name, this.lastLogLine(dead.name));
      const h = await this.health();
      if (!h?.primary_master) return null;
      const masters = h.nodes.filter((n) => (n.role === "primary_master" || n.role === "secondary_master") && n.healthy);
      if (masters.length < this.running("master").length) return null;
      const webapps = h.nodes.filter((n) => n.role === "webapp" && n.healthy);
      if (webapps.length < this.running("webapp").length) return null;
      const connected = h.nodes.filter((n) => n.gateway_status === "connected");
      return connected.length === h.shards.length && h.shards.every((s) => s.owner) ? h : null;
    }, timeoutMs);
  }

  async waitFor<T>(probe: () => Promise<T | null>, timeoutMs: number, stepMs = 50): Promise<T> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (performance.now() > end) throw new Error(`cluster condition not reached in ${timeoutMs} ms; logs in ${this.o.dir}`);
      await sleep(stepMs);
    }
  }

  /** Sends a request every `everyMs` through the first of `clientWebapps` (at most `maxInflight` at once). */
  startLoad(everyMs = 50, maxInflight = 400): void {
    this.loadRunning = true;
    let inflight = 0;
    const pending = new Set<Promise<void>>();
    this.loadDone = (async () => {
      while (this.loadRunning) {
        if (inflight < maxInflight) {
          inflight++;
          const p = this.send(this.clientWebapps[0]!).then((s) => {
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

  private async send(webapp: string): Promise<HostSample> {
    const sentAt = monoNow();
    try {
      const r = await fetch(`${this.url(webapp)}/v1/messages`, {
        method: "POST",
        headers: { "x-shard-key": "k", "content-type": "text/plain" },
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
        webapp,
        ...(node ? { node } : {}),
        ...(epoch !== undefined ? { epoch } : {}),
      };
    } catch {
      return { sentAt, doneAt: monoNow(), ok: false, status: 0, webapp };
    }
  }

  private lastLogLine(name: string): string {
    return (
      readFileSync(join(this.o.dir, `${name}.log`), "utf8")
        .trim()
        .split("\n")
        .at(-1) ?? ""
    );
  }

  /** The last lines of every node's log, for a failed run's report. */
  logs(lines = 20): string {
    return readdirSync(this.o.dir)
      .filter((f) => f.endsWith(".log"))
      .map((f) => `--- ${f}\n${readFileSync(join(this.o.dir, f), "utf8").split("\n").slice(-lines).join("\n")}`)
      .join("\n");
  }

  /** Stops every node (SIGTERM, then SIGKILL after 3 s); `extraPids` (upstream sessions' owners) are killed too. */
  async stop(extraPids: number[] = []): Promise<void> {
    liveClusters.delete(this);
    await this.stopLoad();
    const running = this.running();
    for (const n of running) {
      n.child.kill("SIGCONT");
      n.child.kill("SIGTERM");
    }
    await Promise.race([
      Promise.all(running.map((n) => new Promise((r) => (n.child.exitCode !== null ? r(null) : n.child.once("exit", r))))),
      sleep(3000),
    ]);
    for (const n of running) n.child.kill("SIGKILL");
    for (const pid of extraPids) signal(pid, "SIGKILL");
    // The next run binds the same ports on the same hosts: wait until every process is gone.
    await Promise.all(
      running.map(
        (n) => new Promise((r) => (n.child.exitCode !== null || n.child.signalCode !== null ? r(null) : n.child.once("exit", r))),
      ),
    );
  }
}

/** Clusters not stopped yet: `killAllNodes` ends their processes when the runner is interrupted. */
const liveClusters = new Set<HostCluster>();

/** Kills (SIGKILL) every node of every cluster not stopped yet. Synchronous, for exit handlers. */
export function killAllNodes(): void {
  for (const c of liveClusters) for (const n of c.nodes) n.child.kill("SIGKILL");
}
