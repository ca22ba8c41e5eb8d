/**
 * The sending side of the HTTP transport: one undici `Pool` per peer address (keep-alive,
 * pipelining 1), a signed request per call, a verified reply. Uses undici's low-level `dispatch`
 * with a small handler instead of `request()`: no body stream per call, and our own timer can fail
 * the call at its deadline even while the request still waits for a connection.
 */
import type { KeyObject } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { Pool, type Dispatcher } from "undici";
import { ConfigError, TransportUnavailableError } from "../../core/errors.js";
import type { Peer } from "../../core/ports/transport.js";
import { signatureMatches, signReply, signRequest } from "./auth.js";
import { badReplyError, CallTimeout, mapCallError, ProtocolMismatchError, refusalError, ReplyTooLarge } from "./errors.js";
import {
  describeProtocol,
  H,
  isNodeId,
  MalformedMessage,
  parseProtocol,
  PATHS,
  protocolsOverlap,
  refusalReason,
  type ForwardFields,
  type MessageKind,
  type ProtocolRange,
} from "./wire.js";
import type { TransportTls } from "./tls.js";

/** Settings of the sending side. */
export interface ClientOptions {
  /** Sockets kept per peer; with pipelining 1 also the most requests in flight per peer. */
  readonly connectionsPerPeer: number;
  /** Largest reply body accepted; a larger one fails the call. */
  readonly maxReplyBytes: number;
  /** How long an idle pooled socket is kept. Below the server's keep-alive so the client closes first. */
  readonly keepAliveMs: number;
  /** Pools kept at once; past this the oldest pool is closed (peers that moved leave stale ones). */
  readonly maxPeers: number;
  /** The protocol versions this node speaks (wire.PROTOCOL unless a test overrides it). */
  readonly protocol: ProtocolRange;
  /** Mutual TLS: set, every call goes over https with this node's certificate and checks the peer's. */
  readonly tls?: TransportTls;
}

/** A verified 200 reply. */
export interface VerifiedReply {
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Collects one reply and settles the call exactly once: on the reply, on an error, or at the deadline. */
class ReplyCollector implements Dispatcher.DispatchHandler {
  status = 0;
  headers: IncomingHttpHeaders = {};
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private controller: Dispatcher.DispatchController | null = null;
  private failure: Error | null = null;
  private settled = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly maxBytes: number,
    timeoutMs: number,
    private readonly resolve: (c: ReplyCollector) => void,
    private readonly reject: (e: unknown) => void,
  ) {
    this.timer = setTimeout(() => this.fail(new CallTimeout(timeoutMs)), timeoutMs);
  }

  /** The reply body, without a copy when it came in one chunk (the usual case). */
  get body(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    // The deadline may have passed while the request waited for a socket: abort it now, which
    // frees the socket instead of sending a message nobody waits for.
    if (this.failure !== null) controller.abort(this.failure);
    else this.controller = controller;
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    this.status = status;
    this.headers = headers;
    const declared = Number(headers["content-length"]);
    if (declared > this.maxBytes) controller.abort(new ReplyTooLarge(`reply of ${declared} bytes exceeds ${this.maxBytes}`));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size > this.maxBytes) controller.abort(new ReplyTooLarge(`reply exceeds ${this.maxBytes} bytes`));
    else this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.resolve(this);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.fail(error);
  }

  /** Settles the call with `error` (first outcome wins) and aborts the request if it is under way. */
  fail(error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.failure = error;
    clearTimeout(this.timer);
    // Aborting destroys the socket, so a peer that never answers does not keep it either.
    this.controller?.abort(error);
    this.reject(error);
  }
}

/** Signs, sends and verifies; owns the pools. One per node: its sequence numbers belong to its id. */
export class TransportClient {
  private readonly pools = new Map<string, Pool>();
  /** Starts at 0 so the first message is 1; a new process has a new id, so numbering never restarts under one id. */
  /** One sequence per receiver: the receiver's replay window then spans only messages sent to it. */
  private readonly seqs = new Map<string, number>();
  private closed = false;
  private readonly unsubscribe: (() => void) | undefined;

  constructor(
    private readonly self: string,
    private readonly key: KeyObject,
    private readonly o: ClientOptions,
  ) {
    // Reloaded TLS files: drop every pool so new connections present the new certificate and
    // trust the new CA. Calls in flight finish on the old pools, which close once idle.
    this.unsubscribe = o.tls?.onChange(() => this.dropPools());
  }

