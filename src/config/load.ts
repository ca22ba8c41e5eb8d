import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { ConfigError } from "../core/errors.js";
import { DEFAULT_SETTINGS, validateSettings, type ClusterSettings } from "../core/timing.js";
import { interpolateEnv } from "./interpolate.js";
import { BACKENDS, fileSchema, storeSchemas, type Backend, type Role, type StoreConfig } from "./schema.js";

/** A validated configuration, ready for the composition root. */
export interface Config {
  readonly clusterName: string;
  readonly shards: number;
  readonly secret: string;
  readonly settings: ClusterSettings;
  readonly store: StoreConfig;
  readonly node: {
    readonly role: Role | undefined;
    readonly name: string | undefined;
    readonly listenHost: string;
    readonly port: number | undefined;
    /** How other machines reach this node: `EXTERNAL_HOSTNAME`, else the file, else the host name. */
    readonly externalHostname: string;
    /** The port other nodes dial when it is not the listen port (a proxy or NAT in between). */
    readonly advertisePort: number | undefined;
    /** Port of the node's operations endpoint (/metrics, /livez, /readyz); none when undefined. */
    readonly opsPort: number | undefined;
  };
  readonly webapp: { shardKeyHeader: string; maxBodyBytes: number; retryWindowMs: number; forwardTimeoutMs: number };
  readonly coreapp: { drainTimeoutMs: number };
  readonly mediaDir: string | undefined;
  readonly logLevel: "debug" | "info" | "warn" | "error" | "silent";
}

/** Reads, interpolates and validates a config file. Throws `ConfigError` naming the key. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError("(file)", `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let raw: unknown;
  try {
    raw = file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError("(file)", `${file} is not valid ${file.endsWith(".json") ? "JSON" : "YAML"}: ${(error as Error).message.split("\n")[0]}`);
  }
  return parseConfig(raw, env);
}

/** Validates an already-parsed config object (for embedding). Throws `ConfigError` naming the key. */
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
  };
  validateSettings(settings);
  return {
    clusterName: f.cluster_name,
    shards: f.shards,
    secret: f.secret,
    settings,
    store,
    node: {
      role: f.node.role,
      name: f.node.name,
      listenHost: f.node.listen_host,
      port: f.node.port,
      externalHostname: env["EXTERNAL_HOSTNAME"] || f.node.external_hostname || hostname(),
      advertisePort: f.node.advertise_port,
      opsPort: f.node.ops_port,
    },
    webapp: {
      shardKeyHeader: f.webapp.shard_key_header,
      maxBodyBytes: f.webapp.max_body_bytes,
      retryWindowMs: f.webapp.retry_window,
      forwardTimeoutMs: f.webapp.forward_timeout,
    },
    coreapp: { drainTimeoutMs: f.coreapp.drain_timeout },
    mediaDir: f.media_dir,
    logLevel: f.log_level,
  };
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
  throw new ConfigError(path || "(root)", missing ? `is required (${issue.message.replace(/^Invalid input: /, "").replace(/, received undefined$/, "")})` : issue.message);
}
