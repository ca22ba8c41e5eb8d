import "reflect-metadata";
import type { IncomingMessage } from "node:http";
import { container as rootContainer, instanceCachingFactory, type DependencyContainer } from "tsyringe";
import { FramedTransport, testProtocolOverride } from "../adapters/transport/index.js";
import { loadTlsFiles } from "../adapters/tls-files.js";
import type { Config } from "../config/load.js";
import type { Role } from "../config/schema.js";
import { SystemClock } from "../core/clock.js";
import type { CoreappApplication } from "../core/coreapp/application.js";
import { ConfigError } from "../core/errors.js";
import type { Logger } from "../core/ports/logger.js";
import type { Store } from "../core/ports/store.js";
import { deriveTiming } from "../core/timing.js";
import { Coreapp } from "./coreapp.js";
import { newNodeId, type NodeDeps, type StartOptions } from "./deps.js";
import { instrumentStore } from "./instrumented-store.js";
import { createLogger } from "./logger.js";
import { Master } from "./master.js";
import { checkMediaDir } from "./media-dir.js";
import { NodeMetrics, type MetricsOptions } from "./metrics.js";
import { OpsServer } from "./ops-http.js";
import { openStore } from "./open-store.js";
import { TOKENS } from "./tokens.js";
import { Webapp } from "./webapp.js";

/** Default listen ports by role, as in the model product (coreapps from 6250, webapp 9090). */
export const DEFAULT_PORTS: Record<Role, number> = { coreapp: 6250, master: 6260, webapp: 9090 };

/** What every node is built from: the config and, optionally, who it is and where it logs. */
export interface NodeOptions {
  /** The validated cluster config (`parseConfig` or `loadConfigFile`). */
  readonly config: Config;
  /** Overrides `node.name`; defaults to the role. */
  readonly name?: string;
  /** Overrides `node.port`; defaults by role. 0 picks a free port. */
  readonly port?: number;
  /**
   * Where the node logs (default: JSON lines on stderr at `log_level`, through pino). Any object
   * with pino's `debug/info/warn/error(fields, message)` and `child(fields)` works, so a pino
   * instance of the host service can be passed as it is; errors are logged under `err`.
   */
  readonly logger?: Logger;
  /**
   * A store you opened yourself — a third-party adapter (docs/write-a-store-adapter.md). The
   * config's `store:` section is then not opened (it must still parse). The node closes this store
   * when it stops. Default: the backend the config names.
   */
  readonly store?: Store;
  /**
   * Metrics: pass `{ registry }` to register the node's series into the host application's
   * prom-client `Registry` (and serve them from the host's own `/metrics`). Default: a registry of
   * the node's own, served by the operations endpoint (and a webapp's port).
   */
  readonly metrics?: MetricsOptions;
  /**
   * Overrides `node.ops_port`: the port of the node's operations endpoint (`/metrics`, `/livez`,
   * `/readyz`) on `node.listen_host`; 0 picks a free port; `null` opens none even when the config
   * sets one. Default: the config's, else none — an embedded node opens no listener unasked.
   */
  readonly opsPort?: number | null;
}

/** Options of {@link createMaster}. */
export type MasterNodeOptions = NodeOptions;

/** Options of {@link createCoreapp}. */
export interface CoreappNodeOptions extends NodeOptions {
  /** The application the coreapp runs: `onPromote`, `onDemote`, `handle`. */
  readonly app: CoreappApplication;
}

/** Options of {@link createWebapp}. */
export interface WebappNodeOptions extends NodeOptions {
  /** Derive the shard key from the request (default: the `webapp.shard_key_header` header). */
  readonly shardKey?: (req: IncomingMessage) => string | undefined;
  /**
   * Overrides `webapp.listen` (default true): whether `start()` opens the webapp's own listener
   * on port 9090. Hazard: that listener skips the host service's middleware (its auth); pass false
   * to serve only through the host's server.
   */
  readonly listen?: boolean;
}

/** Options of {@link createNode}: any role, chosen by `role` or the config's `node.role`. */
export interface CreateNodeOptions extends NodeOptions {
  /** Overrides `node.role` of the config. */
  readonly role?: Role;
  /** The application a coreapp runs (required for coreapps). */
  readonly app?: CoreappApplication;
  /** Webapps embedded in an existing service: derive the shard key from the request. */
  readonly shardKey?: (req: IncomingMessage) => string | undefined;
  /** Webapps: overrides `webapp.listen`. */
  readonly listen?: boolean;
}

/** Any node: what {@link createNode} returns when the role is known only at run time. */
export type AnyNode = Master | Coreapp | Webapp;

/** A master node (see {@link Master}). Opens the store's connection; touches no data until `start()`. */
export function createMaster(o: MasterNodeOptions): Promise<Master> {
  return createNode({ ...o, role: "master" });
}

/** A coreapp node running `o.app` (see {@link Coreapp}). Opens the store's connection; touches no data until `start()`. */
export function createCoreapp(o: CoreappNodeOptions): Promise<Coreapp> {
  return createNode({ ...o, role: "coreapp" });
}

/** A webapp node (see {@link Webapp}). Opens the store's connection; touches no data until `start()`. */
export function createWebapp(o: WebappNodeOptions): Promise<Webapp> {
  return createNode({ ...o, role: "webapp" });
}

