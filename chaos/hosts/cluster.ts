import { spawn } from "node:child_process";
import { openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { DEFAULT_PORTS } from "../../src/nodes/compose.js";
import type { Backend, Endpoint } from "../backends.js";
import { CLI, NodeCluster, type NodeProcess, type Role } from "../cluster.js";
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
export interface HostNode extends NodeProcess {
  readonly host: Host;
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
export class HostCluster extends NodeCluster<HostNode> {
  constructor(readonly o: HostClusterOptions) {
    // 90 s: on this shared 2-core machine at load average 45–55 seven nodes took 25–40 s to get
    // ready, and one run at 45 s was lost to it (a harness accident, not a finding).
    super(o.dir, 90_000);
  }

  protected webappUrl(webapp: string): string {
    return `http://${this.host(webapp).ip}:${DEFAULT_PORTS.webapp}`;
  }

  host(name: string): Host {
    const h = this.o.hosts.get(name);
    if (!h) throw new Error(`no host for node ${name}`);
    return h;
  }

  async start(): Promise<void> {
    for (const name of this.o.hosts.keys()) this.spawn(name.replace(/-\d+$/, "") as Role, name);
  }

  /** Starts node `name` on its host: `ip netns exec` runs the CLI there with the host's identity. */
  spawn(role: Role, name: string): HostNode {
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

  /** Stops every node (see `stopNodes`): the next run binds the same ports on the same hosts. */
  async stop(extraPids: number[] = []): Promise<void> {
    await this.stopNodes(extraPids);
  }
}
