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
  ClusterDocumentError,
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
export type { Logger } from "./core/ports/logger.js";
export type { Clock } from "./core/ports/clock.js";
export type { LeaseStore, Lease, AcquireResult } from "./core/ports/leases.js";
export type { LivenessStore, NodeRecord, NodeStatus, NodeRole } from "./core/ports/liveness.js";
export type { ShardMapStore, ShardAssignment, AssignResult, ShardMapWatch } from "./core/ports/shard-map.js";
export type {
  Transport,
  TransportHandlers,
  TransportServer,
  Peer,
  HeartbeatMessage,
  HeartbeatReply,
  ForwardRequest,
  ForwardResponse,
  SwitchoverCommand,
  SwitchoverReply,
} from "./core/ports/transport.js";
export type { OwnerState, OwnerEvent } from "./core/coreapp/shard-owner.js";
export type { PromotionEvent } from "./core/master/shard-manager.js";
export type { MasterEvents } from "./nodes/master.js";
export type { CoreappEvents } from "./nodes/coreapp.js";
