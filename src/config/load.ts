import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parse as parseYaml, YAMLError } from "yaml";
import type { z } from "zod";
import { ConfigError } from "../core/errors.js";
import type { Placement } from "../core/master/placement.js";
import { DEFAULT_SETTINGS, validateSettings, type ClusterSettings } from "../core/timing.js";
import { interpolateEnv } from "./interpolate.js";
import { BACKENDS, fileSchema, storeSchemas, type Backend, type FileConfig, type Role, type StoreConfig } from "./schema.js";

/** A validated configuration, ready for the composition root. */
export interface Config {
  /** `cluster_name`: names the cluster in logs and in the store. */
  readonly clusterName: string;
  /** `shards`: the number of shards; fixed for the cluster's life (the shard of a key depends on it). */
  readonly shards: number;
  /** `secret`: authenticates every node-to-node message (at least 16 characters); never logged. */
  readonly secret: string;
  /** `admin_token`: the admin API's bearer token; undefined closes the admin API (every admin call is 401). */
  readonly adminToken: string | undefined;
  /** `settings`: the failure-detection intervals' first values (the cluster document holds the live ones). */
  readonly settings: ClusterSettings;
  /** `node_retention`: how long a silent node stays listed (as `down`) before the primary master removes it. */
  readonly nodeRetentionMs: number;
  /** `store`: the backend and its connection options, defaults filled in. */
  readonly store: StoreConfig;
  /** `node`: this process's defaults (each can be overridden when the node is created). */
  readonly node: {
    /** `node.role`: master, coreapp or webapp. */
    readonly role: Role | undefined;
    /** `node.name`: the node's name (default: its role). */
    readonly name: string | undefined;
    /** `node.listen_host`: the address to listen on (default `0.0.0.0`). */
    readonly listenHost: string;
    /** `node.port`: the port to listen on (default by role: master 6260, coreapp 6250, webapp 9090). */
    readonly port: number | undefined;
    /** How other machines reach this node: `EXTERNAL_HOSTNAME`, else the file, else the host name. */
    readonly externalHostname: string;
    /** The port other nodes dial when it is not the listen port (a proxy or NAT in between). */
    readonly advertisePort: number | undefined;
    /** Coreapps: standby preference and the never-promote tag (src/core/master/placement.ts). */
    readonly placement: Placement;
    /** Port of the node's operations endpoint (/metrics, /livez, /readyz); none when undefined. */
    readonly opsPort: number | undefined;
  };
  /** `webapp`: request routing. */
  readonly webapp: {
    /** `webapp.shard_key_header`: the header carrying the shard key (default `x-shard-key`). */
    shardKeyHeader: string;
    /** `webapp.max_body_bytes`: larger request bodies get a 413 (default 1 MiB). */
    maxBodyBytes: number;
    /** `webapp.retry_window`: how long a request waits through a failover before the 503 (default 5 s). */
    retryWindowMs: number;
    /** `webapp.forward_timeout`: the timeout of one forwarding attempt (default 10 s). */
    forwardTimeoutMs: number;
    /** `webapp.body_timeout`: how long a client may take to send the request body before it gets 408 (default 10 s). */
    bodyTimeoutMs: number;
    /** `webapp.listen`: whether a webapp opens its own listener (an embedded one may serve only through its host; default true). */
    listen: boolean;
    /** `webapp.max_inflight_per_shard`: requests one webapp forwards to one shard at once; past it the answer is 1016 at once (default 256). */
    maxInflightPerShard: number;
    /** `webapp.console`: serve the live console at /console (default true; read-only without the admin token). */
    console: boolean;
    /** `webapp.max_connections`: open client connections to the own listener; past it a new one is closed at once (default 1000). */
    maxConnections: number;
    /** `webapp.max_header_bytes`: the request line and headers together; past it the answer is 431 (default 16 KiB). */
    maxHeaderBytes: number;
    /** `webapp.headers_timeout`: how long a client may take to send the request line and headers; then 408 and close (default 10 s). */
    headersTimeoutMs: number;
    /** `webapp.request_timeout`: how long a client may take to send a whole request, headers and body (default 30 s). */
    requestTimeoutMs: number;
    /** `webapp.keep_alive_timeout`: how long an idle keep-alive connection stays open (default 65 s). */
    keepAliveTimeoutMs: number;
    /** `webapp.client_rate_limit`: requests per second one client address may send on average; 0 turns the limit off (default 0). */
    clientRateLimit: number;
    /** `webapp.client_rate_burst`: requests one client may send at once (default: one second's worth, at least 1). */
    clientRateBurst: number;
  };
  /** `coreapp`: shard ownership. */
  readonly coreapp: {
    /** `coreapp.drain_timeout`: on a planned handover, how long the old primary waits for requests in flight before `onDemote` (default 5 s). */
    drainTimeoutMs: number;
  };
  /** `media_dir`: a directory every node checks for read/write access at start (optional). */
  /** `transport`: node-to-node transport: mutual TLS files when configured (see docs/security.md). */
  readonly transport: {
    /** `transport.tls`: mutual TLS files, or undefined for plain HTTP between nodes. */
    readonly tls: TransportTlsConfig | undefined;
  };
  /** `media_dir`: a directory every node checks for read/write access at start (optional). */
  readonly mediaDir: string | undefined;
  /** `log_level`: the default logger's level (default `info`). */
  readonly logLevel: "debug" | "info" | "warn" | "error" | "silent";
}

