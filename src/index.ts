/**
 * multiconnect — high availability for work that only one process may do at a time.
 * The public API: build nodes from a config (`createNode`), or use the classes directly.
 */
export { createNode, DEFAULT_PORTS, type AnyNode, type CreateNodeOptions } from "./nodes/compose.js";
export { Master } from "./nodes/master.js";
export { Coreapp, SERVED_BY_HEADER, EPOCH_HEADER } from "./nodes/coreapp.js";
export { Webapp, type WebappOptions } from "./nodes/webapp.js";
export { readClusterStatus, type ClusterStatus, type NodeHealth } from "./nodes/cluster-status.js";
export type { MulticonnectNode, NodeDeps, NodeIdentity } from "./nodes/deps.js";
export { openStore } from "./nodes/open-store.js";
export { loadConfigFile, parseConfig, type Config } from "./config/load.js";
export type { AppRequest, AppResponse, CoreappApplication } from "./core/coreapp/application.js";
export {
  MulticonnectError,
  StoreUnavailableError,
  StoreConfigurationError,
  SchemaTooNewError,
  ConfigError,
  AuthenticationError,
  TransportUnavailableError,
} from "./core/errors.js";
export { DEFAULT_SETTINGS, deriveTiming, failoverBoundMs, type ClusterSettings, type Timing } from "./core/timing.js";
export { shardOf } from "./core/hash.js";
export type { Store, StoreCapabilities } from "./core/ports/store.js";
export { createEchoApp } from "./example/echo-app.js";
