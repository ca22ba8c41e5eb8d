import { z } from "zod";
import { MAX_HEARTBEAT_QUORUM } from "../core/timing.js";
import { parseDuration } from "./duration.js";

/**
 * The config file's schema (YAML or JSON, snake_case keys as in the model product). Unknown keys
 * are errors, so a typo never silently falls back to a default. See docs/configuration.md.
 */
const duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === null) {
    ctx.addIssue({ code: "custom", message: "must be a duration such as 500ms, 5s or 2m" });
    return z.NEVER;
  }
  return ms;
});

/** A timeout or an interval that 0 would break: every wait failing at once, or a busy loop. */
const positiveDuration = duration.refine((ms) => ms > 0, "must be more than 0");

const port = z.number().int().min(0).max(65535);
const prefix = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,30}$/, "must be letters, digits or _ (at most 31)");
const keyPrefix = z.string().regex(/^[A-Za-z0-9_.:/-]{1,64}$/, "must be 1-64 of letters, digits and _ . : / -");
const timeouts = {
  operation_timeout: positiveDuration.default(2000),
  connect_timeout: positiveDuration.default(2000),
};
/** Keys every backend has beyond its connection: how many failover-history events are kept. */
const common = {
  history_limit: z.number().int().min(1).max(1_000_000).default(1000),
};
/**
 * TLS to a store, the same shape for every networked backend: `true` (verify the server against
 * the system's CAs) or file paths — `ca` (the CA the server's certificate must chain to) and
 * `cert` + `key` (a client certificate, for servers that require one). Verification is never off.
 */
const storeTls = z.union(
  [
    z.boolean(),
    z.strictObject({ ca: z.string().min(1).optional(), cert: z.string().min(1).optional(), key: z.string().min(1).optional() }),
  ],
  { error: "must be true, false or a mapping of file paths { ca, cert, key }" },
);
/** The TLS file paths of a store, or true/false. */
export type StoreTlsConfig = z.output<typeof storeTls>;

const sqlConnection = {
  url: z.string().optional(),
  host: z.string().default("127.0.0.1"),
  user: z.string().optional(),
  password: z.string().optional(),
  database: z.string().default("test"),
  tls: storeTls.default(false),
  /** Renamed to `tls` (the same key on every backend); kept only to say so. */
  ssl: z.never({ error: "was renamed to tls: true, or { ca, cert, key } file paths" }).optional(),
  table_prefix: prefix.default("mc_"),
  pool_size: z.number().int().min(1).max(100).default(4),
  ...timeouts,
  ...common,
};

/** The store backends. */
export const BACKENDS = ["sqlite", "postgres", "mysql", "redis", "etcd"] as const;
/** A store backend's name. */
export type Backend = (typeof BACKENDS)[number];

export const storeSchemas = {
  sqlite: z.strictObject({
    backend: z.literal("sqlite"),
    path: z.string().min(1).default("./multiconnect.db"),
    table_prefix: prefix.default("mc_"),
    poll_interval: positiveDuration.default(5),
    ...common,
  }),
  postgres: z.strictObject({
    backend: z.literal("postgres"),
    port: port.default(5432),
    /** A primary and its standbys ("host:port"); the adapter finds the writable one. */
    hosts: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    ...sqlConnection,
  }),
  mysql: z.strictObject({
    backend: z.literal("mysql"),
    port: port.default(3306),
    poll_interval: positiveDuration.default(50),
    ...sqlConnection,
  }),
  redis: z.strictObject({
    backend: z.literal("redis"),
    url: z.string().optional(),
    host: z.string().default("127.0.0.1"),
    port: port.default(6379),
    username: z.string().optional(),
    password: z.string().optional(),
    db: z.number().int().min(0).default(0),
    tls: storeTls.default(false),
    /** Sentinel mode: "host:port" of each Sentinel (then `host`/`port`/`url` are not used). */
    sentinels: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    sentinel_name: z.string().min(1).optional(),
    sentinel_username: z.string().optional(),
    sentinel_password: z.string().optional(),
    sentinel_tls: storeTls.default(false),
    /** Replicas that must acknowledge each write (WAIT); default 1 with `sentinels`, else 0. */
    wait_replicas: z.number().int().min(0).max(16).optional(),
    key_prefix: keyPrefix.default("mc:"),
    ...timeouts,
    ...common,
  }),
  etcd: z.strictObject({
    backend: z.literal("etcd"),
    hosts: z.union([z.string(), z.array(z.string()).min(1)]).default("http://127.0.0.1:2379"),
    username: z.string().optional(),
    password: z.string().optional(),
    tls: storeTls.default(false),
    key_prefix: keyPrefix.default("mc/"),
    ...timeouts,
    ...common,
  }),
} as const;

/** The `store` section of the config, validated, defaults filled in: one shape per backend. */
export type StoreConfig = { [B in Backend]: z.output<(typeof storeSchemas)[B]> }[Backend];

/** The three node roles. */
export const ROLES = ["master", "coreapp", "webapp"] as const;
/** A node's role. */
export type Role = (typeof ROLES)[number];

