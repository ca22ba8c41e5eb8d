/**
 * The calling side of the transport: one persistent connection per peer (by id), on which
 * every call to that peer is multiplexed by request id. The connection is opened and authenticated
 * on first use (handshake.ts) and kept; an idle one is closed after {@link IDLE_MS}.
 *
 * What a failed call tells its caller (the router relies on it): a call whose request was never
 * written (connect refused, handshake failed), or a forward whose connection the *peer* ended with
 * a FIN before acknowledging it, is `notDelivered` — nothing ran. Anything else after the handshake
 * leaves the calls in doubt (see `Ending`): a timeout (the request may still sit unread in the
 * peer's socket buffer and run later; a connection is closed by us only after nothing at all
 * arrived on it for a whole call's timeout), a reset, a TLS error, an unreachable host.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { AuthenticationError, ConfigError, MulticonnectError, TransportUnavailableError } from "../../core/errors.js";
import type { Peer } from "../../core/ports/transport.js";
import { CallTimeout, mapCallError, ProtocolMismatchError, refusalError, REFUSAL } from "./errors.js";
import { encodeFrame, FRAME, FRAME_OVERHEAD, FrameReader, FramingError, MAC_BYTES, MAX_HANDSHAKE_FRAME, type Frame } from "./frames.js";
import { FrameMac, handshakeProof, NONCE_BYTES, proofMatches, sessionKeys } from "./handshake.js";
import {
  describeProtocol,
  isNodeId,
  KIND_CODES,
  parseJson,
  parseProtocol,
  printable,
  protocolsOverlap,
  type MessageKind,
  type ProtocolRange,
} from "./messages.js";
import { Outbox } from "./outbox.js";
import type { TransportTls } from "./tls.js";

/** Settings of the calling side. */
export interface ClientOptions {
  /** Largest reply body accepted; a larger reply frame closes the connection and fails the calls on it. */
  readonly maxReplyBytes: number;
  /** Connections kept at once; past this the least recently opened is closed (peers that moved leave stale ones). */
  readonly maxPeers: number;
  /** The protocol versions this node speaks. */
  readonly protocol: ProtocolRange;
  /** Mutual TLS: set, every connection is TLS with this node's certificate, and the peer's is checked. */
  readonly tls?: TransportTls;
}

/** A connection with no call for this long is closed; the next call opens a new one. */
const IDLE_MS = 120_000;
/** How long a handshake may take before the connection is given up (peers finish in milliseconds). */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** TCP keep-alive probes find a peer whose host vanished without a FIN. */
const KEEPALIVE_MS = 15_000;

/** A call waiting for its reply. */
interface Pending {
  readonly kind: MessageKind;
  /** When the request was written (monotonic ms). */
  readonly sentAt: number;
  /** The peer acknowledged a forward (started its handler). */
  started: boolean;
  /** The call's timeout; whoever settles the call clears it. */
  readonly timer: NodeJS.Timeout;
  readonly resolve: (payload: Buffer) => void;
  readonly reject: (error: Error) => void;
}

/** Why a connection ended, for the calls still on it. */
interface Ending {
  readonly error: Error;
  /**
   * The peer ended it with a FIN, and nothing else went wrong first: then a forward it never
   * acknowledged did not start. The coreapp writes the acknowledgement into its kernel before the
   * handler runs, and a kernel that closes a socket gracefully — a kill -9 included — sends all it
   * was handed before its FIN, resending what is lost, so the acknowledgement would have come first.
   * A reset proves nothing: a kernel that closes a socket with unread data in it resets the
   * connection instead and drops what it had not sent yet, the acknowledgement included. Nor does
   * any other error (a TLS alert, a keep-alive timeout, an unreachable host): a started request
   * must never be taken for one that did not start, or it would run twice. (A FIN is not
   * authenticated: docs/security.md says what an attacker on the path can do with one.)
   */
  readonly peerFin: boolean;
  /** Requests were never written on it (the handshake did not finish). */
  readonly beforeReady: boolean;
}

/** One authenticated connection to one peer. */
class Connection {
  readonly ready: Promise<void>;
  private readonly socket: net.Socket;
  private readonly reader = new FrameReader(MAX_HANDSHAKE_FRAME);
  private readonly pending = new Map<number, Pending>();
  private send: Outbox | null = null;
  private recv: FrameMac | null = null;
  /** The sending MAC, armed only when the server's "ready" proves it accepted our proof. */
  private pendingSend: Outbox | null = null;
  private nonceS: Buffer | null = null;
  private readonly nonceC = randomBytes(NONCE_BYTES);
  private nextId = 1;
  private ending: Ending | null = null;
  private lastReceived = performance.now();
  private settleReady!: (error?: Error) => void;
  private readonly handshakeTimer: NodeJS.Timeout;

