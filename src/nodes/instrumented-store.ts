import { performance } from "node:perf_hooks";
import { MASTER_LEASE, type Lease } from "../core/ports/leases.js";
import type { Store } from "../core/ports/store.js";
import type { NodeMetrics } from "./metrics.js";

/**
 * The store as a node sees it, with every port call timed and its errors counted
 * (`multiconnect_store_call_*`), and lease renewals that fail or are refused counted
 * (`multiconnect_lease_renewal_failures_total`). A decorator here rather than in each adapter, so
 * every backend — a third party's too — is measured the same way and adapters stay thin.
 * Results, errors and timing of the calls are unchanged.
 */
export function instrumentStore(store: Store, metrics: NodeMetrics): Store {
  const leases = timed(store.leases, "leases", metrics);
  const renew = leases.renew.bind(leases);
  leases.renew = async (lease: Lease, ttlMs: number) => {
    const kind = lease.name === MASTER_LEASE ? "master" : "shard";
    let ok: boolean;
    try {
      ok = await renew(lease, ttlMs);
    } catch (error) {
      metrics.renewalFailed(kind, "error");
      throw error;
    }
    if (!ok) metrics.renewalFailed(kind, "refused");
    return ok;
  };
  return {
    backend: store.backend,
    capabilities: store.capabilities,
    leases,
    liveness: timed(store.liveness, "liveness", metrics),
    shardMap: timed(store.shardMap, "shardMap", metrics),
    clusterDocument: timed(store.clusterDocument, "clusterDocument", metrics),
    history: timed(store.history, "history", metrics),
    schemaVersion: store.schemaVersion,
    recordedSchemaVersion: () => measure(metrics, "store.recordedSchemaVersion", () => store.recordedSchemaVersion()),
    purge: () => measure(metrics, "store.purge", () => store.purge()),
    migrate: () => measure(metrics, "store.migrate", () => store.migrate()),
    close: () => store.close(),
  };
}

/** The methods of each port (src/core/ports), all asynchronous. */
const METHODS = {
  leases: ["acquire", "renew", "release", "current"],
  liveness: ["beat", "list", "remove", "removeFenced"],
  shardMap: ["read", "assign", "watch"],
  clusterDocument: ["read", "version", "write"],
  history: ["append", "list"],
} as const;

/**
 * A copy of `port` whose port methods are the port's own, bound to it and timed as `name.method`;
 * anything else (an adapter's extra methods and fields) is read through from the original.
 */
function timed<P extends object>(port: P, name: keyof typeof METHODS, metrics: NodeMetrics): P {
  const wrapped = Object.create(port) as Record<string, unknown>;
  for (const key of METHODS[name]) {
    const call = (args: unknown[]) => ((port as Record<string, unknown>)[key] as (...a: unknown[]) => Promise<unknown>).apply(port, args);
    wrapped[key] = (...args: unknown[]) => measure(metrics, `${name}.${key}`, () => call(args));
  }
  return wrapped as P;
}

async function measure<T>(metrics: NodeMetrics, operation: string, call: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    const result = await call();
    metrics.storeCall(operation, (performance.now() - started) / 1000);
    return result;
  } catch (error) {
    metrics.storeCall(operation, (performance.now() - started) / 1000, error);
    throw error;
  }
}
