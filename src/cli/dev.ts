import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, openSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { formatMs } from "../config/duration.js";
import type { ClusterStatus } from "../nodes/cluster-status.js";
import { requireStoreDriver } from "../nodes/open-store.js";
import { renderStatus } from "./status.js";
import { writeOwnerOnly } from "./support-bundle.js";

export interface DevOptions {
  dir: string;
  shards: number;
  /** Use the product's default intervals instead of the dev cluster's short ones. */
  defaults: boolean;
  webappPort: number;
}

interface DevNode {
  name: string;
  role: "master" | "coreapp" | "webapp";
  port: number;
  /** The operations endpoint (/metrics, /livez, /readyz); the webapp serves them on its own port. */
  opsPort?: number;
  child?: ChildProcess;
}

/** The dev cluster's intervals: the model product's, scaled down so a failover takes seconds. */
const DEV_SETTINGS = { heartbeat_interval: "500ms", unhealthy_interval: "3s", db_heartbeat_interval: "1s", db_unhealthy_interval: "5s" };

/**
 * `multiconnect dev`: 2 masters, 3 coreapps (running the echo example) and 1 webapp as separate
 * processes on one SQLite file, and a live view of roles, shard owners, epochs and failovers.
 * Kill a coreapp (`kill -9 PID`, PIDs are listed) and watch another take its shard.
 */
