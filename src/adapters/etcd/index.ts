import { SystemClock } from "../../core/clock.js";
import { ownedNames } from "../prefix-owned.js";
import { withoutCredentials } from "../../config/redact.js";
import { ConfigError, SchemaTooNewError, StoreConfigurationError } from "../../core/errors.js";
import type { Clock } from "../../core/ports/clock.js";
import type { Store, StoreCapabilities } from "../../core/ports/store.js";
import { EtcdClient } from "./client.js";
import { checkKeyPrefix, EtcdKeys } from "./keys.js";
import { EtcdLeaseStore } from "./leases.js";
import { EtcdLiveness } from "./liveness.js";
import { EtcdShardMap } from "./shard-map.js";
import { checkHistoryLimit } from "../../core/control-records.js";
import { EtcdClusterDocument } from "./cluster-document.js";
import { EtcdHistory } from "./history.js";

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
  /** How many history events are kept; each append deletes the one that falls off (default 1000). */
  historyLimit?: number;
  /** The clock that paces shard-map watchers (default: the process's monotonic clock). */
  clock?: Clock;
}

/**
 * What etcd can and cannot do, for timing validation and the conformance suite: lease TTLs are
 * whole seconds and at least 2 s (pause durations too), and timestamps for people come from the
 * writer's clock (etcd has none a client can read). (Liveness ages have a resolution of 1 s: ETCD_AGE_RESOLUTION_MS.)
 */
export const etcdCapabilities: StoreCapabilities = {
  ttlWholeSeconds: true,
  minTtlMs: 2000,
  expiryLagMs: 500,
  ageResolutionMs: 1000,
  writerWallClock: true,
};

/**
 * The schema version this SDK writes; etcd is schemaless, so it only marks the prefix as ours.
 * Version 2 adds the control plane's keys (`cluster`, `history-seq`, `history/`), created on first
 * write.
 */
export const SCHEMA_VERSION = 2;

/** The etcd store: every port over one etcd cluster, under one key prefix. */
export class EtcdStore implements Store {
  readonly backend = "etcd";
  readonly capabilities = etcdCapabilities;
  readonly leases: EtcdLeaseStore;
  readonly liveness: EtcdLiveness;
  readonly shardMap: EtcdShardMap;
  readonly clusterDocument: EtcdClusterDocument;
  readonly history: EtcdHistory;
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
    this.clusterDocument = new EtcdClusterDocument(this.client, this.keys);
    this.history = new EtcdHistory(this.client, this.keys, checkHistoryLimit(o.historyLimit));
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
    if (r.succeeded) return;
    const kv = r.results[0]?.[0];
    const found = Number(kv?.value);
    if (!Number.isInteger(found)) {
      throw new StoreConfigurationError(`${this.client.where}: ${key} holds an unreadable schema version`);
    }
    if (found > SCHEMA_VERSION) throw new SchemaTooNewError(`${this.client.where} (key ${key})`, found, SCHEMA_VERSION);
    if (found < SCHEMA_VERSION && kv) {
      // Forward only, and only over the value we read: if another node moved it meanwhile, look again.
      const w = await this.client.txn(
        [{ key, target: "version", equals: kv.version }],
        [{ put: { key, value: String(SCHEMA_VERSION) } }],
        [],
        d,
      );
      if (!w.succeeded) await this.migrate();
    }
  }

  readonly schemaVersion = SCHEMA_VERSION;

  async recordedSchemaVersion(): Promise<number | null> {
    const kv = await this.client.get(this.keys.schema, this.client.deadline(Math.max(this.connectTimeoutMs, this.operationTimeoutMs)));
    return kv === null ? null : Number(kv.value);
  }

  /** See `Store.purge()`: deletes the prefix's keys in one txn (their etcd leases expire on their own). */
  async purge(): Promise<string[]> {
    const d = this.client.deadline(Math.max(this.connectTimeoutMs, this.operationTimeoutMs));
    const found = await this.client.range(this.keys.prefix, true, d);
    const mine = ownedNames(
      found.map((kv) => kv.key),
      this.keys.prefix,
      ["schema"],
    );
    // One prefix delete when nothing nested is there; otherwise key by key (etcd caps a txn at 128 ops).
    if (mine.length === found.length) {
      await this.client.txn([], [{ delete: this.keys.prefix, prefix: true }], [], d);
    } else {
      for (let i = 0; i < mine.length; i += 100) {
        await this.client.txn(
          [],
          mine.slice(i, i + 100).map((key) => ({ delete: key })),
          [],
          d,
        );
      }
    }
    return mine;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }
}

/**
 * The client URLs, checked. A bad entry is named by its position and shown without what precedes
 * its last `@`, so a login someone put in it never reaches a message.
 */
function checkHosts(hosts: string | string[]): string[] {
  const list = (Array.isArray(hosts) ? hosts : hosts.split(",")).map((h) => h.trim());
  list.forEach((h, i) => {
    if (h.includes("@")) {
      const shown = JSON.stringify(withoutCredentials(h));
      throw new ConfigError(
        "store.hosts",
        `entry [${i}] (${shown}) holds a user or password: give them in store.username and store.password`,
      );
    }
    if (h !== "" && !/^(https?:\/\/)?[^\s/@]+(:\d+)?\/?$/.test(h)) {
      throw new ConfigError("store.hosts", `entry [${i}] (${JSON.stringify(h)}) is not an etcd client URL such as http://127.0.0.1:2379`);
    }
  });
  const urls = list.filter((h) => h !== "");
  if (urls.length === 0) throw new ConfigError("store.hosts", "needs at least one etcd client URL, e.g. http://127.0.0.1:2379");
  return urls;
}

function checkTimeout(ms: number, key: string): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new ConfigError(key, `must be a positive number of milliseconds, got ${ms}`);
  return ms;
}
