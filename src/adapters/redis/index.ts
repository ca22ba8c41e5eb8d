import { randomBytes } from "node:crypto";
import type { ConnectionOptions } from "node:tls";
import { SystemClock } from "../../core/clock.js";
import { withoutCredentials } from "../../config/redact.js";
import { ConfigError, SchemaTooNewError, StoreConfigurationError } from "../../core/errors.js";
import type { Clock } from "../../core/ports/clock.js";
import type { Store, StoreCapabilities } from "../../core/ports/store.js";
import { RedisConnection, type RedisSettings } from "./connection.js";
import { RedisLeaseStore } from "./leases.js";
import { RedisLiveness } from "./liveness.js";
import { MIGRATE, SCHEMA_VERSION, namespaceKeys } from "./scripts.js";
import { RedisShardMap } from "./shard-map.js";
import { RedisSubscriber } from "./subscriber.js";
import { checkHistoryLimit } from "../../core/control-records.js";
import { RedisClusterDocument } from "./cluster-document.js";
import { RedisHistory } from "./history.js";

/**
 * Settings of the Redis store (Redis ≥ 7, standalone or a single primary; keys of a namespace share
 * one hash slot). Give either `url` or the separate fields; when both are given the URL's parts win,
 * and the separate fields fill in what the URL leaves out.
 *
 * Redis without persistence loses every key on restart. This adapter stays safe anyway (epochs from
 * the server's clock, a quarantine of new acquisitions after a loss: see scripts.ts), at the price of
 * one lease TTL without new primaries after each loss. Run it with `maxmemory-policy noeviction`:
 * an evicted lease key would be handed to a second holder (`migrate()` refuses other policies).
 */
export interface RedisOptions {
  /**
   * `redis://[username:password@]host[:port][/db]`, or `rediss://` for TLS. It may hold a password:
   * this adapter never prints it; messages name only host and port.
   */
  url?: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 6379. */
  port?: number;
  /** An ACL user (Redis ≥ 6); default the "default" user. */
  username?: string;
  /** Prefer an environment variable in the config file over a literal secret. */
  password?: string;
  /**
   * Sentinel mode: the Sentinels ("host:port", a list or one comma-separated string) that the
   * client asks for the primary of `sentinelName`; `url`, `host` and `port` must then be unset.
   * See docs/configuration.md for the settings a Sentinel set needs to be safe.
   */
  sentinels?: string | string[];
  /** The name the Sentinels monitor (`sentinel monitor <name> …`); required with `sentinels`. */
  sentinelName?: string;
  /** The Sentinels' own ACL user, when they require one. */
  sentinelUsername?: string;
  /** The Sentinels' own password (`requirepass` in sentinel.conf); never printed. */
  sentinelPassword?: string;
  /** TLS to the Sentinels: `true`, or Node TLS options. Default off. `tls` is for the data servers. */
  sentinelTls?: boolean | ConnectionOptions;
  /**
   * Replicas that must acknowledge every write (Redis `WAIT`) before a call succeeds: default 1
   * with `sentinels`, else 0. With Sentinel it must be ≥ 1 (refused otherwise): replication is
   * asynchronous, and a promoted replica that lacks the last lease renewal would let a second
   * holder in while the first still acts on it. `migrate()` checks that the primary has that many
   * replicas connected.
   */
  waitReplicas?: number;
  /** Database index (default 0). Redis Cluster has only 0. */
  db?: number;
  /** TLS: `true`, or Node TLS options (`ca`, `servername`, ...). Default off (on for `rediss://`). */
  tls?: boolean | ConnectionOptions;
  /**
   * Prefix of every key and pub/sub channel, also the hash tag `{prefix}` (default "mc:").
   * Letters, digits and `_ . : / -`, at most 64.
   */
  keyPrefix?: string;
  /**
   * The most one call waits for an answer (default 2000 ms); a call waits at most this long for a
   * connection too, so it fails with `StoreUnavailableError` within about twice this. Keep it well
   * below the lease TTL, or a slow store can let a lease lapse while its renewal is still waiting.
   */
  operationTimeoutMs?: number;
  /** How long one TCP (and TLS) connect may take before it is abandoned (default 2000 ms). */
  connectTimeoutMs?: number;
  /**
   * The shortest quarantine of new lease acquisitions after the data were lost (default 0: each
   * `acquire()` uses its own ttlMs, which is every holder's TTL). HAZARD: if nodes of one cluster may
   * use different lease TTLs (a settings change rolling out), set this to the longest of them.
   */
  resetQuarantineMs?: number;
  /** A watcher re-reads the shard map at least this often, even without a notification (default 5000 ms). */
  watchResyncMs?: number;
  /** How many history events are kept; older ones are deleted by each append (default 1000). */
  historyLimit?: number;
  clock?: Clock;
}