export async function devCommand(o: DevOptions): Promise<void> {
  // Outside this repository better-sqlite3 is an optional peer: say so once, before any node is spawned.
  await requireStoreDriver("sqlite");
  const dir = resolve(o.dir);
  mkdirSync(join(dir, "logs"), { recursive: true });
  const configPath = writeDevConfig(dir, o);
  const cli = fileURLToPath(new URL("./main.js", import.meta.url));
  const nodes: DevNode[] = [
    { name: "master-1", role: "master", port: 6260, opsPort: 6360 },
    { name: "master-2", role: "master", port: 6261, opsPort: 6361 },
    { name: "coreapp-1", role: "coreapp", port: 6250, opsPort: 6350 },
    { name: "coreapp-2", role: "coreapp", port: 6251, opsPort: 6351 },
    { name: "coreapp-3", role: "coreapp", port: 6252, opsPort: 6352 },
    { name: "webapp-1", role: "webapp", port: o.webappPort },
  ];
  const events: string[] = [];
  const event = (line: string) => {
    events.push(`${new Date().toISOString().slice(11, 23)}  ${line}`);
    if (!process.stdout.isTTY) process.stdout.write(`${events.at(-1)}\n`);
  };
  const deaths = new Map<string, number>();
  for (const n of nodes) {
    const log = openSync(join(dir, "logs", `${n.name}.log`), "a");
    const ops = n.opsPort === undefined ? [] : ["--ops-port", String(n.opsPort)];
    n.child = spawn(
      process.execPath,
      [cli, "start", "--config", configPath, "--role", n.role, "--name", n.name, "--port", String(n.port), ...ops],
      {
        stdio: ["ignore", log, log],
        env: { ...process.env, MC_EVENT_LOG: join(dir, "events.jsonl") },
      },
    );
    n.child.on("exit", (code, signal) => {
      deaths.set(n.name, Date.now());
      event(`${n.name} (pid ${n.child?.pid}) exited (${signal ?? `code ${code}`})`);
    });
  }
  event(`started ${nodes.length} processes; config ${configPath}; logs in ${join(dir, "logs")}`);
  // Each node runs under its supervisor (crash failover): name the node processes themselves, so that
  // `kill -9 <pid>` shows the fast path (killing a supervisor takes its node down by the timeout path).
  setTimeout(
    () => event(`node pids (supervisor pid): ${nodes.map((n) => `${n.name}=${nodePid(n.child?.pid)} (${n.child?.pid})`).join(" ")}`),
    2000,
  ).unref();
  event(`metrics and probes (/metrics, /livez, /readyz): ${nodes.map((n) => `${n.name}=:${n.opsPort ?? n.port}`).join(" ")}`);
  event(`console: http://127.0.0.1:${o.webappPort}/console (admin token for its actions: admin_token in ${configPath})`);

  let stopping = false;
  const stopAll = () => {
    if (stopping) return;
    stopping = true;
    event("stopping the cluster");
    for (const n of nodes) n.child?.kill("SIGTERM");
    setTimeout(() => process.exit(0), 3000).unref();
    void Promise.all(nodes.map((n) => new Promise((r) => (n.child?.exitCode !== null ? r(null) : n.child?.once("exit", r))))).then(() =>
      process.exit(0),
    );
  };
  process.on("SIGINT", stopAll);
  process.on("SIGTERM", stopAll);

  const serving = new Map<number, { node: string; epoch: number }>();
  let lastRender = "";
  while (!stopping) {
    const status = await fetchHealth(o.webappPort);
    if (status) {
      for (const a of status.shards) {
        const primary = status.nodes.find((n) => n.role === "coreapp" && n.gateway_status === "connected" && n.shard === a.shard);
        const before = serving.get(a.shard);
        if (primary && (before?.node !== primary.name || before.epoch !== primary.epoch)) {
          serving.set(a.shard, { node: primary.name, epoch: primary.epoch! });
          const died = before ? deaths.get(before.node) : undefined;
          const after = died
            ? `, ${formatMs(Date.now() - died)} after ${before!.node} died (bound ${formatMs(status.failover_bound_ms)})`
            : "";
          event(
            `shard ${a.shard}: primary ${primary.name} at epoch ${primary.epoch}${before ? ` (was ${before.node} at epoch ${before.epoch})` : ""}${after}`,
          );
        }
      }
      const view = renderStatus(status);
      if (process.stdout.isTTY) {
        const screen = `multiconnect dev cluster — ${dir}\nConsole: http://127.0.0.1:${o.webappPort}/console  Ctrl-C stops it. Try: kill -9 <pid of the connected coreapp>\n\n${view}\nevents:\n${events.slice(-12).join("\n")}\n`;
        if (screen !== lastRender) process.stdout.write(`\x1b[2J\x1b[H${screen}`);
        lastRender = screen;
      } else {
        // Without a terminal, print the tables only when roles or owners change, not every age tick.
        const shape = renderStatus({ ...status, nodes: status.nodes.map((n) => ({ ...n, last_seen_ms: 0 })) });
        if (shape !== lastRender) process.stdout.write(`${view}\n`);
        lastRender = shape;
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function fetchHealth(port: number): Promise<ClusterStatus | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/v1/health`, { signal: AbortSignal.timeout(1000) });
    return r.ok ? ((await r.json()) as ClusterStatus) : null;
  } catch {
    return null;
  }
}

/**
 * Writes the dev cluster's `cluster.yaml` into `dir` (a fresh secret and admin token each time),
 * readable by its owner only, also when an earlier run left the file; returns its path.
 */
export function writeDevConfig(dir: string, o: DevOptions): string {
  const path = join(dir, "cluster.yaml");
  writeOwnerOnly(path, devConfig(dir, o));
  return path;
}

function devConfig(dir: string, o: DevOptions): string {
  const settings = o.defaults
    ? ""
    : `settings:\n${Object.entries(DEV_SETTINGS)
        .map(([k, v]) => `  ${k}: ${v}`)
        .join("\n")}\n`;
  return [
    "# Written by `multiconnect dev`: a local cluster on the embedded SQLite store.",
    "cluster_name: dev",
    `shards: ${o.shards}`,
    `secret: ${randomBytes(24).toString("hex")}`,
    // The console's actions (switchover, pause) need it; the file is readable by its owner only.
    `admin_token: ${randomBytes(24).toString("hex")}`,
    settings.trimEnd(),
    "store:",
    "  backend: sqlite",
    `  path: ${JSON.stringify(join(dir, "cluster.db"))}`,
    // Killed processes' records stay behind (shown as down); with the dev intervals they go after a minute.
    o.defaults ? "" : "node_retention: 1m",
    "node:",
    "  listen_host: 127.0.0.1",
    "  external_hostname: 127.0.0.1",
    "",
  ]
    .filter((l) => l !== "")
    .join("\n")
    .concat("\n");
}

/** The supervised node process of supervisor `pid` (its only child, from Linux's /proc), else `pid` itself. */
function nodePid(pid: number | undefined): string {
  if (pid === undefined) return "?";
  try {
    const child = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)[0];
    return child || String(pid);
  } catch {
    return String(pid);
  }
}
