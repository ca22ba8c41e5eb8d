import { SystemClock } from "../../core/clock.js";
import { ConfigError, StoreConfigurationError } from "../../core/errors.js";
import type { Clock } from "../../core/ports/clock.js";
import type { Store, StoreCapabilities } from "../../core/ports/store.js";
import { EtcdClient } from "./client.js";
import { checkKeyPrefix, EtcdKeys } from "./keys.js";
import { EtcdLeaseStore } from "./leases.js";
import { EtcdLiveness } from "./liveness.js";
import { EtcdShardMap } from "./shard-map.js";

export { EtcdLeaseStore, ETCD_MIN_TTL_S, ttlSeconds } from "./leases.js";
export { EtcdLiveness, ETCD_AGE_RESOLUTION_MS, NODE_RECORD_TTL_S } from "./liveness.js";
export { EtcdShardMap, ETCD_RESYNC_MS } from "./shard-map.js";

/** Settings of the etcd store (etcd v3 API, tested against 3.4). */
export interface EtcdOptions {
  /** One or more client URLs, e.g. "http://127.0.0.1:2379" or ["https://a:2379", "https://b:2379"]. */
  hosts: string | string[];
  /** etcd user, when etcd has authentication enabled. */
  username?: string;
  /** Its password. Never logged and never put in an error message. */
  password?: string;
  /**
   * TLS for https hosts, as PEM contents (not paths): the CA the server must chain to (default the
   * system's CAs), and a client certificate and key when etcd asks for one (`--client-cert-auth`).
   * When set, every host must be an https:// URL.
   */
  tls?: { ca?: Buffer | string; cert?: Buffer | string; key?: Buffer | string };
  /** Prefix of every key this cluster writes, so several clusters can share one etcd (default "mc/"). */
  keyPrefix?: string;
  /**
   * Budget of one port operation, connection time included, after which it throws
   * `StoreUnavailableError` (default 2000). Keep it well under the lease TTL / 3: a renewal that
   * waits longer than that leaves too little of the lease for the next attempt.
   */
  operationTimeoutMs?: number;
  /**
   * Budget for reaching etcd at all (default 2000): `migrate()`, the first call a node makes, waits
   * this long (or `operationTimeoutMs`, if longer); and after a connection is lost, reconnect
   * attempts are spaced at most this far apart, so a recovered etcd is used again within about it.
   */
  connectTimeoutMs?: number;
  /** The clock that paces shard-map watchers (default: the process's monotonic clock). */
  clock?: Clock;
}

/**
 * What etcd can and cannot do, for timing validation and the conformance suite: lease TTLs are
 * whole seconds and at least 2 s. (Liveness ages have a resolution of 1 s: ETCD_AGE_RESOLUTION_MS.)
 */
export const etcdCapabilities: StoreCapabilities = { ttlWholeSeconds: true, minTtlMs: 2000, expiryLagMs: 500, ageResolutionMs: 1000 };

/** The schema version this SDK writes; etcd is schemaless, so it only marks the prefix as ours. */
const SCHEMA_VERSION = 1;

/** The etcd store: every port over one etcd cluster, under one key prefix. */
export class EtcdStore implements Store {
  readonly backend = "etcd";
  readonly capabilities = etcdCapabilities;
  readonly leases: EtcdLeaseStore;
  readonly liveness: EtcdLiveness;
  readonly shardMap: EtcdShardMap;
  private readonly client: EtcdClient;
  private readonly keys: EtcdKeys;
  private readonly connectTimeoutMs: number;
  private readonly operationTimeoutMs: number;
  private closed = false;

  constructor(o: EtcdOptions) {
    const hosts = checkHosts(o.hosts);
    const operationTimeoutMs = checkTimeout(o.operationTimeoutMs ?? 2000, "store.operation_timeout");
    this.operationTimeoutMs = operationTimeoutMs;
    this.connectTimeoutMs = checkTimeout(o.connectTimeoutMs ?? 2000, "store.connect_timeout");
    if (o.password !== undefined && o.username === undefined) {
      throw new ConfigError("store.username", "is required with a password");
    }
    if (o.tls !== undefined && hosts.some((h) => !h.startsWith("https://"))) {
      throw new ConfigError("store.hosts", "must all be https:// URLs when store.tls is set");
    }
    this.keys = new EtcdKeys(checkKeyPrefix(o.keyPrefix ?? "mc/"));
    this.client = new EtcdClient({
      hosts,
      username: o.username,
      password: o.password,
      tls: o.tls,
      operationTimeoutMs,
      connectTimeoutMs: this.connectTimeoutMs,
    });
    this.leases = new EtcdLeaseStore(this.client, this.keys);
    this.liveness = new EtcdLiveness(this.client, this.keys);
    this.shardMap = new EtcdShardMap(this.client, this.keys, o.clock ?? new SystemClock());
  }

  /**
   * Marks the prefix with the schema version (create-if-absent in one txn, so concurrent runs agree)
   * and refuses a prefix written by a newer SDK. This is also the start-up check that etcd is
   * reachable and accepts our credentials.
   */
  async migrate(): Promise<void> {
    const d = this.client.deadline(Math.max(this.connectTimeoutMs, this.operationTimeoutMs));
    const key = this.keys.schema;
    const r = await this.client.txn(
      [{ key, target: "create", equals: 0 }],
      [{ put: { key, value: String(SCHEMA_VERSION) } }],
      [{ range: key }],
      d,
    );
    const found = r.succeeded ? SCHEMA_VERSION : Number(r.results[0]?.[0]?.value);
    if (!(found <= SCHEMA_VERSION)) {
      throw new StoreConfigurationError(
        `${this.client.where}: ${key} says schema ${r.results[0]?.[0]?.value}; this SDK knows up to ${SCHEMA_VERSION}`,
      );
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }
}

function checkHosts(hosts: string | string[]): string[] {
  const list = (Array.isArray(hosts) ? hosts : hosts.split(",")).map((h) => h.trim()).filter((h) => h.length > 0);
  if (list.length === 0) throw new ConfigError("store.hosts", "needs at least one etcd client URL, e.g. http://127.0.0.1:2379");
  for (const h of list) {
    if (!/^(https?:\/\/)?[^\s/@]+(:\d+)?\/?$/.test(h)) {
      // Say which entry is wrong without echoing a password someone put in the URL.
      throw new ConfigError("store.hosts", `not an etcd client URL: ${JSON.stringify(h.replace(/\/\/[^@/]*@/, "//…@"))}`);
    }
  }
  return list;
}

function checkTimeout(ms: number, key: string): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new ConfigError(key, `must be a positive number of milliseconds, got ${ms}`);
  return ms;
}