const PREFIX = /^[A-Za-z0-9_.:/-]{1,64}$/;

/** What the Redis store declares: push notifications, millisecond TTLs, no minimum. */
export const redisCapabilities: StoreCapabilities = {};

/** The Redis store: every port over one namespace of keys (`{keyPrefix}...`) on one server. */
export class RedisStore implements Store {
  readonly backend = "redis";
  readonly capabilities = redisCapabilities;
  readonly leases: RedisLeaseStore;
  readonly liveness: RedisLiveness;
  readonly shardMap: RedisShardMap;
  readonly clusterDocument: RedisClusterDocument;
  readonly history: RedisHistory;
  /** The validated key prefix; connections are named `multiconnect:<prefix>` in CLIENT LIST. */
  readonly keyPrefix: string;
  private readonly settings: RedisSettings;
  private readonly conn: RedisConnection;
  private readonly subscriber: RedisSubscriber;
  private closing: Promise<void> | null = null;

  constructor(o: RedisOptions = {}) {
    const prefix = o.keyPrefix ?? "mc:";
    if (!PREFIX.test(prefix)) {
      throw new ConfigError("store.key_prefix", `must be 1-64 of letters, digits and _ . : / -, got ${JSON.stringify(prefix)}`);
    }
    this.keyPrefix = prefix;
    this.settings = resolveSettings(o);
    const keys = namespaceKeys(prefix);
    // A random suffix tells this process's connections from other nodes' on the same namespace.
    const id = randomBytes(3).toString("hex");
    this.conn = new RedisConnection(this.settings, `multiconnect:${prefix}:${id}`, true);
    let subscribers = 0;
    this.subscriber = new RedisSubscriber(
      this.settings,
      () => new RedisConnection(this.settings, `multiconnect-watch:${prefix}:${id}.${++subscribers}`, false),
    );
    this.leases = new RedisLeaseStore(
      this.conn,
      this.subscriber,
      keys,
      whole(o.resetQuarantineMs, 0, "RedisOptions.resetQuarantineMs", true),
    );
    this.liveness = new RedisLiveness(this.conn, keys);
    this.shardMap = new RedisShardMap(
      this.conn,
      this.subscriber,
      keys,
      o.clock ?? new SystemClock(),
      whole(o.watchResyncMs, 5000, "RedisOptions.watchResyncMs"),
    );
    this.clusterDocument = new RedisClusterDocument(this.conn, keys);
    this.history = new RedisHistory(this.conn, keys, checkHistoryLimit(o.historyLimit));
  }

  /** "redis host:port/db", for logs and the CLI (never the password). */
  describe(): string {
    return `redis ${this.settings.address}/${this.settings.db}`;
  }

  /**
   * Checks that the server will not evict keys, and stamps the namespace's incarnation marker (see
   * scripts.ts: a namespace first marked here is not quarantined unless the server just started).
   * Refuses, writing nothing, a namespace stamped by a newer SDK. Idempotent; several nodes may run
   * it at once.
   */
  async migrate(): Promise<void> {
    await this.checkEviction();
    await this.checkReplicas();
    const newer = Number(await this.conn.eval(MIGRATE, [namespaceKeys(this.keyPrefix).incarnation], [SCHEMA_VERSION]));
    if (newer > 0) throw new SchemaTooNewError(`${this.describe()} (keys "{${this.keyPrefix}}*")`, newer, SCHEMA_VERSION);
  }

