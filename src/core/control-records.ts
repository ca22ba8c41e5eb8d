import { ClusterDocumentError, ConfigError } from "./errors.js";
import type { ClusterDocument, ClusterDocumentInput, Pause } from "./ports/cluster-document.js";
import {
  HISTORY_EVENT_MAX_BYTES,
  HISTORY_EVENT_TYPES,
  type HistoryEvent,
  type HistoryEventInput,
  type HistoryEventType,
  type HistoryQuery,
} from "./ports/history.js";
import { type ClusterSettings, validateSettings } from "./timing.js";

/**
 * The stored forms of the control plane's records (cluster document, history events), shared by
 * every adapter so that each one only moves them to and from its store: the checks on write, the
 * validation on read, and how pause expiry turns into "time left" live here once.
 */

/** A pause as stored. `expiresAtMs` is on the clock scale of the store that holds it. */
export interface StoredPause {
  readonly shard: number | null;
  readonly by: string;
  readonly reason: string;
  /** Null until the store stamps it (stores that stamp inside a script). */
  readonly pausedAtMs: number | null;
  readonly expiresAtMs: number;
}

/** The cluster document as stored (JSON). */
export interface StoredClusterDocument {
  readonly settings: ClusterSettings;
  readonly shardCount: number;
  readonly pauses: readonly StoredPause[];
}

/** The default bound of the history: the newest 1000 events are kept. */
export const DEFAULT_HISTORY_LIMIT = 1000;

const SETTINGS_KEYS: Record<keyof ClusterSettings, string> = {
  heartbeatIntervalMs: "heartbeat_interval",
  unhealthyIntervalMs: "unhealthy_interval",
  dbHeartbeatIntervalMs: "db_heartbeat_interval",
  dbUnhealthyIntervalMs: "db_unhealthy_interval",
  heartbeatQuorum: "heartbeat_quorum",
  failsafeMaxMs: "failsafe_max",
};

const HISTORY_TYPES: ReadonlySet<string> = new Set<HistoryEventType>(HISTORY_EVENT_TYPES);

const isShard = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const text = (v: unknown, max: number): v is string => typeof v === "string" && v.length <= max;

/**
 * Checks a document offered for writing and turns it into its stored form: each pause's expiry
 * becomes `nowMs + expiresInMs` on the store's clock scale, and a new pause is stamped `wallMs`
 * (null: the store stamps it later in the same atomic operation). Throws `ClusterDocumentError`.
 */
export function encodeClusterDocument(doc: ClusterDocumentInput, nowMs: number, wallMs: number | null): StoredClusterDocument {
  const problem = (what: string) => new ClusterDocumentError(`refused before writing: ${what}`);
  checkSettings(doc.settings, (key, why) => problem(`settings.${key}: ${why}`));
  if (!Number.isSafeInteger(doc.shardCount) || doc.shardCount < 1) {
    throw problem(`shard_count: must be a positive integer, got ${doc.shardCount}`);
  }
  // `unknown` first: Array.isArray would narrow the typed list to any[].
  if (!Array.isArray(doc.pauses as unknown)) throw problem("pauses: must be a list");
  const seen = new Set<number | null>();
  const pauses = doc.pauses.map((p, i): StoredPause => {
    const at = `pauses[${i}]`;
    if (p.shard !== null && !(isShard(p.shard) && p.shard < doc.shardCount)) {
      throw problem(`${at}.shard: must be null (the whole cluster) or a shard below ${doc.shardCount}, got ${p.shard}`);
    }
    if (seen.has(p.shard)) throw problem(`${at}: a second pause of ${p.shard === null ? "the cluster" : `shard ${p.shard}`}`);
    seen.add(p.shard);
    if (!text(p.by, 200) || p.by.length === 0) throw problem(`${at}.by: must be 1 to 200 characters`);
    if (!text(p.reason, 1000)) throw problem(`${at}.reason: must be at most 1000 characters`);
    if (!Number.isFinite(p.expiresInMs) || p.expiresInMs <= 0) {
      throw problem(`${at}.expires_in: must be a positive number of ms, got ${p.expiresInMs}`);
    }
    if (p.pausedAtMs !== undefined && !Number.isFinite(p.pausedAtMs)) throw problem(`${at}.paused_at: must be a number of ms`);
    return {
      shard: p.shard,
      by: p.by,
      reason: p.reason,
      pausedAtMs: p.pausedAtMs ?? wallMs,
      expiresAtMs: nowMs + Math.ceil(p.expiresInMs),
    };
  });
  return { settings: copySettings(doc.settings), shardCount: doc.shardCount, pauses };
}

/**
 * Reads a stored document (JSON) at store time `nowMs` (same scale as its pauses' expiries):
 * validates it and keeps only the pauses still in force; a pause never stamped gets `stampMs` (the
 * write's time, for stores that record it beside the document). Throws `ClusterDocumentError`
 * naming `version` and the problem.
 */