/** `transport.tls`: paths of PEM files, read when the node starts and again every `reloadIntervalMs`. */
export interface TransportTlsConfig {
  /** `transport.tls.cert`: this node's certificate (PEM file). */
  readonly cert: string;
  /** `transport.tls.key`: its private key, unencrypted (PEM file). */
  readonly key: string;
  /** `transport.tls.ca`: the CA certificate(s) every peer's certificate must chain to (PEM file). */
  readonly ca: string;
  /** `transport.tls.reload_interval`: how often the files are read again (default 30 s). */
  readonly reloadIntervalMs: number;
  /** `transport.tls.server_name`: the name a listener's certificate must carry; default the dialled host. */
  readonly serverName: string | undefined;
}

/** Reads, interpolates and validates a config file. Throws `ConfigError` naming the key. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError("(file)", `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  return parseConfig(file.endsWith(".json") ? parseJson(file, text) : parseYamlFile(file, text), env);
}

/**
 * The file's JSON. A syntax error is reported by position only: Node's own message quotes the text
 * around the error, which may be the secret.
 */
function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const at = jsonErrorOffset(text);
    throw new ConfigError("(file)", `${file} is not valid JSON${at === undefined ? "" : ` at ${lineColumn(text, at)}`}`);
  }
}

/**
 * The file's YAML. An error is reported by position and the library's code only: its message
 * quotes the source (the line, an alias or tag name), which may be the secret. The library's own
 * warnings, which quote it too, are not written to stderr (`logLevel`).
 */
function parseYamlFile(file: string, text: string): unknown {
  try {
    return parseYaml(text, { logLevel: "error" });
  } catch (error) {
    if (error instanceof YAMLError && error.linePos) {
      const { line, col } = error.linePos[0];
      throw new ConfigError("(file)", `${file} is not valid YAML at line ${line}, column ${col} (${error.code})`);
    }
    // Resolving an alias (`*name`) fails without a position, e.g. when no `&name` anchor precedes it.
    const alias = error instanceof ReferenceError ? " (an alias *name cannot be resolved: quote a value that starts with *)" : "";
    throw new ConfigError("(file)", `${file} is not valid YAML${alias}`);
  }
}

/** JSON's grammar tokens, sticky (`y`): they match at `lastIndex` only. A string holds any character but `"`, a backslash and the controls, or an escape. */
const JSON_SPACE = /[ \t\n\r]*/y;
const JSON_STRING = /"(?:[\u0020\u0021\u0023-\u005b\u005d-\uffff]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y;
const JSON_SCALAR = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;

/**
 * Where `text` stops being JSON (a UTF-16 offset), found by a scan of the grammar because V8's
 * message gives no position when it quotes the text; undefined if the scan finds no error.
 */
