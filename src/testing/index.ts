/**
 * `multiconnect/testing` — the testing kit: the store adapter conformance suites (store, control
 * plane, schema lifecycle), the upstream oracle, the TCP fault proxy, and a local cluster of real
 * node processes running your application. Nothing here depends on a test runner; pass your runner's functions where asked.
 * See docs/testing-kit.md and docs/write-a-store-adapter.md.
 */
export { storeConformance, type ConformanceMatchers, type ConformanceOptions, type ConformanceTestApi } from "./store-conformance.js";
export { controlConformance, type ControlConformanceOptions } from "./control-conformance.js";
export { schemaConformance, type SchemaConformanceOptions } from "./schema-conformance.js";
export { Oracle, monoNow, type OracleMode, type OracleReport, type OracleSession } from "./oracle.js";
export { UpstreamSession, type UpstreamReply } from "./upstream-session.js";
export { FaultProxy, type ProxyMode } from "./fault-proxy.js";
export { LocalCluster, LOCAL_CLUSTER_SETTINGS, type LocalClusterOptions, type LocalNode } from "./local-cluster.js";
export { freePort, randomNamespace, refusedPort, startBlackhole } from "./net.js";
