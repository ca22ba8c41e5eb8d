import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { loadConfigFile } from "../config/load.js";
import type { Role } from "../config/schema.js";
import type { CoreappApplication } from "../core/coreapp/application.js";
import { ConfigError } from "../core/errors.js";
import { createEchoApp } from "../example/echo-app.js";
import { Coreapp } from "../nodes/coreapp.js";
import { createNode } from "../nodes/compose.js";
import { watchdogDeadlineMs } from "../watchdog/deadline.js";
import { petSupervisor } from "../watchdog/pet.js";
import { supervise, takeSupervision } from "../watchdog/supervisor.js";
import { reportTokensToSupervisor } from "../watchdog/tokens.js";
import { ExitReleaser } from "../nodes/exit-release.js";
import { requireStoreDriver } from "../nodes/open-store.js";
import type { Config } from "../config/load.js";

export interface StartOptions {
  config: string;
  role?: Role;
  name?: string;
  port?: number;
  /** The operations endpoint's port (overrides node.ops_port). */
  opsPort?: number;
  /** A module whose default export is a CoreappApplication, or a function (name) => CoreappApplication. */
  app?: string;
  /**
   * Run the node as the child of a supervisor that, when the child dies without a clean shutdown,
   * gives its leases back at once and tells the masters (crash failover, docs/safety.md). Default
   * true; `--no-supervise` runs the node in this process (a dead node's leases then lapse).
   */
  supervise?: boolean;
  /** Also SIGKILL the node when its event loop freezes (the watchdog); implies the supervisor. */
  watchdog?: boolean;
  /** The watchdog's deadline in ms (default: derived from the cluster settings, see watchdog/deadline.ts). */
  watchdogDeadline?: number;
}

/** `multiconnect start`: runs one node in this process until SIGTERM or SIGINT. */
export async function startCommand(o: StartOptions): Promise<void> {
  const config = loadConfigFile(o.config);
  if (o.watchdog && o.supervise === false)
    throw new ConfigError("--no-supervise", "cannot be combined with --watchdog: the watchdog is the supervisor");
  if (o.watchdogDeadline !== undefined && !o.watchdog)
    throw new ConfigError("--watchdog-deadline", "is the watchdog's: give --watchdog too");
  // The supervisor runs this same command as its child, marked in its environment; the child runs the node.
  const supervision = takeSupervision();
  if ((o.supervise !== false || o.watchdog) && !supervision) {
    process.exit(await runSupervisor(o, config));
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
  // Before start(): the liveness record written at start is already the supervisor's to remove.
  if (supervision) reportTokensToSupervisor(node);
  await node.start();
  // Armed only now: loading drivers (etcd's protobuf parsing) blocks the event loop for longer than a
  // deadline, and a node that has not started holds no shard.
  if (supervision?.petIntervalMs) {
    const petNow = petSupervisor(supervision.petIntervalMs, node instanceof Coreapp ? node : undefined);
    // At once when the risk changes: named (before it takes the lease), acquired (the tenure's
    // deadline, before onPromote can open anything) and demoted (tenure closed).
    if (node instanceof Coreapp) node.on("owner", (e) => e.type !== "promoted" && petNow());
  }
  process.stderr.write(`multiconnect: ${name} (${node.id}) started as ${role}\n`);
}

/**
 * The supervisor's side of `start`: opens the connections a release needs (in the background: the
 * child starts at once, and a supervisor that cannot open them still supervises; its child's leases
 * then lapse as without it), runs the child, and after a death releases what it held.
 */
async function runSupervisor(o: StartOptions, config: Config): Promise<number> {
  // A missing driver is one clear line and exit 2 here, as without the supervisor, not a child's failure.
  await requireStoreDriver(config.store.backend);
  const name = o.name ?? config.node.name ?? o.role ?? config.node.role ?? "node";
  const log = (line: string) => process.stderr.write(`multiconnect: ${line}\n`);
  const watchdog = o.watchdog ? { deadlineMs: o.watchdogDeadline ?? watchdogDeadlineMs(config.settings) } : undefined;
  log(
    watchdog
      ? `supervising ${name} with a watchdog: ${watchdog.deadlineMs} ms pet deadline; in a shard tenure, halfway from the lease's deadline to its expiry`
      : `supervising ${name}: its leases are released at once if it dies`,
  );
  const releaser = ExitReleaser.open(config, { name: `${name}-supervisor` }).catch((e: unknown) => {
    log(`supervisor: cannot open the store (${String(e)}); a crash of ${name} will take the timeout path`);
    return null;
  });
  const code = await supervise({
    argv: process.argv.slice(1),
    log,
    ...(watchdog ? { watchdog } : {}),
    onDeath: async (tokens, exit) => {
      const r = await releaser;
      if (!tokens || !r) {
        log(`${name} ${exit.cause}; nothing to release (no tokens reported or no store)`);
        return;
      }
      const begun = performance.now();
      const done = await r.release(tokens, exit.cause);
      log(
        `${name} (${tokens.node}) ${exit.cause}; released [${done.released.join(", ")}]` +
          (done.failed.length ? `, not released [${done.failed.join(", ")}] (they lapse)` : "") +
          `, record ${done.recordRemoved ? "removed" : "kept"}, notified ${done.notified.length} master(s); from the exit notice: release begun +${Math.round(begun - exit.at)} ms, ` +
          `leases released +${Math.round(begun - exit.at + done.ms.released)} ms, masters notified +${Math.round(begun - exit.at + done.ms.notified)} ms`,
      );
    },
  });
  await (await releaser)?.close().catch(() => {});
  return code;
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