function jsonErrorOffset(text: string): number | undefined {
  let i = 0;
  const token = (re: RegExp): boolean => {
    re.lastIndex = i;
    if (!re.test(text)) return false;
    i = re.lastIndex;
    return true;
  };
  const char = (c: string): boolean => {
    token(JSON_SPACE);
    if (text[i] !== c) return false;
    i++;
    return true;
  };
  const members = (close: string, member: () => boolean): boolean => {
    if (char(close)) return true;
    do {
      if (!member()) return false;
    } while (char(","));
    return char(close);
  };
  const value = (): boolean => {
    if (char("{")) return members("}", () => token(JSON_SPACE) && token(JSON_STRING) && char(":") && value());
    if (char("[")) return members("]", value);
    return token(JSON_STRING) || token(JSON_SCALAR);
  };
  if (!value()) return i;
  token(JSON_SPACE);
  return i < text.length ? i : undefined;
}

/** "line 3, column 12" of a UTF-16 offset into `text` (both from 1). */
function lineColumn(text: string, offset: number): string {
  const lines = text.slice(0, offset).split("\n");
  return `line ${lines.length}, column ${lines.at(-1)!.length + 1}`;
}

/**
 * Validates an already-parsed config object (for embedding): the file's keys, typed as
 * `ConfigInput` (write `parseConfig({ ... } satisfies ConfigInput)` to have them checked while
 * typing). Takes `unknown` because it also validates what a file or another program produced.
 * Throws `ConfigError` naming the key.
 */
export function parseConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): Config {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError("(root)", "must be a mapping of keys to values");
  const f = check(fileSchema, interpolateEnv(raw, env), "");
  const store = parseStore(f.store);
  const settings: ClusterSettings = {
    heartbeatIntervalMs: f.settings.heartbeat_interval ?? DEFAULT_SETTINGS.heartbeatIntervalMs,
    unhealthyIntervalMs: f.settings.unhealthy_interval ?? DEFAULT_SETTINGS.unhealthyIntervalMs,
    dbHeartbeatIntervalMs: f.settings.db_heartbeat_interval ?? DEFAULT_SETTINGS.dbHeartbeatIntervalMs,
    dbUnhealthyIntervalMs: f.settings.db_unhealthy_interval ?? DEFAULT_SETTINGS.dbUnhealthyIntervalMs,
    heartbeatQuorum: f.settings.heartbeat_quorum,
    // One live setting carries both file keys: 0 is off, and the document stores only the number.
    failsafeMaxMs: f.settings.failsafe_mode ? f.settings.failsafe_max : 0,
  };
  validateSettings(settings);
  if (f.admin_token !== undefined && f.admin_token === f.secret) {
    throw new ConfigError(
      "admin_token",
      "must differ from the cluster secret (the secret signs messages between nodes; give operators another token)",
    );
  }
  const tls = f.transport.tls;
  const transportTls: TransportTlsConfig | undefined =
    tls === undefined
      ? undefined
      : { cert: tls.cert, key: tls.key, ca: tls.ca, reloadIntervalMs: tls.reload_interval, serverName: tls.server_name };
  return {
    clusterName: f.cluster_name,
    shards: f.shards,
    secret: f.secret,
    adminToken: f.admin_token,
    settings,
    nodeRetentionMs: nodeRetention(f.node_retention, settings.dbUnhealthyIntervalMs),
    store,
    node: {
      role: f.node.role,
      name: f.node.name,
      listenHost: f.node.listen_host,
      port: f.node.port,
      externalHostname: env["EXTERNAL_HOSTNAME"] || f.node.external_hostname || hostname(),
      advertisePort: f.node.advertise_port,
      placement: { priority: f.node.priority, nofailover: f.node.nofailover },
      opsPort: f.node.ops_port,
    },
    webapp: {
      shardKeyHeader: f.webapp.shard_key_header,
      maxBodyBytes: f.webapp.max_body_bytes,
      retryWindowMs: f.webapp.retry_window,
      forwardTimeoutMs: f.webapp.forward_timeout,
      bodyTimeoutMs: f.webapp.body_timeout,
      listen: f.webapp.listen,
      maxInflightPerShard: f.webapp.max_inflight_per_shard,
      console: f.webapp.console,
      ...webappLimits(f.webapp),
    },
    coreapp: { drainTimeoutMs: f.coreapp.drain_timeout },
    transport: { tls: transportTls },
    mediaDir: f.media_dir,
    logLevel: f.log_level,
  };
}

/**
 * The webapp's connection and request limits, checked against each other: Node refuses a headers
 * timeout longer than the request timeout, and a request timeout shorter than `body_timeout` would
 * cut bodies off before the webapp's own, clearer 408 could.
 */
