/**
 * The transport's messages: what each kind of request and reply carries, and the validation of
 * everything read from the network. Frames and the handshake are in frames.ts and handshake.ts.
 *
 * A request frame's payload is one kind byte (see KIND_CODES) and the kind's body. Heartbeat,
 * switchover and admin bodies are JSON in both directions. A forward is binary: the shard, epoch,
 * method, path and selected headers (MetaWriter below), then the original body's raw bytes; its
 * reply is one outcome byte (served, not serving, application failed) and, for a response, the
 * status, headers and body.
 *
 * Adding a kind: a name and code in KIND_CODES, a request and a reply parser in JSON_KINDS, a
 * handler in TransportHandlers and a method on Transport (see docs/architecture.md, transport).
 */
import type { NodeRole } from "../../core/ports/liveness.js";
import { isForwardToken, MAX_FORWARD_HEADERS } from "../../core/ports/transport.js";
import type {
  AdminCommand,
  AdminReply,
  EndedTenure,
  ForwardRequest,
  ForwardResponse,
  ExitNotice,
  ExitReply,
  FailsafeReply,
  FailsafeRequest,
  HeartbeatMessage,
  HeartbeatReply,
  SettingKey,
  SwitchoverCommand,
  SwitchoverReply,
} from "../../core/ports/transport.js";

/** The kinds of request and the byte that names each on the wire. Codes are never reused. */
export const KIND_CODES = {
  heartbeat: 1,
  forward: 2,
  switchover: 3,
  admin: 4,
  exited: 5,
  failsafe: 6,
} as const;

/** The kinds of request. */
export type MessageKind = keyof typeof KIND_CODES;

/** Kind by wire code. */
export const KIND_BY_CODE: ReadonlyMap<number, MessageKind> = new Map(
  Object.entries(KIND_CODES).map(([kind, code]) => [code, kind as MessageKind]),
);

/** The protocol versions one node speaks: `version`, and back to `min`. */
export interface ProtocolRange {
  readonly version: number;
  readonly min: number;
}

/**
 * This SDK's node-to-node protocol. Bump `version` when a message changes; raise `min` only when
 * the oldest version can no longer be spoken. Two nodes talk when their ranges overlap, so a
 * cluster in the middle of a rolling upgrade (versions N and N + 1, the newer speaking back to N)
 * keeps working, and nodes too far apart refuse each other at the handshake with an error naming
 * both ranges. Version 2 is the framed transport; version 1 (HTTP) is not spoken any more.
 */
export const PROTOCOL: ProtocolRange = { version: 2, min: 2 };

/** A range from a hello or challenge (`[version, min]`); undefined when malformed. */
export function parseProtocol(value: unknown): ProtocolRange | undefined {
  if (!Array.isArray(value) || value.length !== 2) return undefined;
  const [v, m] = value as unknown[];
  if (!isUint(v) || !isUint(m) || v < 1 || m < 1 || m > v) return undefined;
  return { version: v, min: m };
}

/** True when two nodes have a protocol version in common. */
export function protocolsOverlap(a: ProtocolRange, b: ProtocolRange): boolean {
  return a.min <= b.version && b.min <= a.version;
}

/** "protocol 2 (speaks back to 1)", for errors and logs. */
export function describeProtocol(r: ProtocolRange): string {
  return r.min === r.version ? `protocol ${r.version}` : `protocol ${r.version} (speaks back to ${r.min})`;
}

/** Content that failed validation. Internal: the server answers 400, the client throws a protocol error. */
export class MalformedMessage extends Error {}

/** Visible ASCII only: ids and paths go into headers and into the signed text, where a line feed would be ambiguous. */
const NODE_ID = /^[\x21-\x7e]{1,200}$/;
const PATH = /^\/[\x21-\x7e]{0,8191}$/;
/** Header values may hold any byte but these (RFC 9110 §5.5). */
const BAD_VALUE = /[\r\n\0]/;
const NON_ASCII = /[^\x20-\x7e]/g;
const MAX_TEXT = 1024;

/** True for a node id the transport can carry. */
export function isNodeId(value: unknown): value is string {
  return typeof value === "string" && NODE_ID.test(value);
}

/** True for a method / a path-and-query a forward can carry. */
export function isMethod(value: unknown): value is string {
  return typeof value === "string" && isForwardToken(value, 32);
}

