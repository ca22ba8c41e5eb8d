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
  ConfigError,
  AuthenticationError,
  TransportUnavailableError,
} from "./core/errors.js";
export { DEFAULT_SETTINGS, deriveTiming, failoverBoundMs, type ClusterSettings, type Timing } from "./core/timing.js";
export { shardOf } from "./core/hash.js";
export type { Store, StoreCapabilities } from "./core/ports/store.js";
// For authors of a store adapter (docs/write-a-store-adapter.md): the ports and their value types.
export { MASTER_LEASE, shardLeaseName, type AcquireResult, type Lease, type LeaseStore } from "./core/ports/leases.js";
export type { LivenessStore, NodeRecord, NodeRole, NodeStatus } from "./core/ports/liveness.js";
export type { AssignResult, ShardAssignment, ShardMapStore, ShardMapWatch } from "./core/ports/shard-map.js";
export type { Clock } from "./core/ports/clock.js";
export { SystemClock } from "./core/clock.js";
export { startDiffingWatch, type DiffingWatchOptions } from "./core/shard-map-watch.js";
// Metrics and probes (docs/observability.md).
export type { MetricsOptions, Readiness } from "./nodes/metrics.js";
export { createEchoApp } from "./example/echo-app.js";
