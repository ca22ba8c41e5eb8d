#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { ROLES } from "../config/schema.js";
import { MulticonnectError } from "../core/errors.js";
import { SDK_VERSION } from "../version.js";
import { consoleCommand } from "./console.js";
import { devCommand } from "./dev.js";
import { resetCommand } from "./reset.js";
import { supportBundleCommand } from "./support-bundle.js";
import { startCommand, type StartOptions } from "./start.js";
import { statusCommand } from "./status.js";
import { switchoverCommand } from "./switchover.js";
import {
  clearHoldCommand,
  forgetCommand,
  historyCommand,
  parsePauseDuration,
  parseSettingPairs,
  pauseCommand,
  resumeCommand,
  settingsGetCommand,
  settingsSetCommand,
} from "./control.js";

const int = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer`);
  return n;
};

/**
 * Exit code 2: the configuration cannot work as written (a bad key, a store that refuses us, a
 * backend whose driver is not installed), so a supervisor restarting the node would only repeat it.
 */
const EXIT_CONFIGURATION = 2;
const CONFIGURATION_CODES = new Set(["config_invalid", "store_misconfigured"]);

const program = new Command("multiconnect")
  .description("High availability for work that only one process may do at a time.")
  .version(SDK_VERSION, "-V, --version", "print the multiconnect version")
  .showHelpAfterError();

program
  .command("start")
  .description("run one node (master, coreapp or webapp) from a config file")
  .requiredOption("-c, --config <file>", "the cluster's YAML or JSON config file")
  .addOption(new Option("--role <role>", "the node's role (overrides node.role)").choices(ROLES))
  .option("--name <name>", "this node's name (overrides node.name)")
  .option("--port <port>", "listen port (overrides node.port)", int("--port"))
  .option("--ops-port <port>", "port of the operations endpoint: /metrics, /livez, /readyz (overrides node.ops_port)", int("--ops-port"))
  .option("--app <module>", "coreapps: module exporting the application (default: the echo example)")
  .option(
    "--no-supervise",
    "run the node in this process, without the supervisor that releases a dead node's leases at once (crash failover, docs/safety.md)",
  )
  .option("--watchdog", "the supervisor also SIGKILLs the node if its event loop freezes (see docs/reliability.md)", false)
  .option(
    "--watchdog-deadline <ms>",
    "the watchdog's deadline; requires --watchdog (default: lease TTL - renew interval - 2 x margin)",
    int("--watchdog-deadline"),
  )
  // commander types the parsed options as `any`; these annotations state what the options above produce.
  .action(async (o: StartOptions) => startCommand(o));

program
  .command("dev")
  .description("run a local cluster (2 masters, 3 coreapps, 1 webapp) on SQLite with a live view")
  .option("--dir <dir>", "where the database, config and logs go", ".multiconnect/dev")
  .option("--shards <n>", "number of shards", int("--shards"), 1)
  .option("--port <port>", "the webapp's port", int("--port"), 9090)
  .option("--defaults", "use the product's default intervals (30 s failover) instead of the dev ones (3 s)", false)
  .action(async (o: { dir: string; shards: number; port: number; defaults: boolean }) =>
    devCommand({ dir: o.dir, shards: o.shards, defaults: o.defaults, webappPort: o.port }),
  );

program
  .command("console")
  .description("serve the live web console for a cluster without a webapp at hand (open the printed URL)")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .option("--port <port>", "listen port", int("--port"), 9190)
  .option("--host <address>", "listen address (0.0.0.0 exposes the read-only view to the network)", "127.0.0.1")
  .action(async (o: { config: string; port: number; host: string }) => consoleCommand(o));

program
  .command("status")
  .description("print nodes, roles, the shard map, epochs and the failover bound")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .option("--json", "print JSON", false)
  .action(async (o: { config: string; json: boolean }) => statusCommand(o));

program
  .command("switchover")
  .description("move a shard's primary to another coreapp, draining the old one first")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .requiredOption("--shard <n>", "the shard to move", int("--shard"))
  .option("--to <node>", "the coreapp (name or id) to move it to; any healthy standby if absent")
  .option("--force", "allow --to to name a coreapp marked node.nofailover", false)
  .action(async (o: { config: string; shard: number; to?: string; force: boolean }) => {
    if (!(await switchoverCommand(o))) process.exitCode = 1;
  });

const settings = program.command("settings").description("the cluster's live settings (changed through the primary master)");
settings
  .command("get")
  .description("print the live settings, their version and the failover bound")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .option("--json", "print JSON", false)
  .action(settingsGetCommand);
settings
  .command("set")
  .description("change settings, e.g. unhealthy_interval=10s heartbeat_interval=2s (every node applies them within one heartbeat interval)")
  .argument("<key=value...>", "settings keys of the config file with durations (heartbeat_quorum: a count)", (pair, pairs?: string[]) => {
    parseSettingPairs([pair]);
    return [...(pairs ?? []), pair];
  })
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .option("--by <name>", "who asks, for the history (default: $USER)")
  .action(async (pairs: string[], o: { config: string; by?: string }) => {
    if (!(await settingsSetCommand({ ...o, pairs }))) process.exitCode = 1;
  });

program
  .command("pause")
  .description("stop automatic failover (a switchover still works) until resumed or the time runs out")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .option("--shard <n>", "pause one shard only (default: the whole cluster)", int("--shard"))
  .option("--for <duration>", "how long, e.g. 30m, 2h (default 1h, at most 7 days); pause again to renew", parsePauseDuration)
  .option("--reason <text>", "why, for status and the history")
  .option("--by <name>", "who asks (default: $USER)")
  .action(async (o: { config: string; shard?: number; for?: number; reason?: string; by?: string }) => {
    const { for: durationMs, ...rest } = o;
    if (!(await pauseCommand({ ...rest, ...(durationMs === undefined ? {} : { durationMs }) }))) process.exitCode = 1;
  });

program
  .command("resume")
  .description("end a pause of automatic failover")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .option("--shard <n>", "the paused shard (default: the cluster-wide pause)", int("--shard"))
  .option("--by <name>", "who asks (default: $USER)")
  .action(async (o: { config: string; shard?: number; by?: string }) => {
    if (!(await resumeCommand(o))) process.exitCode = 1;
  });

program
  .command("clear-hold")
  .description("let the primary master promote a coreapp it holds out after repeated failures")
  .argument("<node>", "the coreapp's name")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .option("--by <name>", "who asks (default: $USER)")
  .action(async (node: string, o: { config: string; by?: string }) => {
    if (!(await clearHoldCommand({ ...o, node }))) process.exitCode = 1;
  });

program
  .command("history")
  .description("elections, promotions, switchovers, pauses and settings changes, newest first, with causes and evidence")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .option("--shard <n>", "only this shard's events", int("--shard"))
  .option("--limit <n>", "at most this many events (default 50)", int("--limit"))
  .option("--json", "print JSON", false)
  .action(historyCommand);

program
  .command("forget")
  .description("remove a node's record now (refused for a shard's owner, and for a live node without --force)")
  .argument("<node>", "the node's id, or a name only one record has")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .option("--force", "also remove a live node (it registers again at its next beat)", false)
  .option("--by <name>", "who asks, for the history (default: $USER)")
  .action(async (node: string, o: { config: string; force: boolean; by?: string }) => {
    if (!(await forgetCommand({ ...o, node }))) process.exitCode = 1;
  });

program
  .command("reset")
  .description("remove every table or key under the cluster's prefix (the uninstall); refused while a node is live")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .option("--force", "reset even though nodes are live (they will recreate their records)", false)
  .action(async (o: { config: string; force: boolean }) => resetCommand(o));

program
  .command("support-bundle")
  .description("write one .tar.gz with status, settings, the redacted config, versions, metrics and recent logs")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .option("--logs <dir>", "a folder of log files; the last MiB of each is included")
  .option("--out <file>", "where to write the archive (default multiconnect-support-<cluster>-<time>.tar.gz)")
  .action(async (o: { config: string; logs?: string; out?: string }) => {
    await supportBundleCommand(o);
  });

/**
 * One line for what a user can fix — the SDK's errors, a bad argument, a file or port the system
 * refused — and the stack for anything else: a bug, ours or the application's (`--app`).
 */
program.parseAsync().catch((error: unknown) => {
  if (error instanceof MulticonnectError) {
    process.stderr.write(`multiconnect: ${error.message}\n`);
    process.exit(CONFIGURATION_CODES.has(error.code) ? EXIT_CONFIGURATION : 1);
  }
  if (error instanceof CommanderError || isSystemError(error)) {
    process.stderr.write(`multiconnect: ${error.message}\n`);
    process.exit(error instanceof CommanderError ? error.exitCode : 1);
  }
  process.stderr.write(`multiconnect: ${String((error as Error)?.stack ?? error)}\n`);
  process.exit(1);
});

/** An error of a system call (`ENOENT`, `EACCES`, `EADDRINUSE`…): Node's message names the call and the path or port. */
function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).syscall === "string";
}