  /**
   * See `Store.purge()`. The hash tag makes the match exact: `{mc:}*` never matches another
   * cluster's `{mc:x}…` keys.
   */
  async purge(): Promise<string[]> {
    return this.conn.run(async (client) => {
      const removed: string[] = [];
      let cursor = "0";
      do {
        const [next, keys] = await client.scan(cursor, "MATCH", `{${this.keyPrefix}}*`, "COUNT", 1000);
        if (keys.length > 0) await client.del(...keys);
        removed.push(...keys);
        cursor = next;
      } while (cursor !== "0");
      return [...new Set(removed)].sort();
    });
  }

  readonly schemaVersion = SCHEMA_VERSION;

  async recordedSchemaVersion(): Promise<number | null> {
    const v = await this.conn.run((c) => c.hget(namespaceKeys(this.keyPrefix).incarnation, "v"));
    return v === null ? null : Number(v);
  }

  /** Closes every watch, then the subscriber connection and the main one. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.shardMap.closeWatches();
      this.subscriber.close();
      this.conn.close();
    })();
    return this.closing;
  }

  /**
   * With `waitReplicas` > 0, refuses a primary that has fewer replicas online: every write would
   * wait for acknowledgements that cannot come, so the cluster could never hold a lease.
   */
  private async checkReplicas(): Promise<void> {
    const wanted = this.settings.waitReplicas;
    if (wanted === 0) return;
    const info = await this.conn.run((c) => c.info("replication"));
    const online = (info.match(/^slave\d+:.*state=online/gm) ?? []).length;
    if (online < wanted) {
      throw new StoreConfigurationError(
        `redis ${this.settings.address}: the primary has ${online} replica(s) online and store.wait_replicas is ${wanted}; every write would wait for acknowledgements that cannot come (start the replica, or lower store.wait_replicas — not to 0 with store.sentinels)`,
      );
    }
  }

  /**
   * Refuses a server that may evict our keys under memory pressure. CONFIG is often disabled on
   * managed Redis; then the check is skipped (the README's requirement still stands).
   */
  private async checkEviction(): Promise<void> {
    const reply = await this.conn
      .run((c) => c.config("GET", "maxmemory*") as Promise<string[]>)
      .catch((error: unknown) => {
        if (error instanceof StoreConfigurationError) return null; // NOPERM / renamed CONFIG
        throw error;
      });
    if (!reply) return;
    const config = new Map<string, string>();
    for (let i = 0; i + 1 < reply.length; i += 2) config.set(reply[i]!, reply[i + 1]!);
    const policy = config.get("maxmemory-policy") ?? "noeviction";
    if (config.get("maxmemory") !== "0" && policy !== "noeviction") {
      throw new StoreConfigurationError(
        `redis ${this.settings.address}: maxmemory-policy is ${policy} with a maxmemory limit; set maxmemory-policy noeviction (an evicted lease key would be handed to a second holder)`,
      );
    }
  }
}

/** Host, port, credentials and TLS from `url` and the separate fields (the URL's parts win). */
function resolveSettings(o: RedisOptions): RedisSettings {
  let url: URL | null = null;
  if (o.url !== undefined) {
    try {
      url = new URL(o.url);
    } catch {
      // Never echo the URL: it may hold the password.
      throw new ConfigError("store.url", "is not a valid URL (expected redis://[user:password@]host[:port][/db])");
    }
    if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
      // Without `//` the "scheme" is the user of `user:password@host`: show it only when it is one.
      const scheme = o.url.startsWith(`${url.protocol}//`) ? `, got ${url.protocol}//` : "";
      throw new ConfigError("store.url", `must start with redis:// or rediss://${scheme}`);
    }
  }
  // A host name never holds an `@`: one there is a misplaced login, which messages would show.
  if (o.host?.includes("@"))
    throw new ConfigError("store.host", "holds a user or password: give them in store.username and store.password");
  const sentinel = sentinelSettings(o);
  const host = url?.hostname.replace(/^\[(.*)\]$/, "$1") || o.host || "127.0.0.1";
  const port = url?.port ? Number(url.port) : url ? 6379 : whole(o.port, 6379, "store.port");
  const path = url?.pathname.replace(/^\//, "") ?? "";
  // An unencoded `/` in the password ends the host part early: say so rather than "not a database number".
  if (path.includes("@")) {
    throw new ConfigError("store.url", "has an @ after the host: percent-encode / ? # @ in the user and password (%2F %3F %23 %40)");
  }
  if (path !== "" && !/^\d+$/.test(path))
    throw new ConfigError("store.url", "the path must be a database number, as in redis://host:6379/0");
  const db = path !== "" ? Number(path) : whole(o.db, 0, "store.db", true);
  const tlsOption = o.tls === true ? {} : o.tls || undefined;
  const tls = url?.protocol === "rediss:" ? (tlsOption ?? {}) : tlsOption;
  return {
    host,
    port,
    ...sentinel,
    address: sentinel.sentinels
      ? `sentinel ${sentinel.sentinelName} (${sentinel.sentinels.map((x) => `${x.host}:${x.port}`).join(",")})`
      : `${host.includes(":") ? `[${host}]` : host}:${port}`,
    username: (url?.username ? decodeURIComponent(url.username) : undefined) ?? o.username,
    password: (url?.password ? decodeURIComponent(url.password) : undefined) ?? o.password,
    db,
    tls,
    operationTimeoutMs: whole(o.operationTimeoutMs, 2000, "store.operation_timeout"),
    connectTimeoutMs: whole(o.connectTimeoutMs, 2000, "store.connect_timeout"),
  };
}