export function decodeClusterDocument(json: string, version: number, nowMs: number, stampMs?: number): ClusterDocument {
  const problem = (what: string) =>
    new ClusterDocumentError(`version ${version} in the store is invalid: ${what}; the primary master must write a valid one`);
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw problem("not JSON");
  }
  const d = raw as Partial<StoredClusterDocument> | null;
  if (typeof d !== "object" || d === null || typeof d.settings !== "object" || d.settings === null) {
    throw problem("settings: missing");
  }
  checkSettings(d.settings, (key, why) => problem(`settings.${key}: ${why}`));
  if (!Number.isSafeInteger(d.shardCount) || (d.shardCount as number) < 1) throw problem(`shard_count: ${String(d.shardCount)}`);
  if (!Array.isArray(d.pauses)) throw problem("pauses: missing");
  const pauses: Pause[] = [];
  for (const [i, p] of (d.pauses as StoredPause[]).entries()) {
    if (
      typeof p !== "object" ||
      p === null ||
      !(p.shard === null || isShard(p.shard)) ||
      typeof p.by !== "string" ||
      typeof p.reason !== "string" ||
      !Number.isFinite(p.pausedAtMs ?? stampMs) ||
      !Number.isFinite(p.expiresAtMs)
    ) {
      throw problem(`pauses[${i}]: malformed`);
    }
    const left = Number(p.expiresAtMs) - nowMs;
    if (left > 0) pauses.push({ shard: p.shard, by: p.by, reason: p.reason, pausedAtMs: p.pausedAtMs ?? stampMs!, expiresInMs: left });
  }
  return { settings: copySettings(d.settings), shardCount: d.shardCount as number, pauses };
}

/** Runs `validateSettings` on a value of unknown shape, reporting through `fail(key, why)`. */
function checkSettings(s: ClusterSettings, fail: (key: string, why: string) => Error): void {
  for (const [field, key] of Object.entries(SETTINGS_KEYS)) {
    const v = (s as unknown as Record<string, unknown>)[field];
    if (v !== undefined && typeof v !== "number") throw fail(key, `must be a number, got ${JSON.stringify(v)}`);
  }
  try {
    validateSettings(s, "settings");
  } catch (error) {
    if (error instanceof ConfigError) throw fail(error.key.replace(/^settings\./, ""), error.message.replace(/^config: [^:]+: /, ""));
    throw error;
  }
}

function copySettings(s: ClusterSettings): ClusterSettings {
  return {
    heartbeatIntervalMs: s.heartbeatIntervalMs,
    unhealthyIntervalMs: s.unhealthyIntervalMs,
    dbHeartbeatIntervalMs: s.dbHeartbeatIntervalMs,
    dbUnhealthyIntervalMs: s.dbUnhealthyIntervalMs,
    ...(s.heartbeatQuorum === undefined ? {} : { heartbeatQuorum: s.heartbeatQuorum }),
    ...(s.failsafeMaxMs === undefined ? {} : { failsafeMaxMs: s.failsafeMaxMs }),
  };
}

/** The stored body of an event (everything but seq, time and shard), checked. Throws `RangeError`. */
export function encodeHistoryEvent(e: HistoryEventInput): string {
  if (!HISTORY_TYPES.has(e.type)) throw new RangeError(`history: unknown event type ${JSON.stringify(e.type)}`);
  if (e.shard !== null && !isShard(e.shard))
    throw new RangeError(`history: shard must be null or a whole number ≥ 0, got ${String(e.shard)}`);
  if (!text(e.cause, 1000)) throw new RangeError("history: cause must be a string of at most 1000 characters");
  if (!text(e.node, 255) || e.node.length === 0) throw new RangeError("history: node must be a node id of 1 to 255 characters");
  if (typeof e.evidence !== "object" || e.evidence === null || Array.isArray(e.evidence)) {
    throw new RangeError("history: evidence must be a JSON object");
  }
  for (const [k, v] of Object.entries(e.epochs)) {
    if (!Number.isSafeInteger(v)) throw new RangeError(`history: epochs.${k} must be a whole number, got ${v}`);
  }
  const body = JSON.stringify({ type: e.type, cause: e.cause, evidence: e.evidence, epochs: e.epochs, node: e.node });
  if (Buffer.byteLength(body) > HISTORY_EVENT_MAX_BYTES) {
    throw new RangeError(`history: the event is ${Buffer.byteLength(body)} bytes as JSON; at most ${HISTORY_EVENT_MAX_BYTES}`);
  }
  return body;
}

/** An event from its stored parts. */
export function decodeHistoryEvent(seq: number, atMs: number, shard: number | null, body: string): HistoryEvent {
  const b = JSON.parse(body) as Omit<HistoryEventInput, "shard">;
  return { seq, atMs, shard, type: b.type, cause: b.cause, evidence: b.evidence, epochs: b.epochs, node: b.node };
}

/** How many events a `list()` returns at most: the query's limit, capped by the store's bound. */
export function historyListLimit(query: HistoryQuery, bound: number): number {
  const limit = query.limit ?? bound;
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`history: limit must be a positive whole number, got ${limit}`);
  if (query.shard !== undefined && !isShard(query.shard))
    throw new RangeError(`history: shard must be a whole number ≥ 0, got ${String(query.shard)}`);
  if (query.before !== undefined && !Number.isSafeInteger(query.before)) {
    throw new RangeError(`history: before must be a sequence number, got ${query.before}`);
  }
  return Math.min(limit, bound);
}

/** Checks an adapter's `historyLimit` option (`key`: its config key); the default when unset. */
export function checkHistoryLimit(value: number | undefined, key = "store.history_limit"): number {
  if (value === undefined) return DEFAULT_HISTORY_LIMIT;
  if (!Number.isSafeInteger(value) || value < 1) throw new ConfigError(key, `must be a positive whole number, got ${value}`);
  return value;
}
