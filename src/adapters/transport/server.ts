/**
 * The receiving side of the transport: a TCP (or TLS) listener whose connections must complete the
 * handshake (handshake.ts) before any request frame is read, and whose every later frame must carry
 * a valid MAC. Anything else — garbage, an oversized or truncated frame, a hello addressed to
 * another node, a wrong proof, a replayed or reordered frame — closes the connection, and no
 * handler runs. Malformed content inside an authenticated request is refused (400) on its own.
 */
import { randomBytes } from "node:crypto";
import net, { type AddressInfo } from "node:net";
import tls from "node:tls";
import { ConfigError, TransportUnavailableError } from "../../core/errors.js";
import type { Logger } from "../../core/ports/logger.js";
import type { ForwardResult, TransportHandlers, TransportServer } from "../../core/ports/transport.js";
import { REFUSAL } from "./errors.js";
import { encodeFrame, FRAME, FRAME_OVERHEAD, FrameReader, MAC_BYTES, MAX_HANDSHAKE_FRAME, type Frame } from "./frames.js";
import { FrameMac, handshakeProof, NONCE_BYTES, proofMatches, sessionKeys, type AnnouncedProtocols } from "./handshake.js";
import {
  decodeForwardRequest,
  describeProtocol,
  encodeForwardResponse,
  encodeNotServing,
  isNodeId,
  JSON_KINDS,
  KIND_BY_CODE,
  MalformedMessage,
  parseJson,
  parseProtocol,
  printable,
  protocolsOverlap,
  type JsonKind,
  type JsonKindName,
  type MessageKind,
  type ProtocolRange,
} from "./messages.js";
import { Outbox } from "./outbox.js";
import type { TransportTls } from "./tls.js";

/** Settings of the receiving side. */
export interface ServerOptions {
  readonly key: Buffer;
  /** Largest request body accepted; a larger request frame closes the connection. */
  readonly maxBodyBytes: number;
  readonly logger: Logger;
  /** The protocol versions this node speaks. */
  readonly protocol: ProtocolRange;
  /** Mutual TLS: set, the listener speaks only TLS and refuses a client without a certificate from the CA. */
  readonly tls?: TransportTls;
  /** Connections in the handshake at once (default MAX_HANDSHAKING); tests lower it. */
  readonly maxHandshaking?: number;
}

/** A connection that has not finished the handshake in this long is closed: peers take milliseconds. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/**
 * Connections still in the handshake at once; one more is closed as soon as it is accepted. Anyone
 * who reaches the port can open connections without the secret, and each holds a file descriptor
 * for up to HANDSHAKE_TIMEOUT_MS: without a bound, a flood would use up the process's descriptors,
 * and with them its store connections and its lease. Peers finish in milliseconds, so even a
 * thousand coreapps asking a master at once (failsafe) keep far fewer than this in the handshake.
 */
export const MAX_HANDSHAKING = 1024;
/** Warnings about refused connections or accept errors: at most one per this many ms. */
const WARN_EVERY_MS = 10_000;
/** Requests running at once on one connection; more are refused (503, nothing ran) rather than queued without bound. */
export const MAX_IN_FLIGHT = 4096;
/**
 * Replies written to one connection and not yet taken by the kernel (`socket.writableLength`) past
 * which its requests are no longer read until the kernel has taken them all (TCP backpressure).
 * `socket.write` buffers whatever it is given, and MAX_IN_FLIGHT bounds requests running, not
 * replies unread: a peer holding the secret that sends requests and never reads the replies
 * (broken or hostile) would otherwise grow this process's memory until it dies. A few MiB is
 * plenty, as healthy peers read replies at once: it fills only behind a stalled reader, or for a
 * moment behind one reply larger than it (a media body). Memory per connection is then this bound
 * plus the replies to the requests already read or running. The stalled peer stalls only itself:
 * its requests back up in the kernel's buffers and then in its own process, while this node goes
 * on serving every other connection. Slow is not hostile as such, so the connection stays open.
 * Far above a socket's high-water mark (tens of KiB): a socket past it has had a write refused,
 * so 'drain' is sure to follow.
 */
export const MAX_UNREAD_REPLY_BYTES = 4 * 1024 * 1024;
const KEEPALIVE_MS = 15_000;

