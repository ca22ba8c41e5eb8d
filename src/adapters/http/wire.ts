/**
 * The HTTP transport's wire format, and the validation of everything read from the network.
 *
 * Every message is a `POST /_mc/<kind>` with these headers:
 *   x-mc-from, x-mc-to   sender and receiver node ids
 *   x-mc-seq             the sender's sequence number (decimal, from 1)
 *   x-mc-sig             HMAC-SHA256, base64url (see auth.ts)
 *   x-mc-proto           the sender's protocol version, and x-mc-proto-min the oldest it still
 *                        speaks (both on replies too; see PROTOCOL)
 * Heartbeat and switchover carry a JSON body. A forward carries the original request's body as raw
 * bytes, and its metadata in headers: x-mc-shard, x-mc-epoch, x-mc-method, x-mc-path and
 * x-mc-headers (the selected headers as a JSON object, non-ASCII escaped so it survives as latin1).
 *
 * A successful reply is 200 with x-mc-sig; a forward's reply adds x-mc-status and x-mc-headers and
 * carries the coreapp's body raw. Any other status is the transport's own refusal, with a JSON body
 * `{"error": "<reason>"}`: 400 malformed, 401 unauthenticated, 404 unknown path, 413 body too large,
 * 426 no protocol version in common, 501 no handler, 500 the handler failed.
 */
import type {
  AdminCommand,
  AdminReply,
  EndedTenure,
  FailsafeReply,
  FailsafeRequest,
  HeartbeatMessage,
  HeartbeatReply,
  SettingKey,
  SwitchoverCommand,
  SwitchoverReply,
} from "../../core/ports/transport.js";

/** The URL path of each kind of message. */
export const PATHS = {
  heartbeat: "/_mc/heartbeat",
  forward: "/_mc/forward",
  switchover: "/_mc/switchover",
  admin: "/_mc/admin",
  failsafe: "/_mc/failsafe",
} as const;

/** The kinds of message. */
export type MessageKind = keyof typeof PATHS;

/** Header names (lower case, as node:http and undici report them). */
export const H = {
  from: "x-mc-from",
  to: "x-mc-to",
  seq: "x-mc-seq",
  sig: "x-mc-sig",
  shard: "x-mc-shard",
  epoch: "x-mc-epoch",
  method: "x-mc-method",
  path: "x-mc-path",
  headers: "x-mc-headers",
  status: "x-mc-status",
  proto: "x-mc-proto",
  protoMin: "x-mc-proto-min",
} as const;

/** The protocol versions one node speaks: `version`, and back to `min`. */
export interface ProtocolRange {
  readonly version: number;
  readonly min: number;
}

/**
 * This SDK's node-to-node protocol. Bump `version` when a message changes; raise `min` only when
 * the oldest version can no longer be spoken. Two nodes talk when their ranges overlap, so a
 * cluster in the middle of a rolling upgrade (versions N and N + 1, the newer speaking back to N)
 * keeps working, and nodes too far apart refuse each other with an error naming both ranges.
 * The headers are not signed: altering them can only make a message refused, which anyone on the
 * path can do anyway. A message without them comes from an SDK before versioning: version 1.
 */
export const PROTOCOL: ProtocolRange = { version: 1, min: 1 };

/** The range a message or reply declares; undefined when the headers are malformed. */
export function parseProtocol(version: string | string[] | undefined, min: string | string[] | undefined): ProtocolRange | undefined {
  if (version === undefined && min === undefined) return { version: 1, min: 1 };
  const v = parseSeq(version);
  const m = min === undefined ? v : parseSeq(min);
  return v === undefined || m === undefined || m > v ? undefined : { version: v, min: m };
}

/** True when two nodes have a protocol version in common. */
export function protocolsOverlap(a: ProtocolRange, b: ProtocolRange): boolean {
  return a.min <= b.version && b.min <= a.version;
}

/** "protocol 2 (speaks back to 1)", for errors and logs. */
export function describeProtocol(r: ProtocolRange): string {
  return r.min === r.version ? `protocol ${r.version}` : `protocol ${r.version} (speaks back to ${r.min})`;
}

/** The forward-only fields of a request, as header text; empty strings for heartbeat and switchover. */
export interface ForwardFields {
  readonly shard: string;
  readonly epoch: string;
  readonly method: string;
  readonly path: string;
  readonly headers: string;
}

