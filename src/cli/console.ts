import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mountConsole, addSwitchoverRoute, CONSOLE_PATH } from "../console/routes.js";
import type { ConsoleRoutes } from "../console/feed.js";
import { loadConfigFile } from "../config/load.js";
import type { ShardAssignment, ShardMapWatch } from "../core/ports/shard-map.js";
import { createLogger } from "../nodes/logger.js";
import { ReservedRoutes } from "../nodes/webapp-admin.js";
import { addControlRoutes } from "../nodes/webapp-control.js";
import { sendError } from "../nodes/webapp-http.js";
import { openClusterAccess } from "./cluster-access.js";

/** Options of `multiconnect console`. */
export interface ConsoleCommandOptions {
  /** The cluster's config file. */
  readonly config: string;
  /** Listen port (default 9190). */
  readonly port: number;
  /** Listen address (default 127.0.0.1: the console is read-only without the token, but still shows the topology). */
  readonly host: string;
}

/**
 * `multiconnect console --config F`: the webapp's console, served by a small process of its own for
 * a cluster without a webapp at hand. It watches the shard map itself (the store's change
 * notifications, as a webapp's router does), reads the rest like a webapp's console, and sends
 * actions to the primary master over the transport, behind the config's `admin_token`. Runs until
 * SIGINT/SIGTERM.
 */
export async function consoleCommand(o: ConsoleCommandOptions): Promise<void> {
  const config = loadConfigFile(o.config);
  const log = createLogger(config.logLevel === "info" ? "warn" : config.logLevel);
  const access = await openClusterAccess(config);
  const routes = new WatchedRoutes(config.shards);
  let watch: ShardMapWatch | null = null;
  try {
    watch = await access.store.shardMap.watch(
      (changed) => routes.apply(changed),
      (error) => log.warn({ err: String(error) }, "console: shard-map watch interrupted; resyncing"),
    );
  } catch (error) {
    await access.close();
    throw error;
  }
  const reserved = new ReservedRoutes(config.adminToken);
  const deps = { store: access.store, transport: access.transport, timing: access.timing, bodyTimeoutMs: config.webapp.bodyTimeoutMs };
  addControlRoutes(reserved, { ...deps, shards: config.shards });
  addSwitchoverRoute(reserved, deps);
  const feed = mountConsole(reserved, {
    store: access.store,
    timing: access.timing,
    routes,
    servedBy: "multiconnect console",
    actionsEnabled: config.adminToken !== undefined,
    log,
  });
  const server = createServer((req, res) => {
    void (async () => {
      if (req.url === "/" || req.url === "") {
        res.writeHead(302, { location: CONSOLE_PATH });
        return res.end();
      }
      if (!(await reserved.handle(req, res))) sendError(res, 404, 404, "Not found", `this server only serves ${CONSOLE_PATH}`);
    })().catch((error: unknown) => {
      log.error({ err: String(error) }, "console: request failed");
      if (!res.headersSent) sendError(res, 500, 500, "Internal Error", "the console failed to answer");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(":") ? `[${o.host}]` : o.host === "0.0.0.0" ? "127.0.0.1" : o.host;
  process.stdout.write(`console: http://${host}:${port}${CONSOLE_PATH}  (cluster ${config.clusterName}; Ctrl-C stops it)\n`);
  if (config.adminToken === undefined) process.stdout.write("console: read-only (the config has no admin_token)\n");
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  feed.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await watch.close();
  await access.close();
}

/** The shard map as the store's notifications deliver it, kept in memory (as a webapp's router does). */
export class WatchedRoutes implements ConsoleRoutes {
  private readonly map = new Map<number, ShardAssignment>();
  private readonly listeners = new Set<(changed: readonly ShardAssignment[]) => void>();

  /** `shards`: the cluster's shard count. */
  constructor(readonly shards: number) {}

  /** The newest entry delivered for `shard`. */
  route(shard: number): ShardAssignment | null {
    return this.map.get(shard) ?? null;
  }

  /** Subscribes to entries that moved to a newer epoch (or were voided). */
  onChange(listener: (changed: readonly ShardAssignment[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Takes a delivery of the watch: newer epochs replace older ones; a void entry (owner null at the same epoch) replaces its assignment. */
  apply(changed: readonly ShardAssignment[]): void {
    const moved: ShardAssignment[] = [];
    for (const a of changed) {
      const current = this.map.get(a.shard);
      if (!current || current.epoch < a.epoch || (current.epoch === a.epoch && a.owner === null && current.owner !== null)) {
        this.map.set(a.shard, a);
        moved.push(a);
      }
    }
    if (moved.length > 0) for (const l of this.listeners) l(moved);
  }
}