/** One accepted connection. */
class ServerConnection {
  private readonly reader = new FrameReader(MAX_HANDSHAKE_FRAME);
  private state: "hello" | "auth" | "open" | "closed" = "hello";
  private from = "";
  private nonceC = Buffer.alloc(0);
  private protocols: AnnouncedProtocols | null = null;
  private readonly nonceS = randomBytes(NONCE_BYTES);
  private out: Outbox | null = null;
  private recv: FrameMac | null = null;
  private inFlight = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly socket: net.Socket,
    private readonly self: string,
    private readonly handlers: TransportHandlers,
    private readonly o: ServerOptions,
    /** Called once, when the peer has proved it holds the key. */
    private readonly onAuthenticated: () => void,
  ) {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_MS);
    this.timer = setTimeout(() => this.destroy(), HANDSHAKE_TIMEOUT_MS);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => this.destroy());
    socket.on("close", () => this.destroy());
    socket.on("end", () => this.destroy());
  }

  destroy(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    clearTimeout(this.timer);
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.throttle();
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch {
      return this.destroy(); // oversized or truncated framing: nothing of it is read
    }
    for (const frame of frames) {
      if (this.state === "closed") return;
      if (this.state === "open") this.onSealed(frame);
      else this.onHandshake(frame);
    }
  }

  /**
   * Stops reading while the replies the peer has not read pass MAX_UNREAD_REPLY_BYTES (the chunk
   * in hand is still served); reading resumes once they have all left, unless the connection closed
   * meanwhile. A paused connection closes as any other: on the listener's close, or on the error
   * its pending write meets when the peer goes away.
   */
  private throttle(): void {
    if (this.socket.isPaused() || this.socket.writableLength <= MAX_UNREAD_REPLY_BYTES) return;
    this.socket.pause();
    this.socket.once("drain", () => {
      if (this.state !== "closed") this.socket.resume();
    });
  }

  /** A frame after the handshake: opened (a batch into its frames), each a request. */
  private onSealed(frame: Frame): void {
    let opened: Frame[] | null;
    try {
      opened = this.recv!.open(frame);
    } catch {
      return this.destroy(); // an authenticated batch that does not parse: a broken peer
    }
    // A frame that fails its MAC was forged, replayed, reordered or cut: the stream cannot be trusted.
    if (opened === null) return this.destroy();
    for (const request of opened) {
      if (this.state === "closed") return;
      this.onRequest(request);
    }
  }

  /** Refuses the handshake with a reason the caller can show, then closes. */
  private reject(code: number, reason: string): void {
    this.socket.end(encodeFrame(FRAME.reject, 0, [Buffer.from(JSON.stringify({ code, reason }))]));
    this.state = "closed";
    clearTimeout(this.timer);
    // end() flushes the reason; destroy soon after even if the peer never reads it.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private onHandshake(frame: Frame): void {
    const o = jsonObject(frame.payload);
    if (this.state === "hello") {
      if (frame.type !== FRAME.hello || o === undefined) return this.destroy();
      const theirs = parseProtocol(o.proto);
      const nonce = typeof o.nonce === "string" ? Buffer.from(o.nonce, "base64url") : undefined;
      if (theirs === undefined || !isNodeId(o.from) || !isNodeId(o.to) || nonce?.length !== NONCE_BYTES) return this.destroy();
      if (!protocolsOverlap(theirs, this.o.protocol)) {
        return this.reject(REFUSAL.protocol, `sender speaks ${describeProtocol(theirs)}, this node ${describeProtocol(this.o.protocol)}`);
      }
      // Bound to the receiver: a connection meant for another node (a restarted one at this address) is refused.
      if (o.to !== this.self) return this.reject(REFUSAL.unauthenticated, "addressed to another node");
      this.from = o.from;
      this.nonceC = nonce;
      this.protocols = { caller: theirs, listener: this.o.protocol };
      const proof = handshakeProof(this.o.key, "server", o.from, this.self, nonce, this.nonceS, this.protocols);
      const challenge = {
        proto: [this.o.protocol.version, this.o.protocol.min],
        nonce: this.nonceS.toString("base64url"),
        proof: proof.toString("base64url"),
      };
      this.socket.write(encodeFrame(FRAME.challenge, 0, [Buffer.from(JSON.stringify(challenge))]));
      this.state = "auth";
      return;
    }
    if (frame.type !== FRAME.auth || o === undefined || typeof o.proof !== "string") return this.destroy();
    const expected = handshakeProof(this.o.key, "client", this.from, this.self, this.nonceC, this.nonceS, this.protocols!);
    if (!proofMatches(expected, Buffer.from(o.proof, "base64url"))) {
      this.o.logger.warn({ from: printable(this.from) }, "transport: a connection failed authentication (wrong cluster secret or name?)");
      return this.reject(REFUSAL.unauthenticated, "authentication failed");
    }
    const keys = sessionKeys(this.o.key, this.from, this.self, this.nonceC, this.nonceS);
    this.out = new Outbox(this.socket, new FrameMac(keys.serverToClient));
    this.recv = new FrameMac(keys.clientToServer);
    this.state = "open";
    this.onAuthenticated();
    clearTimeout(this.timer);
    this.reader.maxFrame = this.o.maxBodyBytes + FRAME_OVERHEAD;
    this.write(FRAME.ready, 0, []);
  }

  /** Queues a sealed frame; replies of one turn of the event loop leave in one write. */
  private write(type: number, id: number, parts: readonly Uint8Array[]): void {
    if (this.state !== "closed") this.out!.push(encodeFrame(type, id, parts, MAC_BYTES), false);
  }

  private refuse(id: number, code: number, reason: string): void {
    const head = Buffer.allocUnsafe(2);
    head.writeUInt16BE(code, 0);
    this.write(FRAME.refuse, id, [head, Buffer.from(reason)]);
  }

  private onRequest(frame: Frame): void {
    if (frame.type !== FRAME.request || frame.payload.length < 1) return this.destroy();
    const kind = KIND_BY_CODE.get(frame.payload.readUInt8(0));
    const body = frame.payload.subarray(1);
    if (kind === undefined) return this.refuse(frame.id, REFUSAL.noHandler, "unknown kind of message");
    if (this.inFlight >= MAX_IN_FLIGHT) return this.refuse(frame.id, REFUSAL.busy, "too many requests in flight on this connection");
    void this.serve(frame.id, kind, body);
  }

  /** Runs one request's handler and answers it: its reply, or a refusal when it failed. */
  private async serve(id: number, kind: MessageKind, body: Buffer): Promise<void> {
    this.inFlight++;
    try {
      if (kind === "forward") await this.forward(id, body);
      else await this.json(id, kind, body);
    } catch (error) {
      if (error instanceof MalformedMessage) return this.refuse(id, REFUSAL.malformed, error.message);
      this.o.logger.warn(
        { kind, from: this.from, error: error instanceof Error ? error.message : String(error) },
        "transport: handler failed",
      );
      this.refuse(id, REFUSAL.failed, "handler failed");
    } finally {
      this.inFlight--;
    }
  }

  private async json(id: number, kind: JsonKindName, body: Buffer): Promise<void> {
    const handlers = this.handlers as Record<JsonKindName, ((this: void, from: string, m: unknown) => unknown) | undefined>;
    if (handlers[kind] === undefined) return this.refuse(id, REFUSAL.noHandler, `no ${kind} handler`);
    const spec = JSON_KINDS[kind] as JsonKind<unknown, unknown>;
    const message = spec.request(body);
    const reply = await handlers[kind](this.from, message);
    this.write(FRAME.reply, id, [Buffer.from(JSON.stringify(spec.toWire ? spec.toWire(reply) : reply))]);
  }

  private async forward(id: number, body: Buffer): Promise<void> {
    if (this.handlers.forward === undefined) return this.refuse(id, REFUSAL.noHandler, "no forward handler");
    const request = decodeForwardRequest(body);
    const result = await this.handlers.forward(this.from, request, () => this.acknowledge(id));
    this.write(FRAME.reply, id, forwardReply(result));
  }

  /**
   * Writes the "started" frame and resolves once it is in the kernel's send buffer: from then on a
   * kill -9 of this process still delivers it before the kernel's FIN. The kernel resets the
   * connection instead, dropping what it had not sent, when the socket holds unread data as the
   * process dies; the caller counts a reset as in doubt (client.ts, `Ending`), so it never mistakes
   * a request that ran for one that did not. Rejects when the connection is gone: the handler must
   * then not run it.
   */
  private acknowledge(id: number): Promise<void> {
    if (this.state === "closed") return Promise.reject(new Error("connection closed before the request started"));
    return new Promise<void>((resolve, reject) => {
      // Urgent: written at the end of this microtask queue, with the other acknowledgements of the chunk.
      this.out!.push(encodeFrame(FRAME.started, id, [], MAC_BYTES), true, (error) =>
        error ? reject(new Error("connection closed before the request started")) : resolve(),
      );
    });
  }
}