  constructor(
    private readonly self: string,
    private readonly peer: Peer,
    private readonly key: Buffer,
    private readonly o: ClientOptions,
    private readonly onClose: (c: Connection) => void,
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = (error) => (error ? reject(error) : resolve());
    });
    // Callers await `ready` themselves; this only keeps an unobserved failure from being "unhandled".
    this.ready.catch(() => {});
    const { host, port } = splitAddress(peer.address);
    const t = o.tls;
    if (t === undefined) {
      this.socket = net.connect({ host, port, noDelay: true });
      this.socket.once("connect", () => this.hello());
    } else {
      const servername = t.serverName ?? (net.isIP(host) === 0 ? host : undefined);
      this.socket = tls.connect({ host, port, secureContext: t.clientContext, ...(servername ? { servername } : {}) });
      this.socket.setNoDelay(true);
      this.socket.once("secureConnect", () => this.hello());
    }
    this.socket.setKeepAlive(true, KEEPALIVE_MS);
    this.socket.setTimeout(IDLE_MS, () => {
      if (this.pending.size === 0) this.close(new Error("idle"), false);
    });
    this.handshakeTimer = setTimeout(() => this.close(new CallTimeout(HANDSHAKE_TIMEOUT_MS), false), HANDSHAKE_TIMEOUT_MS);
    this.handshakeTimer.unref();
    this.socket.on("data", (chunk: Buffer) => this.onData(chunk));
    this.socket.on("end", () => this.close(Object.assign(new Error("the peer closed the connection"), { code: "ECONNRESET" }), true));
    this.socket.on("error", (error) => this.close(error, false));
    this.socket.on("close", () => this.close(Object.assign(new Error("connection closed"), { code: "ECONNRESET" }), false));
  }

  get closed(): boolean {
    return this.ending !== null;
  }

  /** The address this connection was opened to. */
  get address(): string {
    return this.peer.address;
  }

  /** The handshake finished and the connection is still open: calls need not wait for `ready`. */
  get open(): boolean {
    return this.send !== null && this.ending === null;
  }

  /**
   * Writes one request and waits for its reply payload. `onStarted` runs when a forward is
   * acknowledged. Rejects with the SDK's errors (see the module comment).
   */
  call(kind: MessageKind, parts: readonly Uint8Array[], timeoutMs: number): Promise<Buffer> {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1;
    return new Promise<Buffer>((resolve, reject) => {
      const sentAt = performance.now();
      const timer = setTimeout(() => {
        if (!this.pending.delete(id)) return;
        reject(mapCallError(new CallTimeout(timeoutMs), kind, this.peer.address));
        // Nothing at all arrived for a whole timeout: the peer is frozen or gone. Close, so the
        // next call reconnects; the calls still on it stay in doubt (closed by us, not the peer).
        if (this.lastReceived < sentAt) this.close(new CallTimeout(timeoutMs), false);
      }, timeoutMs);
      this.pending.set(id, { kind, sentAt, started: false, timer, resolve, reject });
      // Requests of one turn of the event loop leave in one write (outbox.ts).
      this.send!.push(encodeFrame(FRAME.request, id, [Buffer.of(KIND_CODES[kind]), ...parts], MAC_BYTES), false);
    });
  }

  /** Ends the connection and fails every call on it; idempotent. `peerFin`: see `Ending`. */
  close(error: Error, peerFin: boolean): void {
    if (this.ending !== null) return;
    const beforeReady = this.send === null;
    this.ending = { error, peerFin, beforeReady };
    clearTimeout(this.handshakeTimer);
    this.socket.destroy();
    this.onClose(this);
    // The handshake did not finish: no request was written, so none can have run.
    this.settleReady(this.handshakeError(error));
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      // A forward the peer never acknowledged, on a connection the peer ended with a FIN: it did not start.
      const notDelivered = beforeReady || (peerFin && p.kind === "forward" && !p.started);
      p.reject(mapCallError(error, p.kind, this.peer.address, notDelivered));
    }
  }

  private handshakeError(error: Error): Error {
    if (error instanceof AuthenticationError || error instanceof ProtocolMismatchError || error instanceof TransportUnavailableError)
      return error;
    return mapCallError(error, "connection", this.peer.address, true);
  }

  private hello(): void {
    const hello = {
      proto: [this.o.protocol.version, this.o.protocol.min],
      from: this.self,
      to: this.peer.id,
      nonce: this.nonceC.toString("base64url"),
    };
    this.socket.write(encodeFrame(FRAME.hello, 0, [Buffer.from(JSON.stringify(hello))]));
  }

  private onData(chunk: Buffer): void {
    this.lastReceived = performance.now();
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch (error) {
      return this.close(protocolFailure(this.peer.address, (error as FramingError).message), false);
    }
    for (const frame of frames) {
      if (this.ending !== null) return;
      if (this.recv === null) this.onHandshakeFrame(frame);
      else this.onSealed(frame);
    }
  }

  private onHandshakeFrame(frame: Frame): void {
    const address = this.peer.address;
    if (frame.type === FRAME.reject) {
      const o = safeObject(frame.payload);
      const code = typeof o.code === "number" ? o.code : 0;
      const reason = typeof o.reason === "string" ? printable(o.reason) : "no reason given";
      // Refused at the handshake: no request was ever written, so nothing ran.
      const error =
        code === REFUSAL.protocol
          ? new ProtocolMismatchError(`connection to ${address} refused: ${reason}`)
          : new AuthenticationError(`connection to ${address} rejected: ${reason}`, { refusedByReceiver: true });
      return this.close(error, false);
    }
    if (frame.type === FRAME.challenge && this.nonceS === null) {
      const o = safeObject(frame.payload);
      const theirs = parseProtocol(o.proto);
      const nonceS = typeof o.nonce === "string" ? Buffer.from(o.nonce, "base64url") : undefined;
      const proof = typeof o.proof === "string" ? Buffer.from(o.proof, "base64url") : undefined;
      if (theirs === undefined || nonceS?.length !== NONCE_BYTES) return this.close(protocolFailure(address, "malformed challenge"), false);
      if (!protocolsOverlap(theirs, this.o.protocol)) {
        return this.close(
          new ProtocolMismatchError(
            `connection to ${address}: peer speaks ${describeProtocol(theirs)}, this node ${describeProtocol(this.o.protocol)}`,
          ),
          false,
        );
      }
      const protocols = { caller: this.o.protocol, listener: theirs };
      const expected = handshakeProof(this.key, "server", this.self, this.peer.id, this.nonceC, nonceS, protocols);
      if (!proofMatches(expected, proof)) {
        // Not a holder of this cluster's key, or not the node we addressed: send it nothing.
        return this.close(
          new AuthenticationError(
            `connection to ${address} failed authentication: the peer did not prove the cluster key for ${this.peer.id}`,
            {
              refusedByReceiver: true,
            },
          ),
          false,
        );
      }
      this.nonceS = nonceS;
      const mine = handshakeProof(this.key, "client", this.self, this.peer.id, this.nonceC, nonceS, protocols);
      this.socket.write(encodeFrame(FRAME.auth, 0, [Buffer.from(JSON.stringify({ proof: mine.toString("base64url") }))]));
      const keys = sessionKeys(this.key, this.self, this.peer.id, this.nonceC, nonceS);
      this.recv = new FrameMac(keys.serverToClient);
      this.pendingSend = new Outbox(this.socket, new FrameMac(keys.clientToServer));
      return;
    }
    this.close(protocolFailure(address, `unexpected frame ${frame.type} during the handshake`), false);
  }

  /** A frame after the handshake: opened (a batch into its frames), each dispatched in order. */
  private onSealed(frame: Frame): void {
    let opened: Frame[] | null;
    try {
      opened = this.recv!.open(frame);
    } catch (error) {
      return this.close(protocolFailure(this.peer.address, (error as FramingError).message), false);
    }
    if (opened === null) return this.close(new AuthenticationError(`frame from ${this.peer.address} failed authentication`), false);
    for (const f of opened) {
      if (this.ending !== null) return;
      this.onSessionFrame(f);
    }
  }

  private onSessionFrame(frame: Frame): void {
    const payload = frame.payload;
    if (this.send === null) {
      if (frame.type !== FRAME.ready) return this.close(protocolFailure(this.peer.address, "expected ready"), false);
      this.send = this.pendingSend;
      clearTimeout(this.handshakeTimer);
      this.reader.maxFrame = this.o.maxReplyBytes + FRAME_OVERHEAD;
      this.settleReady();
      return;
    }
    const p = this.pending.get(frame.id);
    if (p === undefined) return; // a call that timed out; its late answer is dropped
    switch (frame.type) {
      case FRAME.started:
        p.started = true;
        return;
      case FRAME.reply:
        this.pending.delete(frame.id);
        clearTimeout(p.timer);
        return p.resolve(payload);
      case FRAME.refuse: {
        this.pending.delete(frame.id);
        clearTimeout(p.timer);
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 0;
        const reason = printable(payload.toString("utf8", 2));
        // Refused before any handler ran, unless a forward was already acknowledged: then it is in
        // doubt whatever the code says (only a broken peer refuses a request it started).
        if (p.kind === "forward" && p.started) {
          return p.reject(new TransportUnavailableError(`transport: forward to ${this.peer.address}: refused (${code}) after it started`));
        }
        const notRun = code === REFUSAL.busy || code === REFUSAL.malformed || p.kind === "forward";
        return p.reject(refusalError(code, reason, p.kind, this.peer.address, notRun));
      }
      default:
        return this.close(protocolFailure(this.peer.address, `unexpected frame ${frame.type}`), false);
    }
  }
}