export const fileSchema = z.strictObject({
  cluster_name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, "must be 1-63 letters, digits, _ . -"),
  shards: z.number().int().min(1).max(1024).default(1),
  secret: z.string().min(16, "must be at least 16 characters (use ${ENV_VAR} to keep it out of the file)"),
  /** Bearer token of the admin API (`/v1/admin/...`); absent: the admin API is closed. */
  admin_token: z.string().min(16, "must be at least 16 characters (use ${ENV_VAR} to keep it out of the file)").optional(),
  /** How long the primary master keeps a silent node's record before removing it. */
  node_retention: duration.optional(),
  settings: z
    .strictObject({
      heartbeat_interval: duration.default(5_000),
      unhealthy_interval: duration.default(30_000),
      db_heartbeat_interval: duration.default(60_000),
      db_unhealthy_interval: duration.default(120_000),
      // The bound is validateSettings' (src/core/timing.ts), the one check for the file and live changes.
      heartbeat_quorum: z.number().int().min(2).max(MAX_HEARTBEAT_QUORUM).default(2),
      /** Failsafe mode (docs/safety.md): serve through a store outage on every master's promise. Off by default. */
      failsafe_mode: z.boolean().default(false),
      /** With failsafe_mode: the longest a primary serves on promises, from its last liveness record. */
      failsafe_max: duration.default(300_000),
    })
    .default({
      heartbeat_interval: 5_000,
      unhealthy_interval: 30_000,
      db_heartbeat_interval: 60_000,
      db_unhealthy_interval: 120_000,
      heartbeat_quorum: 2,
      failsafe_mode: false,
      failsafe_max: 300_000,
    }),
  store: z.unknown(),
  node: z
    .strictObject({
      role: z.enum(ROLES).optional(),
      name: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, "must be 1-63 letters, digits, _ -")
        .optional(),
      listen_host: z.string().default("0.0.0.0"),
      port: port.optional(),
      external_hostname: z.string().optional(),
      /** The port other nodes dial, when it differs from the listen port (a proxy or NAT in between). */
      advertise_port: z.number().int().min(1).max(65535).optional(),
      /** Coreapps: preferred as standbys in descending order (default 0). */
      priority: z.number().int().min(-1000).max(1000).default(0),
      /** Coreapps: never promoted automatically; a switchover to it needs --force. */
      nofailover: z.boolean().default(false),
      /** The operations endpoint's port (/metrics, /livez, /readyz), on listen_host; none when absent. */
      ops_port: port.optional(),
    })
    .default({ listen_host: "0.0.0.0", priority: 0, nofailover: false }),
  webapp: z
    .strictObject({
      shard_key_header: z
        .string()
        .regex(/^[a-z0-9-]+$/, "must be a lower-case header name")
        .default("x-shard-key"),
      max_body_bytes: z
        .number()
        .int()
        .min(1)
        .max(64 * 1024 * 1024)
        .default(1024 * 1024),
      retry_window: duration.default(5_000),
      forward_timeout: positiveDuration.default(10_000),
      body_timeout: positiveDuration.default(10_000),
      listen: z.boolean().default(true),
      max_inflight_per_shard: z.number().int().min(1).max(100_000).default(256),
      /** The live console at /console (read-only without the admin token); false turns it off. */
      console: z.boolean().default(true),
      max_connections: z.number().int().min(1).max(1_000_000).default(1000),
      // At most 64 KiB: a forwarded request's metadata (path, headers in UTF-8) must fit in the
      // room the transport's frames leave beside the body (256 KiB, FRAME_OVERHEAD).
      max_header_bytes: z
        .number()
        .int()
        .min(1024)
        .max(64 * 1024)
        .default(16 * 1024),
      headers_timeout: duration.default(10_000),
      request_timeout: duration.default(30_000),
      keep_alive_timeout: duration.default(65_000),
      client_rate_limit: z.number().min(0).max(1_000_000).default(0),
      client_rate_burst: z.number().int().min(1).max(1_000_000).optional(),
    })
    .default({
      shard_key_header: "x-shard-key",
      max_body_bytes: 1024 * 1024,
      retry_window: 5_000,
      forward_timeout: 10_000,
      body_timeout: 10_000,
      listen: true,
      max_inflight_per_shard: 256,
      console: true,
      max_connections: 1000,
      max_header_bytes: 16 * 1024,
      headers_timeout: 10_000,
      request_timeout: 30_000,
      keep_alive_timeout: 65_000,
      client_rate_limit: 0,
    }),
  transport: z
    .strictObject({
      /** Mutual TLS between nodes; every node of the cluster must have it, or none. */
      tls: z
        .strictObject({
          cert: z.string().min(1),
          key: z.string().min(1),
          ca: z.string().min(1),
          reload_interval: positiveDuration.default(30_000),
          server_name: z.string().min(1).optional(),
        })
        .optional(),
    })
    .default({}),
  coreapp: z.strictObject({ drain_timeout: duration.default(5_000) }).default({ drain_timeout: 5_000 }),
  media_dir: z.string().optional(),
  log_level: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
});

export type FileConfig = z.output<typeof fileSchema>;

/** What one store section of the config accepts (before defaults), by backend. */
export type StoreConfigInput = { [B in Backend]: z.input<(typeof storeSchemas)[B]> }[Backend];

/**
 * What `parseConfig` accepts: the config file's keys (snake_case), before defaults. Durations
 * are milliseconds or text such as `"5s"`; `${ENV}` in a string is replaced from the environment.
 * Annotate a literal with it (`{ ... } satisfies ConfigInput`) to have keys checked as you type.
 */
export type ConfigInput = Omit<z.input<typeof fileSchema>, "store"> & {
  /** The backend and its connection options (`backend: sqlite | postgres | mysql | redis | etcd`). */
  readonly store: StoreConfigInput;
};