/**
 * The composition root: the one place that reads the config and wires the configured adapters
 * into a node. tsyringe holds the graph in a child container per node, with factory registrations
 * and explicit tokens (no decorator metadata is needed). Opens the store's connection, but touches
 * no data until the node's `start()`. With a literal `role` it returns that node's class; prefer
 * `createMaster`, `createCoreapp`, `createWebapp`, whose options say what each role needs.
 */
export function createNode(o: CreateNodeOptions & { readonly role: "master" }): Promise<Master>;
export function createNode(o: CreateNodeOptions & { readonly role: "coreapp"; readonly app: CoreappApplication }): Promise<Coreapp>;
export function createNode(o: CreateNodeOptions & { readonly role: "webapp" }): Promise<Webapp>;
export function createNode(o: CreateNodeOptions): Promise<AnyNode>;
export async function createNode(o: CreateNodeOptions): Promise<AnyNode> {
  const { config } = o;
  const role = o.role ?? config.node.role;
  if (!role) throw new ConfigError("node.role", "is required (or pass a role): master, coreapp or webapp");
  if (role === "coreapp" && !o.app) throw new ConfigError("app", "a coreapp needs an application (onPromote, onDemote, handle)");
  const name = o.name ?? config.node.name ?? role;
  if (config.mediaDir) await checkMediaDir(config.mediaDir);
  // The transport reads them again when it is made; checked first so a bad file opens nothing.
  if (config.transport.tls) loadTlsFiles(config.transport.tls, "transport.tls");
  const c = childContainer(config, o.logger ?? createLogger(config.logLevel, { cluster: config.clusterName }));
  const metrics = new NodeMetrics(name, o.metrics);
  const store = instrumentStore(o.store ?? (await openStore(config.store, c.resolve(TOKENS.clock))), metrics);
  c.register(TOKENS.store, { useValue: store });
  c.register(TOKENS.timing, { useValue: deriveTiming(config.settings, store.capabilities) });
  c.register(TOKENS.identity, {
    useValue: {
      id: newNodeId(name),
      name,
      listenHost: config.node.listenHost,
      port: o.port ?? config.node.port ?? DEFAULT_PORTS[role],
      externalHostname: config.node.externalHostname,
      advertisePort: config.node.advertisePort,
    },
  });
  if (o.app) c.register(TOKENS.application, { useValue: o.app });

  const deps = (k: DependencyContainer): NodeDeps => ({
    store: k.resolve(TOKENS.store),
    transport: k.resolve(TOKENS.transport),
    clock: k.resolve(TOKENS.clock),
    timing: k.resolve(TOKENS.timing),
    log: k.resolve(TOKENS.logger),
    metrics,
  });
  const identity = c.resolve(TOKENS.identity);
  const node: AnyNode =
    role === "master"
      ? new Master(deps(c), identity, config.shards, config.nodeRetentionMs)
      : role === "coreapp"
        ? new Coreapp(deps(c), identity, c.resolve(TOKENS.application), config.coreapp.drainTimeoutMs, config.node.placement)
        : new Webapp(deps(c), identity, {
            shards: config.shards,
            ...config.webapp,
            listen: o.listen ?? config.webapp.listen,
            adminToken: config.adminToken,
            ...(o.shardKey ? { shardKey: o.shardKey } : {}),
          });
  const opsPort = o.opsPort === undefined ? config.node.opsPort : o.opsPort;
  const ops =
    opsPort === undefined || opsPort === null ? null : new OpsServer(node, config.node.listenHost, opsPort, c.resolve(TOKENS.logger));
  return closingStoreOnStop(ops ? withOpsServer(node, ops) : node, c);
}

/**
 * Opens the operations endpoint before the node starts and closes it after the node stopped: the
 * probes must answer while `start()` still waits for an unreachable store (live, not ready).
 */
function withOpsServer<N extends AnyNode>(node: N, ops: OpsServer): N {
  const start = node.start.bind(node);
  const stop = node.stop.bind(node);
  node.start = async (options?: StartOptions) => {
    await ops.listen();
    await start(options);
  };
  node.stop = async () => {
    await stop();
    await ops.close();
  };
  return node;
}

function childContainer(config: Config, logger: Logger): DependencyContainer {
  const c = rootContainer.createChildContainer();
  c.register(TOKENS.config, { useValue: config });
  c.register(TOKENS.logger, { useValue: logger });
  c.register(TOKENS.clock, { useValue: new SystemClock() });
  // Cached: the node and its stop() (closingStoreOnStop) must get the same transport; a plain
  // factory would build a new one on each resolve, and stop() would close that one, leaving the
  // node's connections open (a process that called stop() then did not exit).
  c.register(TOKENS.transport, {
    useFactory: instanceCachingFactory((k) => {
      const cfg = k.resolve(TOKENS.config);
      return new FramedTransport({
        nodeId: k.resolve(TOKENS.identity).id,
        secret: cfg.secret,
        clusterName: cfg.clusterName,
        maxBodyBytes: cfg.webapp.maxBodyBytes,
        tls: cfg.transport.tls,
        logger: k.resolve(TOKENS.logger),
        protocol: testProtocolOverride(),
      });
    }),
  });
  return c;
}

/** Makes `node.stop()` also close the connections the composition root opened for it. */
function closingStoreOnStop<N extends AnyNode>(node: N, c: DependencyContainer): N {
  const stop = node.stop.bind(node);
  node.stop = async () => {
    await stop();
    await c.resolve(TOKENS.transport).close();
    await c.resolve(TOKENS.store).close();
  };
  return node;
}