  /**
   * Sends one message and returns its verified 200 reply. Throws TransportUnavailableError when the
   * peer cannot be reached in `timeoutMs`, AuthenticationError on a 401 or a badly signed reply.
   */
  async send(to: Peer, kind: MessageKind, fwd: ForwardFields, body: Uint8Array, timeoutMs: number): Promise<VerifiedReply> {
    if (!isNodeId(to.id))
      throw new ConfigError("peer.id", `must be 1-200 visible ASCII characters, got ${JSON.stringify(String(to.id)).slice(0, 60)}`);
    if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) throw new ConfigError("timeoutMs", "must be a positive number of milliseconds");
    if (this.closed) throw new TransportUnavailableError(`transport: ${kind} to ${to.address}: transport is closed`);
    const pool = this.pool(to.address);
    const next = (this.seqs.get(to.id) ?? 0) + 1;
    this.seqs.set(to.id, next);
    const seq = String(next);
    const sig = signRequest(this.key, { kind, from: this.self, to: to.id, seq, ...fwd, body });
    const { protocol } = this.o;
    const headers = [
      H.from,
      this.self,
      H.to,
      to.id,
      H.seq,
      seq,
      H.sig,
      sig,
      H.proto,
      String(protocol.version),
      H.protoMin,
      String(protocol.min),
    ];
    if (kind === "forward")
      headers.push(H.shard, fwd.shard, H.epoch, fwd.epoch, H.method, fwd.method, H.path, fwd.path, H.headers, fwd.headers);

    let reply: ReplyCollector;
    try {
      reply = await new Promise<ReplyCollector>((resolve, reject) => {
        const collector = new ReplyCollector(this.o.maxReplyBytes, timeoutMs, resolve, reject);
        try {
          pool.dispatch({ path: PATHS[kind], method: "POST", headers, body }, collector);
        } catch (error) {
          collector.fail(error as Error);
        }
      });
    } catch (error) {
      throw mapCallError(error, kind, to.address);
    }

    if (reply.status !== 200) throw refusalError(reply.status, refusalReason(reply.body), kind, to.address);
    // A receiver older than versioning does not check: the client does, on the reply.
    const theirs = parseProtocol(reply.headers[H.proto], reply.headers[H.protoMin]);
    if (theirs !== undefined && !protocolsOverlap(theirs, protocol)) {
      throw new ProtocolMismatchError(
        `${kind} to ${to.address}: peer speaks ${describeProtocol(theirs)}, this node ${describeProtocol(protocol)}`,
      );
    }
    const replyBody = reply.body;
    const status = headerText(reply.headers[H.status]);
    const replyHeaders = headerText(reply.headers[H.headers]);
    // Signature first: content of an unauthenticated reply is not worth a diagnosis.
    const expected = signReply(this.key, {
      kind,
      responder: to.id,
      requester: this.self,
      seq,
      status,
      headers: replyHeaders,
      body: replyBody,
    });
    if (!signatureMatches(expected, headerOrUndefined(reply.headers[H.sig]))) {
      throw badReplyError("bad or missing signature", kind, to.address, true);
    }
    if (kind === "forward" && (status === "" || replyHeaders === "")) {
      throw badReplyError(`missing ${H.status} or ${H.headers}`, kind, to.address, false);
    }
    return { headers: reply.headers, body: replyBody };
  }

  /** Closes every pool; waits for calls in flight, each bounded by its own timeout. */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close()));
  }

  private dropPools(): void {
    const pools = [...this.pools.values()];
    this.pools.clear();
    for (const pool of pools) void pool.close().catch(() => {});
  }

  private pool(address: string): Pool {
    let pool = this.pools.get(address);
    if (pool !== undefined) return pool;
    try {
      const tls = this.o.tls;
      pool = new Pool(`${tls ? "https" : "http"}://${address}`, {
        connections: this.o.connectionsPerPeer,
        pipelining: 1,
        keepAliveTimeout: this.o.keepAliveMs,
        keepAliveMaxTimeout: this.o.keepAliveMs,
        ...(tls ? { connect: tls.connectOptions } : {}),
      });
    } catch (error) {
      throw new ConfigError(
        "peer.address",
        `must be host:port, got ${JSON.stringify(address).slice(0, 100)} (${(error as Error).message})`,
      );
    }
    if (this.pools.size >= this.o.maxPeers) {
      const [oldest, old] = this.pools.entries().next().value as [string, Pool];
      this.pools.delete(oldest);
      // Graceful: calls already queued on it still finish.
      void old.close().catch(() => {});
    }
    this.pools.set(address, pool);
    return pool;
  }
}

/** A single header value, or "" when absent or repeated. */
function headerText(value: string | string[] | undefined): string {
  return typeof value === "string" ? value : "";
}

function headerOrUndefined(value: string | string[] | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** The error for reply content that failed validation: a protocol error (version mismatch), not a network one. */
export function protocolError(error: unknown, kind: MessageKind, address: string): Error {
  if (error instanceof MalformedMessage) return badReplyError(error.message, kind, address, false);
  return mapCallError(error, kind, address);
}