/** No forward fields: heartbeat and switchover. */
export const NO_FORWARD: ForwardFields = { shard: "", epoch: "", method: "", path: "", headers: "" };

/** Content that failed validation. Internal: the server answers 400, the client throws a protocol error. */
export class MalformedMessage extends Error {}

/** Visible ASCII only: ids and paths go into headers and into the signed text, where a line feed would be ambiguous. */
const NODE_ID = /^[\x21-\x7e]{1,200}$/;
const SEQ = /^[1-9][0-9]{0,15}$/;
const UINT = /^(?:0|[1-9][0-9]{0,15})$/;
const METHOD = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,32}$/;
const PATH = /^\/[\x21-\x7e]{0,8191}$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}$/;
/** Header values may hold any byte but these (RFC 9110 §5.5). */
const BAD_VALUE = /[\r\n\0]/;
const NON_ASCII = /[^\x20-\x7e]/g;
const MAX_HEADERS = 256;
const MAX_TEXT = 1024;

/** True for a node id the transport can carry. */
export function isNodeId(value: unknown): value is string {
  return typeof value === "string" && NODE_ID.test(value);
}

/** True for a method / a path-and-query a forward can carry. */
export function isMethod(value: unknown): value is string {
  return typeof value === "string" && METHOD.test(value);
}

/** True for a path-and-query a forward can carry (starts with "/", visible ASCII, at most 8 KiB). */
export function isForwardPath(value: unknown): value is string {
  return typeof value === "string" && PATH.test(value);
}