/** True for a path-and-query a forward can carry (starts with "/", visible ASCII, at most 8 KiB). */
export function isForwardPath(value: unknown): value is string {
  return typeof value === "string" && PATH.test(value);
}

/** True for a non-negative safe integer (shards, epochs). */
function isUint(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isText(value: unknown, max = MAX_TEXT): value is string {
  return typeof value === "string" && value.length <= max;
}

/**
 * Writes a forward's metadata: numbers big-endian, each string as a u32 byte length and its UTF-8
 * bytes (lossless for any string a header value can hold). Binary rather than JSON because it runs
 * twice per forwarded request on each side: no intermediate text, no parse, one allocation.
 */
class MetaWriter {
  private readonly buf: Buffer;
  private at = 0;

  /** `maxBytes`: at least what will be written (see {@link strBound} and {@link headersBound}). */
  constructor(maxBytes: number) {
    this.buf = Buffer.allocUnsafe(maxBytes);
  }

  u8(v: number): this {
    this.at = this.buf.writeUInt8(v, this.at);
    return this;
  }

  u16(v: number): this {
    this.at = this.buf.writeUInt16BE(v, this.at);
    return this;
  }

  u32(v: number): this {
    this.at = this.buf.writeUInt32BE(v, this.at);
    return this;
  }

  /** A non-negative safe integer, in 8 bytes. */
  uint(v: number): this {
    return this.u32(Math.floor(v / 2 ** 32)).u32(v >>> 0);
  }

  str(t: string): this {
    const n = this.buf.write(t, this.at + 4, "utf8");
    this.buf.writeUInt32BE(n, this.at);
    this.at += 4 + n;
    return this;
  }

  headers(h: Readonly<Record<string, string>>): this {
    const names = Object.keys(h);
    this.u32(names.length);
    for (const name of names) this.str(name).str(h[name]!);
    return this;
  }

  done(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

/** The most bytes {@link MetaWriter.str} writes for `t`: its length field, and UTF-8's at most 3 bytes per UTF-16 unit. */
function strBound(t: string): number {
  return 4 + 3 * t.length;
}

/** The most bytes {@link MetaWriter.headers} writes for `h`. */
function headersBound(h: Readonly<Record<string, string>>): number {
  let size = 4;
  for (const name of Object.keys(h)) size += strBound(name) + strBound(h[name]!);
  return size;
}

/** Reads what {@link MetaWriter} wrote; each read past the end throws MalformedMessage. */
class MetaReader {
  private at = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  private need(n: number): number {
    if (this.buf.length - this.at < n) throw new MalformedMessage(`${this.what}: truncated`);
    const at = this.at;
    this.at += n;
    return at;
  }

  u8(): number {
    return this.buf.readUInt8(this.need(1));
  }

  u16(): number {
    return this.buf.readUInt16BE(this.need(2));
  }

  u32(): number {
    return this.buf.readUInt32BE(this.need(4));
  }

  uint(): number {
    const hi = this.u32();
    const lo = this.u32();
    if (hi > 0x1f_ffff) throw new MalformedMessage(`${this.what}: a number past 2^53`);
    return hi * 2 ** 32 + lo;
  }

  str(max: number): string {
    const n = this.u32();
    if (n > max) throw new MalformedMessage(`${this.what}: a string of ${n} bytes, more than ${max}`);
    const at = this.need(n);
    return this.buf.toString("utf8", at, at + n);
  }

  /** A header map: at most {@link MAX_FORWARD_HEADERS} entries of valid names and values. */
  headers(): Record<string, string> {
    const count = this.u32();
    if (count > MAX_FORWARD_HEADERS) throw new MalformedMessage(`${this.what}: more than ${MAX_FORWARD_HEADERS} headers`);
    const out: Record<string, string> = {};
    for (let i = 0; i < count; i++) {
      const name = this.str(256);
      // "__proto__" would set the prototype of a plain object instead of adding a header.
      if (!isForwardToken(name, 256) || name === "__proto__") throw new MalformedMessage(`${this.what}: a header has an invalid name`);
      const value = this.str(this.buf.length);
      if (BAD_VALUE.test(value)) throw new MalformedMessage(`${this.what}: ${name} is not a valid value`);
      out[name] = value;
    }
    return out;
  }

  /** Everything not read yet (a forward's body). */
  rest(): Buffer {
    return this.buf.subarray(this.at);
  }
}

/** A forward request's payload parts: metadata (shard, epoch, method, path, headers), then the body's raw bytes. The caller has validated method and path. */
export function encodeForwardRequest(r: ForwardRequest): Uint8Array[] {
  const meta = new MetaWriter(16 + strBound(r.method) + strBound(r.path) + headersBound(r.headers));
  return [meta.uint(r.shard).uint(r.epoch).str(r.method).str(r.path).headers(r.headers).done(), r.body];
}

/** Validates a forward request's payload. Throws MalformedMessage. */
export function decodeForwardRequest(payload: Buffer): ForwardRequest {
  const m = new MetaReader(payload, "forward");
  const shard = m.uint();
  const epoch = m.uint();
  const method = m.str(32);
  const path = m.str(8192);
  if (!isMethod(method) || !isForwardPath(path)) throw new MalformedMessage("forward: method or path malformed");
  return { shard, epoch, method, path, headers: m.headers(), body: m.rest() };
}

/** The outcome byte of a forward reply. */
export const FORWARD_OUTCOME = { served: 0, notServing: 1, failed: 2 } as const;

/** A forward reply's payload parts for a response (served, or the application failed): outcome, status, headers, then the body. */
export function encodeForwardResponse(outcome: "served" | "failed", r: ForwardResponse): Uint8Array[] {
  const meta = new MetaWriter(3 + headersBound(r.headers));
  const code = outcome === "served" ? FORWARD_OUTCOME.served : FORWARD_OUTCOME.failed;
  return [meta.u8(code).u16(r.status).headers(r.headers).done(), r.body];
}

/** A forward reply's payload when the receiver does not serve the shard at that epoch (nothing ran). */
export function encodeNotServing(shard: number, epoch: number, node: string): Uint8Array[] {
  return [new MetaWriter(17 + strBound(node)).u8(FORWARD_OUTCOME.notServing).uint(shard).uint(epoch).str(node).done()];
}

/** A decoded forward reply, before it becomes a ForwardResult. */
export type ForwardReplyPayload =
  | { readonly outcome: "served" | "failed"; readonly response: ForwardResponse }
  | { readonly outcome: "not-serving"; readonly shard: number; readonly epoch: number; readonly node: string };

/** Validates a forward reply's payload. Throws MalformedMessage. */
export function decodeForwardReply(payload: Buffer): ForwardReplyPayload {
  const m = new MetaReader(payload, "forward reply");
  const outcome = m.u8();
  if (outcome === FORWARD_OUTCOME.notServing) {
    const shard = m.uint();
    const epoch = m.uint();
    const node = m.str(200);
    return { outcome: "not-serving", shard, epoch, node: node.replace(NON_ASCII, "?") };
  }
  if (outcome !== FORWARD_OUTCOME.served && outcome !== FORWARD_OUTCOME.failed)
    throw new MalformedMessage("forward reply: unknown outcome");
  const status = m.u16();
  if (status < 100 || status > 599) throw new MalformedMessage("forward reply: status is not an HTTP status");
  const response = { status, headers: m.headers(), body: m.rest() };
  return { outcome: outcome === FORWARD_OUTCOME.served ? "served" : "failed", response };
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
  if (o.mapChanged !== undefined && typeof o.mapChanged !== "boolean")
    throw new MalformedMessage("heartbeat: mapChanged must be a boolean");
  return o.mapChanged ? { master: o.master, mapChanged: true } : { master: o.master };
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
    case "forget":
      if (!isNodeId(o.node)) throw new MalformedMessage("admin: node must be a node id or name");
      if (typeof o.force !== "boolean") throw new MalformedMessage("admin: force must be a boolean");
      return { op: "forget", node: o.node, force: o.force, by };
    default:
      throw new MalformedMessage("admin: op must be settings, pause, resume, clear-hold or forget");
  }
}

const ROLES: ReadonlySet<string> = new Set<NodeRole>(["master", "coreapp", "webapp"]);

/** Validates an admin reply. */
export function parseAdminReply(body: Uint8Array): AdminReply {
  const o = objectBody(body);
  if (typeof o.ok !== "boolean") throw new MalformedMessage("admin reply: ok must be a boolean");
  const reply: { -readonly [K in keyof AdminReply]: AdminReply[K] } = { ok: o.ok };
  if (o.version !== undefined) {
    if (!isUint(o.version)) throw new MalformedMessage("admin reply: version must be a non-negative integer");
    reply.version = o.version;
  }
  if (o.removed !== undefined) {
    const r = o.removed as Record<string, unknown> | null;
    if (
      typeof r !== "object" ||
      r === null ||
      !isNodeId(r.id) ||
      !isText(r.name, 200) ||
      typeof r.role !== "string" ||
      !ROLES.has(r.role) ||
      typeof r.silentMs !== "number" ||
      !(r.silentMs >= 0)
    ) {
      throw new MalformedMessage("admin reply: removed must be { id, name, role, silentMs }");
    }
    reply.removed = { id: r.id, name: r.name.replace(NON_ASCII, "?"), role: r.role as NodeRole, silentMs: r.silentMs };
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

const LEASE_NAME = /^(master|shard\/\d{1,6})$/;

/** Validates an exit notice. Unknown fields are dropped; text is bounded. */
export function parseExitNotice(body: Uint8Array): ExitNotice {
  const o = objectBody(body);
  if (!isNodeId(o.node)) throw new MalformedMessage("exited: node must be a node id");
  if (typeof o.role !== "string" || !ROLES.has(o.role)) throw new MalformedMessage("exited: role must be master, coreapp or webapp");
  if (!isText(o.cause, 200)) throw new MalformedMessage("exited: cause must be text of at most 200 characters");
  const released = o.released;
  if (!Array.isArray(released) || released.length > 64 || !released.every((n) => typeof n === "string" && LEASE_NAME.test(n)))
    throw new MalformedMessage("exited: released must be a list of at most 64 lease names (master, shard/<n>)");
  return {
    node: o.node,
    role: o.role as ExitNotice["role"],
    cause: o.cause.replace(NON_ASCII, "?"),
    released: released as string[],
  };
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

/** Validates an exit reply. */
export function parseExitReply(body: Uint8Array): ExitReply {
  const o = objectBody(body);
  if (typeof o.ok !== "boolean") throw new MalformedMessage("exited reply: ok must be a boolean");
  return { ok: o.ok };
}

/** Text from the network reduced to short printable ASCII, for errors and logs. */
export function printable(text: string, max = 200): string {
  return text.replace(NON_ASCII, "?").slice(0, max);
}

/** How a JSON kind's request and reply are checked when read, and shaped when written. */
export interface JsonKind<Req, Rep> {
  /** Validates a request body (server side). Throws MalformedMessage. */
  readonly request: (body: Uint8Array) => Req;
  /** Validates a reply body (client side). Throws MalformedMessage. */
  readonly reply: (body: Uint8Array) => Rep;
  /** What of a handler's reply goes on the wire (default: all of it). */
  readonly toWire?: (reply: Rep) => unknown;
}

/** Every kind but forward: JSON both ways. Adding one is an entry here (and in KIND_CODES). */
export const JSON_KINDS = {
  heartbeat: {
    request: parseHeartbeatMessage,
    reply: parseHeartbeatReply,
    toWire: (r: HeartbeatReply) => ({ id: r.id, shard: r.shard, epoch: r.epoch, ended: r.ended ?? null }),
  } satisfies JsonKind<HeartbeatMessage, HeartbeatReply>,
  switchover: { request: parseSwitchoverCommand, reply: parseSwitchoverReply } satisfies JsonKind<SwitchoverCommand, SwitchoverReply>,
  admin: { request: parseAdminCommand, reply: parseAdminReply } satisfies JsonKind<AdminCommand, AdminReply>,
  exited: { request: parseExitNotice, reply: parseExitReply } satisfies JsonKind<ExitNotice, ExitReply>,
  failsafe: {
    request: parseFailsafeRequest,
    reply: parseFailsafeReply,
    toWire: (r: FailsafeReply) => (r.ok ? { ok: true, promiseMs: r.promiseMs } : { ok: false, reason: r.reason ?? "refused" }),
  } satisfies JsonKind<FailsafeRequest, FailsafeReply>,
} as const;

/** The kinds whose bodies are JSON. */
export type JsonKindName = keyof typeof JSON_KINDS;