/** A handler's result as reply payload parts; a bad value is a handler failure (500). */
function forwardReply(r: ForwardResult): Uint8Array[] {
  if (r.outcome === "not-serving") return encodeNotServing(r.shard, r.epoch, r.node);
  const { status, body } = r.response;
  if (!Number.isInteger(status) || status < 100 || status > 599) throw new Error(`forward handler returned status ${String(status)}`);
  if (!(body instanceof Uint8Array)) throw new Error("forward handler returned a body that is not a Uint8Array");
  return encodeForwardResponse(r.outcome, r.response);
}

function jsonObject(payload: Buffer): Record<string, unknown> | undefined {
  try {
    const o = parseJson(payload.toString("utf8"));
    return typeof o === "object" && o !== null && !Array.isArray(o) ? (o as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Starts a listener for `self`. Rejects with TransportUnavailableError when the port cannot be bound. */
export async function startServer(
  self: string,
  host: string,
  port: number,
  handlers: TransportHandlers,
  o: ServerOptions,
): Promise<TransportServer> {
  if (!isNodeId(self)) throw new ConfigError("transport.self", "must be 1-200 visible ASCII characters");
  const connections = new Set<ServerConnection>();
  const warn = throttledWarning(o.logger);
  // TCP connections not yet authenticated (in the TLS or the framed handshake), by remote address:
  // counted from the TCP accept, so a TLS listener bounds connections that never say a word too.
  const unauthenticated = new Map<string, net.Socket>();
  const remote = (socket: net.Socket) => `${socket.remoteAddress}:${socket.remotePort}`;
  const onTcpConnection = (socket: net.Socket): void => {
    if (unauthenticated.size >= (o.maxHandshaking ?? MAX_HANDSHAKING)) {
      socket.destroy();
      return warn(`transport: connections closed unread: ${unauthenticated.size} others are still in the handshake (a flood?)`);
    }
    const key = remote(socket);
    unauthenticated.set(key, socket);
    socket.once("close", () => {
      if (unauthenticated.get(key) === socket) unauthenticated.delete(key);
    });
  };
  const accept = (socket: net.Socket): void => {
    const key = remote(socket);
    const c = new ServerConnection(socket, self, handlers, o, () => unauthenticated.delete(key));
    connections.add(c);
    socket.once("close", () => connections.delete(c));
  };
  const t = o.tls;
  let server: net.Server;
  let unsubscribe: (() => void) | undefined;
  if (t === undefined) {
    server = net.createServer(accept);
  } else {
    const secure = tls.createServer(
      { ...t.context, requestCert: true, rejectUnauthorized: true, handshakeTimeout: HANDSHAKE_TIMEOUT_MS },
      accept,
    );
    // New handshakes use reloaded files; connections already open keep the context they began with.
    unsubscribe = t.onChange(() => secure.setSecureContext(t.context));
    // A client without an acceptable certificate: its socket is closed; nothing to log per attempt.
    secure.on("tlsClientError", () => {});
    server = secure;
  }
  server.prependListener("connection", onTcpConnection);
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      unsubscribe?.();
      reject(
        new TransportUnavailableError(`transport: cannot listen on ${host}:${port} (${error.code ?? error.message})`, { cause: error }),
      );
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  // From now on an error is an accept that failed (EMFILE: out of file descriptors). Unhandled, it
  // would end the process; the listener goes on accepting once descriptors are free again.
  server.on("error", (error: NodeJS.ErrnoException) => warn(`transport: accepting a connection failed (${error.code ?? error.message})`));
  const bound = (server.address() as AddressInfo).port;
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        unsubscribe?.();
        server.close(() => resolve());
        for (const c of connections) c.destroy();
      }),
  };
}

/** A warning logged at most once per WARN_EVERY_MS, with how many were held back since the last. */
function throttledWarning(logger: Logger): (message: string) => void {
  let last = -Infinity;
  let held = 0;
  return (message) => {
    const now = performance.now();
    if (now - last < WARN_EVERY_MS) {
      held++;
      return;
    }
    logger.warn({ heldBack: held }, message);
    last = now;
    held = 0;
  };
}