/** Parses a sequence number header: a positive safe integer, or undefined. */
export function parseSeq(value: string | string[] | undefined): number | undefined {
  if (typeof value !== "string" || !SEQ.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Parses a non-negative safe integer header (shard, epoch, status), or undefined. */
export function parseUint(value: string | string[] | undefined): number | undefined {
  if (typeof value !== "string" || !UINT.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** True for a non-negative safe integer (shards, epochs). */
function isUint(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isText(value: unknown, max = MAX_TEXT): value is string {
  return typeof value === "string" && value.length <= max;
}

/**
 * Encodes a header map for the x-mc-headers header. Non-ASCII is escaped because header values
 * travel as latin1; JSON already escapes control characters, so the result has no line feed.
 */
export function encodeHeaderMap(headers: Readonly<Record<string, string>>): string {
  const json = JSON.stringify(headers);
  return json.replace(NON_ASCII, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Decodes and validates an x-mc-headers value. Throws MalformedMessage. */
export function decodeHeaderMap(value: string | string[] | undefined): Record<string, string> {
  if (typeof value !== "string") throw new MalformedMessage(`${H.headers} missing`);
  const parsed = parseJson(value);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new MalformedMessage(`${H.headers} is not an object`);
  const out: Record<string, string> = {};
  let count = 0;
  for (const [name, v] of Object.entries(parsed)) {
    if (++count > MAX_HEADERS) throw new MalformedMessage(`${H.headers} has more than ${MAX_HEADERS} entries`);
    // "__proto__" would set the prototype of a plain object instead of adding a header.
    if (!HEADER_NAME.test(name) || name === "__proto__") throw new MalformedMessage(`${H.headers} has an invalid name`);
    if (typeof v !== "string" || BAD_VALUE.test(v)) throw new MalformedMessage(`${H.headers}: ${name} is not a valid value`);
    out[name] = v;
  }
  return out;
}

/** JSON.parse that throws MalformedMessage instead of SyntaxError. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new MalformedMessage("invalid JSON");
  }
}

/** Reads a JSON object body. Throws MalformedMessage. */
function objectBody(body: Uint8Array): Record<string, unknown> {
  const parsed = parseJson(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new MalformedMessage("body is not a JSON object");
  return parsed as Record<string, unknown>;
}

/** Validates a heartbeat body. Unknown fields are dropped, not passed on. */
export function parseHeartbeatMessage(body: Uint8Array): HeartbeatMessage {
  const o = objectBody(body);
  if (!isNodeId(o.master)) throw new MalformedMessage("heartbeat: master must be a node id");
  return { master: o.master };
}

/** Validates a heartbeat reply. */
export function parseHeartbeatReply(body: Uint8Array): HeartbeatReply {
  const o = objectBody(body);
  if (!isNodeId(o.id)) throw new MalformedMessage("heartbeat reply: id must be a node id");
  if (o.shard !== null && !isUint(o.shard)) throw new MalformedMessage("heartbeat reply: shard must be a non-negative integer or null");
  if (o.epoch !== null && !isUint(o.epoch)) throw new MalformedMessage("heartbeat reply: epoch must be a non-negative integer or null");
  return { id: o.id, shard: o.shard, epoch: o.epoch, ended: parseEndedTenure(o.ended) };
}

/** A heartbeat reply's `ended` field: absent or null, or `{ shard, epoch, reason }`. */
function parseEndedTenure(v: unknown): EndedTenure | null {
  if (v === undefined || v === null) return null;
  const e = v as Record<string, unknown>;
  if (typeof v !== "object" || !isUint(e.shard) || !isUint(e.epoch) || typeof e.reason !== "string" || typeof e.refused !== "boolean") {
    throw new MalformedMessage("heartbeat reply: ended must be null or { shard, epoch, reason, refused }");
  }
  return { shard: e.shard, epoch: e.epoch, reason: e.reason.replace(NON_ASCII, "?").slice(0, 200), refused: e.refused };
}

/** Validates a switchover command. */
export function parseSwitchoverCommand(body: Uint8Array): SwitchoverCommand {
  const o = objectBody(body);
  if (!isUint(o.shard)) throw new MalformedMessage("switchover: shard must be a non-negative integer");
  if (o.force !== undefined && typeof o.force !== "boolean") throw new MalformedMessage("switchover: force must be a boolean");
  const force = o.force === true ? { force: true } : {};
  if (o.to === undefined) return { shard: o.shard, ...force };
  if (!isNodeId(o.to)) throw new MalformedMessage("switchover: to must be a node id or name");
  return { shard: o.shard, to: o.to, ...force };
}

/** Validates a switchover reply. */
export function parseSwitchoverReply(body: Uint8Array): SwitchoverReply {
  const o = objectBody(body);
  if (typeof o.ok !== "boolean") throw new MalformedMessage("switchover reply: ok must be a boolean");
  if (!isUint(o.shard) || !isUint(o.epoch)) throw new MalformedMessage("switchover reply: shard and epoch must be non-negative integers");
  if (o.from !== null && !isNodeId(o.from)) throw new MalformedMessage("switchover reply: from must be a node id or null");
  if (o.to !== null && !isNodeId(o.to)) throw new MalformedMessage("switchover reply: to must be a node id or null");
  const reply: { -readonly [K in keyof SwitchoverReply]: SwitchoverReply[K] } = {
    ok: o.ok,
    shard: o.shard,
    from: o.from,
    to: o.to,
    epoch: o.epoch,
  };
  if (o.error !== undefined) {
    const e = o.error as Record<string, unknown> | null;
    if (typeof e !== "object" || e === null || !Number.isSafeInteger(e.code) || !isText(e.message)) {
      throw new MalformedMessage("switchover reply: error must be { code: integer, message: string }");
    }
    reply.error = { code: e.code as number, message: e.message };
  }
  if (o.gapMs !== undefined) {
    if (typeof o.gapMs !== "number" || !Number.isFinite(o.gapMs) || o.gapMs < 0)
      throw new MalformedMessage("switchover reply: gapMs must be a non-negative number");
    reply.gapMs = o.gapMs;
  }
  return reply;
}

const SETTING_KEYS: ReadonlySet<string> = new Set<SettingKey>([
  "heartbeat_interval",
  "unhealthy_interval",
  "db_heartbeat_interval",
  "db_unhealthy_interval",
  "heartbeat_quorum",
  "failsafe_max",
]);

/** A shard number or null (the whole cluster). */
function shardOrNull(v: unknown, what: string): number | null {
  if (v === null) return null;
  if (!isUint(v)) throw new MalformedMessage(`admin: ${what} must be a non-negative integer or null`);
  return v;
}

/** Validates an admin command. Unknown operations and fields are refused; text is bounded. */
export function parseAdminCommand(body: Uint8Array): AdminCommand {
  const o = objectBody(body);
  if (!isText(o.by, 200)) throw new MalformedMessage("admin: by must be text of at most 200 characters");
  const by = o.by;
  switch (o.op) {
    case "settings": {
      const s = o.settings as Record<string, unknown> | null;
      if (typeof s !== "object" || s === null || Array.isArray(s)) throw new MalformedMessage("admin: settings must be an object");
      const settings: Partial<Record<SettingKey, number>> = {};
      for (const [key, value] of Object.entries(s)) {
        if (!SETTING_KEYS.has(key)) throw new MalformedMessage(`admin: unknown setting ${key.replace(NON_ASCII, "?").slice(0, 64)}`);
        if (typeof value !== "number" || !Number.isFinite(value) || value < 0)
          throw new MalformedMessage(`admin: ${key} must be a non-negative number`);
        settings[key as SettingKey] = value;
      }
      return { op: "settings", settings, by };
    }
    case "pause": {
      if (!isText(o.reason, 1000)) throw new MalformedMessage("admin: reason must be text of at most 1000 characters");
      if (typeof o.durationMs !== "number" || !Number.isSafeInteger(o.durationMs) || o.durationMs <= 0) {
        throw new MalformedMessage("admin: durationMs must be a positive integer");
      }
      return { op: "pause", shard: shardOrNull(o.shard, "shard"), reason: o.reason, durationMs: o.durationMs, by };
    }
    case "resume":
      return { op: "resume", shard: shardOrNull(o.shard, "shard"), by };
    case "clear-hold":
      if (!isNodeId(o.node)) throw new MalformedMessage("admin: node must be a node id or name");
      return { op: "clear-hold", node: o.node, by };
    default:
      throw new MalformedMessage("admin: op must be settings, pause, resume or clear-hold");
  }
}

/** Validates an admin reply. */
export function parseAdminReply(body: Uint8Array): AdminReply {
  const o = objectBody(body);
  if (typeof o.ok !== "boolean") throw new MalformedMessage("admin reply: ok must be a boolean");
  const reply: { -readonly [K in keyof AdminReply]: AdminReply[K] } = { ok: o.ok };
  if (o.version !== undefined) {
    if (!isUint(o.version)) throw new MalformedMessage("admin reply: version must be a non-negative integer");
    reply.version = o.version;
  }
  if (o.error !== undefined) {
    const e = o.error as Record<string, unknown> | null;
    if (typeof e !== "object" || e === null || !Number.isSafeInteger(e.code) || !isText(e.message)) {
      throw new MalformedMessage("admin reply: error must be { code: integer, message: string }");
    }
    reply.error = { code: e.code as number, message: e.message.replace(NON_ASCII, "?") };
  }
  return reply;
}

/** A refusal's reason from its JSON body, reduced to short printable text (it comes from the network). */
export function refusalReason(body: Uint8Array): string {
  try {
    const o = objectBody(body);
    if (typeof o.error === "string") return o.error.replace(NON_ASCII, "?").slice(0, 200);
  } catch {
    // An unreadable refusal still has a status; the caller reports that.
  }
  return "no reason given";
}

/** Validates a failsafe request (coreapp → master): a shard and an epoch, nothing else. */
export function parseFailsafeRequest(body: Uint8Array): FailsafeRequest {
  const o = objectBody(body);
  if (!isUint(o.shard)) throw new MalformedMessage("failsafe: shard must be a non-negative integer");
  if (!isUint(o.epoch)) throw new MalformedMessage("failsafe: epoch must be a non-negative integer");
  return { shard: o.shard, epoch: o.epoch };
}

/** Validates a failsafe reply: a promise of `promiseMs`, or a refusal with a reason. */
export function parseFailsafeReply(body: Uint8Array): FailsafeReply {
  const o = objectBody(body);
  if (typeof o.ok !== "boolean") throw new MalformedMessage("failsafe reply: ok must be a boolean");
  if (o.ok) {
    if (typeof o.promiseMs !== "number" || !Number.isFinite(o.promiseMs) || o.promiseMs <= 0)
      throw new MalformedMessage("failsafe reply: promiseMs must be a positive number");
    return { ok: true, promiseMs: o.promiseMs };
  }
  return { ok: false, reason: isText(o.reason, 200) ? o.reason : "refused" };
}
