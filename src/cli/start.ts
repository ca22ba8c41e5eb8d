import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { loadConfigFile } from "../config/load.js";
import type { Role } from "../config/schema.js";
import type { CoreappApplication } from "../core/coreapp/application.js";
import { ConfigError } from "../core/errors.js";
import { createEchoApp } from "../example/echo-app.js";
import { Coreapp } from "../nodes/coreapp.js";
import { createNode } from "../nodes/compose.js";
import { watchdogDeadlineMs, watchdogTenureGraceMs } from "../watchdog/deadline.js";
import { petWatchdogIfSupervised } from "../watchdog/pet.js";
import { superviseWithWatchdog } from "../watchdog/supervisor.js";

export interface StartOptions {
  config: string;
  role?: Role;
  name?: string;
  port?: number;
  /** The operations endpoint's port (overrides node.ops_port). */
  opsPort?: number;
  /** A module whose default export is a CoreappApplication, or a function (name) => CoreappApplication. */
  app?: string;
  /** Run the node under a watchdog supervisor that SIGKILLs it when its event loop freezes. */
  watchdog?: boolean;
  /** The watchdog's deadline in ms (default: derived from the cluster settings, see watchdog/deadline.ts). */
  watchdogDeadline?: number;
}

/** `multiconnect start`: runs one node in this process until SIGTERM or SIGINT. */
export async function startCommand(o: StartOptions): Promise<void> {
  const config = loadConfigFile(o.config);
  // The supervisor runs this same command as its child; the child (which has an IPC channel) runs the node.
  if (o.watchdog && !process.send) {
    const deadlineMs = o.watchdogDeadline ?? watchdogDeadlineMs(config.settings);
    const log = (line: string) => process.stderr.write(`multiconnect: ${line}\n`);
    const tenureGraceMs = watchdogTenureGraceMs(config.settings);
    log(
      `watchdog: supervising ${o.name ?? config.node.name ?? "node"} with a ${deadlineMs} ms deadline and a ${tenureGraceMs} ms tenure grace`,
    );
    process.exit(await superviseWithWatchdog({ argv: process.argv.slice(1), deadlineMs, tenureGraceMs, log }));
  }
  const role = o.role ?? config.node.role;
  const name = o.name ?? config.node.name ?? role ?? "node";
  if (role === "webapp" && !config.webapp.listen) {
    throw new ConfigError(
      "webapp.listen",
      "is false, but a webapp run by the CLI has no host server to serve through: it would answer nothing",
    );
  }
  const app = role === "coreapp" ? await loadApp(o.app, name) : undefined;
  const node = await createNode({ config, role, name, port: o.port, app, ...(o.opsPort === undefined ? {} : { opsPort: o.opsPort }) });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`multiconnect: ${name}: ${signal}, leaving the cluster\n`);
    void node.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  await node.start();
  // Armed only now: loading drivers (etcd's protobuf parsing) blocks the event loop for longer than a
  // deadline, and a node that has not started holds no shard.
  const petNow = petWatchdogIfSupervised(node instanceof Coreapp ? node : undefined);
  if (petNow && node instanceof Coreapp) node.on("owner", (e) => e.type === "demoted" && petNow());
  process.stderr.write(`multiconnect: ${name} (${node.id}) started as ${role}\n`);
}

async function loadApp(module: string | undefined, name: string): Promise<CoreappApplication> {
  if (!module) return createEchoApp({ name, eventLog: process.env["MC_EVENT_LOG"], upstream: process.env["MC_ORACLE"] });
  const loaded = (await import(pathToFileURL(resolve(module)).href)) as { default?: unknown };
  const exported = loaded.default;
  const app = typeof exported === "function" ? (exported as (n: string) => CoreappApplication)(name) : exported;
  const ok =
    app &&
    typeof app === "object" &&
    ["onPromote", "onDemote", "handle"].every((k) => typeof (app as Record<string, unknown>)[k] === "function");
  if (!ok)
    throw new ConfigError(
      "--app",
      `${module} must export by default an object (or a function returning one) with onPromote, onDemote and handle`,
    );
  return app as CoreappApplication;
}
