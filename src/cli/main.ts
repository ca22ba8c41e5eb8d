#!/usr/bin/env node
import { Command, InvalidArgumentError } from "commander";
import { MulticonnectError } from "../core/errors.js";
import { devCommand } from "./dev.js";
import { startCommand } from "./start.js";
import { statusCommand } from "./status.js";
import { switchoverCommand } from "./switchover.js";

const int = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer`);
  return n;
};

const program = new Command("multiconnect")
  .description("High availability for work that only one process may do at a time.")
  .showHelpAfterError();

program
  .command("start")
  .description("run one node (master, coreapp or webapp) from a config file")
  .requiredOption("-c, --config <file>", "the cluster's YAML or JSON config file")
  .option("--role <role>", "master | coreapp | webapp (overrides node.role)")
  .option("--name <name>", "this node's name (overrides node.name)")
  .option("--port <port>", "listen port (overrides node.port)", int("--port"))
  .option("--ops-port <port>", "port of the operations endpoint: /metrics, /livez, /readyz (overrides node.ops_port)", int("--ops-port"))
  .option("--app <module>", "coreapps: module exporting the application (default: the echo example)")
  .option("--watchdog", "run under a supervisor that SIGKILLs the node if its event loop freezes (see docs/reliability.md)", false)
  .option("--watchdog-deadline <ms>", "the watchdog's deadline (default: lease TTL - renew interval - 2 x margin)", int("--watchdog-deadline"))
  .action(async (o) => {
    if (o.role && !["master", "coreapp", "webapp"].includes(o.role)) throw new InvalidArgumentError("--role must be master, coreapp or webapp");
    await startCommand(o);
  });

program
  .command("dev")
  .description("run a local cluster (2 masters, 3 coreapps, 1 webapp) on SQLite with a live view")
  .option("--dir <dir>", "where the database, config and logs go", ".multiconnect/dev")
  .option("--shards <n>", "number of shards", int("--shards"), 1)
  .option("--port <port>", "the webapp's port", int("--port"), 9090)
  .option("--defaults", "use the product's default intervals (30 s failover) instead of the dev ones (3 s)", false)
  .action(async (o) => devCommand({ dir: o.dir, shards: o.shards, defaults: o.defaults, webappPort: o.port }));

program
  .command("status")
  .description("print nodes, roles, the shard map, epochs and the failover bound")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .option("--json", "print JSON", false)
  .action(async (o) => statusCommand(o));

program
  .command("switchover")
  .description("move a shard's primary to another coreapp, draining the old one first")
  .requiredOption("-c, --config <file>", "the cluster's config file")
  .requiredOption("--shard <n>", "the shard to move", int("--shard"))
  .option("--to <node>", "the coreapp (name or id) to move it to; any healthy standby if absent")
  .action(async (o) => {
    if (!(await switchoverCommand(o))) process.exitCode = 1;
  });

program.parseAsync().catch((error: unknown) => {
  const known = error instanceof MulticonnectError;
  process.stderr.write(`multiconnect: ${known ? error.message : String((error as Error)?.stack ?? error)}\n`);
  process.exit(known && error.code === "config_invalid" ? 2 : 1);
});