function webappLimits(
  w: FileConfig["webapp"],
): Pick<
  Config["webapp"],
  | "maxConnections"
  | "maxHeaderBytes"
  | "headersTimeoutMs"
  | "requestTimeoutMs"
  | "keepAliveTimeoutMs"
  | "clientRateLimit"
  | "clientRateBurst"
> {
  if (w.headers_timeout <= 0) throw new ConfigError("webapp.headers_timeout", `must be positive, got ${w.headers_timeout} ms`);
  if (w.request_timeout < w.headers_timeout) {
    throw new ConfigError(
      "webapp.request_timeout",
      `must be at least webapp.headers_timeout (${w.headers_timeout} ms), got ${w.request_timeout} ms`,
    );
  }
  if (w.request_timeout < w.body_timeout) {
    throw new ConfigError(
      "webapp.request_timeout",
      `must be at least webapp.body_timeout (${w.body_timeout} ms), got ${w.request_timeout} ms`,
    );
  }
  if (w.keep_alive_timeout <= 0) throw new ConfigError("webapp.keep_alive_timeout", `must be positive, got ${w.keep_alive_timeout} ms`);
  if (w.client_rate_burst !== undefined && w.client_rate_limit === 0) {
    throw new ConfigError("webapp.client_rate_burst", "has no effect without webapp.client_rate_limit (requests per second, > 0)");
  }
  return {
    maxConnections: w.max_connections,
    maxHeaderBytes: w.max_header_bytes,
    headersTimeoutMs: w.headers_timeout,
    requestTimeoutMs: w.request_timeout,
    keepAliveTimeoutMs: w.keep_alive_timeout,
    clientRateLimit: w.client_rate_limit,
    clientRateBurst: w.client_rate_burst ?? Math.max(1, Math.ceil(w.client_rate_limit)),
  };
}

/** The shortest retention by default: long enough for an operator to see what died. */
const MIN_DEFAULT_RETENTION_MS = 3_600_000;

/**
 * `node_retention`, default max(10 × db_unhealthy_interval, 1 h): ten store-detection windows is
 * far past any pause a live node can come back from, and the hour keeps a dead node visible as
 * `down` long enough to be noticed. Shorter than 2 × db_unhealthy_interval is refused: a node only
 * marked down a moment ago (a long GC pause, a store blip) must not lose its record.
 */
function nodeRetention(configured: number | undefined, dbUnhealthyIntervalMs: number): number {
  if (configured === undefined) return Math.max(10 * dbUnhealthyIntervalMs, MIN_DEFAULT_RETENTION_MS);
  if (configured < 2 * dbUnhealthyIntervalMs) {
    throw new ConfigError(
      "node_retention",
      `must be at least 2 × db_unhealthy_interval (${2 * dbUnhealthyIntervalMs} ms), got ${configured} ms`,
    );
  }
  return configured;
}

function parseStore(raw: unknown): StoreConfig {
  if (!raw || typeof raw !== "object") throw new ConfigError("store", "is required: a mapping with at least `backend`");
  const backend = (raw as { backend?: unknown }).backend;
  if (typeof backend !== "string" || !(BACKENDS as readonly string[]).includes(backend)) {
    throw new ConfigError("store.backend", `unknown backend ${JSON.stringify(backend ?? null)}; expected one of ${BACKENDS.join(", ")}`);
  }
  return check(storeSchemas[backend as Backend], raw, "store") as StoreConfig;
}

/** Runs a zod schema and turns its first issue into a `ConfigError` (values are never echoed). */
function check<S extends z.ZodType>(schema: S, value: unknown, base: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = [base, ...issue.path.map(String)].filter(Boolean).join(".");
  if (issue.code === "unrecognized_keys") {
    const keys = (issue as { keys: string[] }).keys;
    throw new ConfigError(path ? `${path}.${keys[0]}` : keys[0]!, "unknown key");
  }
  const missing = issue.code === "invalid_type" && /received undefined/.test(issue.message);
  throw new ConfigError(
    path || "(root)",
    missing ? `is required (${issue.message.replace(/^Invalid input: /, "").replace(/, received undefined$/, "")})` : issue.message,
  );
}
