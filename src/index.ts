/**
 * multiconnect — high availability for work that only one process may do at a time.
 * The public API: build nodes from a config (`createNode`), or use the classes directly.
 */
export {
  createNode,
  createMaster,
  createCoreapp,
  createWebapp,
  DEFAULT_PORTS,
  type AnyNode,
  type CreateNodeOptions,
  type NodeOptions,
  type MasterNodeOptions,
  type CoreappNodeOptions,
  type WebappNodeOptions,
} from "./nodes/compose.js";
export { Master, type MasterEvents } from "./nodes/master.js";
export { Coreapp, SERVED_BY_HEADER, EPOCH_HEADER, type CoreappEvents } from "./nodes/coreapp.js";
export {
  Webapp,
  type WebappOptions,
  type WebappEvents,
  type ServeOptions,
  type WebappRequest,
  type WebappResponse,
} from "./nodes/webapp.js";
export { readClusterStatus, type ClusterStatus, type NodeHealth } from "./nodes/cluster-status.js";
export type { MulticonnectNode, NodeDeps, NodeIdentity, StartOptions } from "./nodes/deps.js";
export { openStore } from "./nodes/open-store.js";
export type { NodeTokens } from "./nodes/held-leases.js";
export {
  ExitReleaser,
  releaseExitedNode,
  type ExitRelease,
  type ExitReleaseOptions,
  type ExitReleaseTimings,
} from "./nodes/exit-release.js";
export { loadConfigFile, parseConfig, type Config } from "./config/load.js";
export type { ConfigInput, StoreConfigInput } from "./config/schema.js";
export type { Logger } from "./core/ports/logger.js";
export type { PromotionEvent } from "./core/master/shard-manager.js";
export type { OwnerEvent } from "./core/coreapp/shard-owner.js";
export type { ShardAssignment } from "./core/ports/shard-map.js";
export { APP_ERROR_CODE } from "./core/api-errors.js";
export type { AppRequest, AppResponse, CoreappApplication } from "./core/coreapp/application.js";
export {
  MulticonnectError,
  StoreUnavailableError,
  StoreConfigurationError,
  SchemaTooNewError,
  ConfigError,
  AuthenticationError,
  TransportUnavailableError,
  ClusterDocumentError,
  WebappRequestError,
} from "./core/errors.js";
export { DEFAULT_SETTINGS, deriveTiming, failoverBoundMs, type ClusterSettings, type Timing } from "./core/timing.js";
export { shardOf } from "./core/hash.js";
export type { Store, StoreCapabilities } from "./core/ports/store.js";
export type {
  ClusterDocument,
  ClusterDocumentInput,
  ClusterDocumentStore,
  ClusterDocumentWriteResult,
  Pause,
  PauseInput,
  VersionedClusterDocument,
} from "./core/ports/cluster-document.js";
export { ClusterDocumentFollower, type HeldPause } from "./core/cluster-document-follower.js";
export type {
  HistoryAppendResult,
  HistoryEvent,
  HistoryEventInput,
  HistoryEventType,
  HistoryQuery,
  HistoryStore,
} from "./core/ports/history.js";
export type { Backend, Role, StoreConfig } from "./config/schema.js";
export type {
  Transport,
  TransportHandlers,
  TransportServer,
  Peer,
  HeartbeatMessage,
  HeartbeatReply,
  ForwardRequest,
  ForwardResponse,
  ForwardResult,
  SwitchoverCommand,
  SwitchoverReply,
  AdminCommand,
  AdminReply,
  RemovedNode,
  ExitNotice,
  ExitReply,
  FailsafeRequest,
  FailsafeReply,
  SettingKey,
  EndedTenure,
} from "./core/ports/transport.js";
export type { OwnerState } from "./core/coreapp/shard-owner.js";
// For authors of a store adapter (docs/write-a-store-adapter.md): the ports and their value types.
export { MASTER_LEASE, shardLeaseName, type AcquireResult, type Lease, type LeaseStore } from "./core/ports/leases.js";
export type { LivenessStore, NodeRecord, NodeRole, NodeStatus, RemovalOutcome } from "./core/ports/liveness.js";
export type { AssignResult, ShardMapStore, ShardMapWatch } from "./core/ports/shard-map.js";
export type { Clock } from "./core/ports/clock.js";
export { SystemClock } from "./core/clock.js";
export { startDiffingWatch, type DiffingWatchOptions } from "./core/shard-map-watch.js";
// Metrics and probes (docs/observability.md).
export type { MetricsOptions, Readiness } from "./nodes/metrics.js";
export { HISTORY_EVENT_TYPES } from "./core/ports/history.js";
export type { NodeMetrics, NodeView } from "./nodes/metrics.js";
export type { BodyReader, ReservedRoutes, ReservedHandler } from "./nodes/webapp-admin.js";
export type { PauseStatus, UnservedStatus } from "./nodes/cluster-status.js";
export type { UnservedShard } from "./core/master/shard-manager.js";
export type { Placement } from "./core/master/placement.js";
export type { TransportTlsConfig } from "./config/load.js";