/** A whole number of milliseconds (or a port, an index), positive unless `zeroOk`; `fallback` when unset. */
function whole(value: number | undefined, fallback: number, key: string, zeroOk = false): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < (zeroOk ? 0 : 1)) {
    throw new ConfigError(key, `must be a whole number ${zeroOk ? "≥ 0" : "> 0"}, got ${value}`);
  }
  return value;
}

/**
 * The Sentinel part of the settings, checked: Sentinels need a master name and exclude a fixed
 * server, and writes must wait for at least one replica (see `RedisOptions.waitReplicas`).
 */
function sentinelSettings(
  o: RedisOptions,
): Pick<RedisSettings, "sentinels" | "sentinelName" | "sentinelUsername" | "sentinelPassword" | "sentinelTls" | "waitReplicas"> {
  const list = o.sentinels === undefined ? [] : (Array.isArray(o.sentinels) ? o.sentinels : o.sentinels.split(",")).map((x) => x.trim());
  if (list.length === 0) {
    if (o.sentinelName !== undefined)
      throw new ConfigError("store.sentinels", "is required with store.sentinel_name (the Sentinels to ask)");
    return { waitReplicas: whole(o.waitReplicas, 0, "store.wait_replicas", true) };
  }
  if (o.url !== undefined || o.host !== undefined || o.port !== undefined) {
    throw new ConfigError("store.sentinels", "cannot be combined with store.url, store.host or store.port: the Sentinels name the primary");
  }
  if (!o.sentinelName) {
    throw new ConfigError(
      "store.sentinel_name",
      "is required with store.sentinels: the name the Sentinels monitor (sentinel monitor <name> …)",
    );
  }
  const sentinels = list.map((entry, i) => {
    // Named by position; what precedes an `@` (a login put in the wrong place) is never shown.
    if (entry.includes("@")) {
      const shown = JSON.stringify(withoutCredentials(entry));
      throw new ConfigError(
        "store.sentinels",
        `entry [${i}] (${shown}) holds a user or password: give them in store.sentinel_username and store.sentinel_password`,
      );
    }
    const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(entry);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) {
      throw new ConfigError("store.sentinels", `entry [${i}] (${JSON.stringify(entry)}) must be host:port`);
    }
    return { host: m[1]!.replace(/^\[(.*)\]$/, "$1"), port };
  });
  const waitReplicas = whole(o.waitReplicas, 1, "store.wait_replicas", true);
  if (waitReplicas === 0) {
    throw new ConfigError(
      "store.wait_replicas",
      "must be at least 1 with store.sentinels: replication is asynchronous, and a promoted replica that lacks the last lease renewal would grant the lease to a second holder (docs/configuration.md)",
    );
  }
  const sentinelTls = o.sentinelTls === true ? {} : o.sentinelTls || undefined;
  return {
    sentinels,
    sentinelName: o.sentinelName,
    ...(o.sentinelUsername === undefined ? {} : { sentinelUsername: o.sentinelUsername }),
    ...(o.sentinelPassword === undefined ? {} : { sentinelPassword: o.sentinelPassword }),
    ...(sentinelTls === undefined ? {} : { sentinelTls }),
    waitReplicas,
  };
}