/** Opens, keeps and closes connections; numbers nothing itself (each connection is its own sequence). */
export class TransportClient {
  private readonly connections = new Map<string, Connection>();
  private closed = false;
  private readonly unsubscribe: (() => void) | undefined;

  constructor(
    private readonly self: string,
    private readonly key: Buffer,
    private readonly o: ClientOptions,
  ) {
    // Reloaded TLS files: new connections present the new certificate and trust the new CA. Open
    // ones are closed once their calls finish (idle), as the files' owner expects a rotation to bite.
    this.unsubscribe = o.tls?.onChange(() => this.connections.clear());
  }

  /**
   * Sends one request and returns the reply's payload. Rejects with the SDK's errors (see the
   * module comment). Not an `async` function: on the hot path (an open connection) the call's own
   * promise is returned as it is, without another promise and its turns of the microtask queue.
   */
  send(to: Peer, kind: MessageKind, parts: readonly Uint8Array[], timeoutMs: number): Promise<Buffer> {
    if (!isNodeId(to.id))
      return Promise.reject(
        new ConfigError("peer.id", `must be 1-200 visible ASCII characters, got ${JSON.stringify(String(to.id)).slice(0, 60)}`),
      );
    if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs))
      return Promise.reject(new ConfigError("timeoutMs", "must be a positive number of milliseconds"));
    if (this.closed)
      return Promise.reject(
        new TransportUnavailableError(`transport: ${kind} to ${to.address}: transport is closed`, { notDelivered: true }),
      );
    const connection = this.connection(to);
    if (connection.open) return connection.call(kind, parts, timeoutMs);
    return this.sendOnceReady(connection, to, kind, parts, timeoutMs);
  }

  /** `send` on a connection still in its handshake: waits for it within the call's timeout. */
  private async sendOnceReady(
    connection: Connection,
    to: Peer,
    kind: MessageKind,
    parts: readonly Uint8Array[],
    timeoutMs: number,
  ): Promise<Buffer> {
    const started = performance.now();
    await withDeadline(connection.ready, timeoutMs, () => mapCallError(new CallTimeout(timeoutMs), "connection", to.address, true));
    if (connection.closed)
      throw new TransportUnavailableError(`transport: ${kind} to ${to.address}: connection closed`, { notDelivered: true });
    const left = Math.max(1, timeoutMs - (performance.now() - started));
    return connection.call(kind, parts, left);
  }

  /** Closes every connection; calls still on them fail at once. */
  close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    for (const c of [...this.connections.values()]) c.close(new Error("transport closed"), false);
    this.connections.clear();
    return Promise.resolve();
  }

  /**
   * The connection to `to`, opened if there is none. Keyed by the peer's id alone: ids are unique
   * per process (`name.randomhex`), so an id's address does not change. Should one, the connection
   * to the old address is left to finish its calls and close when idle, as after a TLS reload. (A
   * key of id and address joined was a new string to hash on every call: 0.35 µs a forward.)
   */
  private connection(to: Peer): Connection {
    const existing = this.connections.get(to.id);
    if (existing !== undefined && !existing.closed && existing.address === to.address) return existing;
    this.connections.delete(to.id);
    if (this.connections.size >= this.o.maxPeers) {
      const [oldest, old] = this.connections.entries().next().value as [string, Connection];
      this.connections.delete(oldest);
      old.close(new Error("too many peers: the least recently opened connection is closed"), false);
    }
    const c = new Connection(this.self, to, this.key, this.o, (gone) => {
      if (this.connections.get(to.id) === gone) this.connections.delete(to.id);
    });
    this.connections.set(to.id, c);
    return c;
  }
}

/** "host:port" (or "[v6]:port") split; ConfigError naming the address otherwise. */
function splitAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):([0-9]{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535)
    throw new ConfigError("peer.address", `must be host:port, got ${JSON.stringify(address).slice(0, 100)}`);
  return { host: m[1] ?? m[2]!, port };
}

/** A peer that broke the protocol: not retryable, not an outage. */
function protocolFailure(address: string, problem: string): Error {
  return new MulticonnectError("transport_protocol", `transport: ${address} broke the protocol: ${problem}`);
}

function safeObject(payload: Buffer): Record<string, unknown> {
  try {
    const o = parseJson(payload.toString("utf8"));
    return typeof o === "object" && o !== null && !Array.isArray(o) ? (o as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** `promise`, or `onTimeout()` thrown after `ms`. */
async function withDeadline<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
