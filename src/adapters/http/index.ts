/**
 * The HTTP transport: node-to-node messages over plain HTTP/1.1 with keep-alive, authenticated with
 * the cluster secret. undici pools on the sending side, node:http on the receiving side.
 *
 * Authentication model (see auth.ts, replay-window.ts, wire.ts): every request carries the sender
 * id, the receiver id, the sender's per-process sequence number and an HMAC-SHA256 over those, the
 * message kind, the body hash and (forwards) the shard, epoch and original request line and
 * headers. The receiver checks the signature in constant time, refuses messages addressed to
 * another id and sequence numbers it has seen (or that are older than a 1024-message window). Every
 * 200 reply is signed too, bound to the request it answers. No wall clock takes part.
 *
 * With `tls` set the transport also runs over mutual TLS (see tls.ts): bodies are confidential on
 * the wire and only holders of a certificate from the cluster's CA can open a connection. Without
 * it the transport authenticates but does not encrypt: run it on a private network only.
 */
import { SystemClock } from "../../core/clock.js";
import { ConfigError, MulticonnectError } from "../../core/errors.js";
import type { Clock } from "../../core/ports/clock.js";
import type { Logger } from "../../core/ports/logger.js";
import type {
  ForwardRequest,
  ForwardResponse,
  AdminCommand,
  AdminReply,
  FailsafeReply,
  FailsafeRequest,
  HeartbeatMessage,
  HeartbeatReply,
  Peer,
  SwitchoverCommand,
  SwitchoverReply,
  Transport,
  TransportHandlers,
  TransportServer,
} from "../../core/ports/transport.js";
import { silentLogger } from "../../core/silent-logger.js";
import { deriveTransportKey } from "./auth.js";
import { protocolError, TransportClient } from "./client.js";
import { startServer, type ServerOptions } from "./server.js";
import { TransportTls, type TransportTlsOptions } from "./tls.js";
import * as wire from "./wire.js";
import { H, NO_FORWARD } from "./wire.js";

/** Settings of an {@link HttpTransport}. */
export interface HttpTransportOptions {
  /**
   * This node's id, sent as the sender of every message. Must be unique per process (the nodes use
   * `name.randomhex`): sequence numbers restart at 1 with each process, and only a fresh id keeps
   * a restarted sender's messages from looking like replays (or old ones from being accepted).
   */
  readonly nodeId: string;
  /** The cluster's name: the salt of the key derivation, so clusters never accept each other's messages. */
  readonly clusterName: string;
  /** The cluster secret, at least 16 characters. Only a derived key is kept; the secret is never logged or reported. */
  readonly secret: string;
  /** Largest request body a listener accepts (default 1 MiB); larger gets 413. */
  readonly maxBodyBytes?: number;
  /** Largest reply body a call accepts (default 64 MiB); forwarded replies may carry media. */
  readonly maxReplyBytes?: number;
  /** Sockets per peer, hence requests in flight per peer (default 64). Must stay well below 1024, the replay window. */
  readonly connectionsPerPeer?: number;
  /** Replay table size per listener (default 4096 senders). See {@link ReplayGuardOptions.maxSenders} for the hazard. */
  readonly replayMaxSenders?: number;
  /** A silent sender is forgotten after this (default 24 h). See {@link ReplayGuardOptions.idleMs} for the hazard. */
  readonly replayIdleMs?: number;
  /** Monotonic time for replay-table idleness (default the system clock). */
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** The protocol versions to speak (default wire.PROTOCOL). For tests of mixed-version clusters only. */
  readonly protocol?: wire.ProtocolRange;
  /**
   * Mutual TLS between nodes (default off: plain HTTP). Every node of a cluster must agree: a TLS
   * node refuses plain connections, and a plain node cannot reach a TLS one. The files are checked
   * when the transport is made (ConfigError naming the key and file) and reloaded when they change.
   */
  readonly tls?: TransportTlsOptions;
}

/** Idle pooled sockets are closed by the client after this... */
const CLIENT_KEEP_ALIVE_MS = 30_000;
/** ...well before the server would, so a request is never sent on a socket the server is closing (undici does not retry a POST). */
const SERVER_KEEP_ALIVE_MS = 65_000;
const MIB = 1024 * 1024;

/** {@link Transport} over HTTP/1.1: undici pools to send, node:http to listen. */
export class HttpTransport implements Transport {
  private readonly client: TransportClient;
  private readonly server: ServerOptions;
  private readonly tls: TransportTls | undefined;

  constructor(o: HttpTransportOptions) {
    if (!wire.isNodeId(o.nodeId)) throw new ConfigError("transport.node_id", "must be 1-200 visible ASCII characters");
    const key = deriveTransportKey(o.secret, o.clusterName);
    const logger = o.logger ?? silentLogger;
    const connections = positiveInt(o.connectionsPerPeer ?? 64, "transport.connections_per_peer");
    if (connections > 512)
      throw new ConfigError("transport.connections_per_peer", "must be at most 512 (the replay window is 1024 messages)");
    const maxReplyBytes = positiveInt(o.maxReplyBytes ?? 64 * MIB, "transport.max_reply_bytes");
    const maxBodyBytes = positiveInt(o.maxBodyBytes ?? MIB, "transport.max_body_bytes");
    // Last of the checks: it starts a reload timer, which nothing would stop if a later check threw.
    this.tls = o.tls === undefined ? undefined : new TransportTls(o.tls, logger);
    this.client = new TransportClient(o.nodeId, key, {
      connectionsPerPeer: connections,
      maxReplyBytes,
      keepAliveMs: CLIENT_KEEP_ALIVE_MS,
      maxPeers: 1024,
      protocol: o.protocol ?? wire.PROTOCOL,
      tls: this.tls,
    });
    this.server = {
      key,
      maxBodyBytes,
      keepAliveMs: SERVER_KEEP_ALIVE_MS,
      replay: { maxSenders: o.replayMaxSenders, idleMs: o.replayIdleMs, clock: o.clock ?? new SystemClock() },
      protocol: o.protocol ?? wire.PROTOCOL,
      logger,
      tls: this.tls,
    };
  }

  async heartbeat(to: Peer, message: HeartbeatMessage, timeoutMs: number): Promise<HeartbeatReply> {
    const body = Buffer.from(JSON.stringify({ master: message.master }));
    const reply = await this.client.send(to, "heartbeat", NO_FORWARD, body, timeoutMs);
    try {
      return wire.parseHeartbeatReply(reply.body);
    } catch (error) {
      throw protocolError(error, "heartbeat", to.address);
    }
  }

  async forward(to: Peer, request: ForwardRequest, timeoutMs: number): Promise<ForwardResponse> {
    const fwd = {
      shard: uintText(request.shard, "shard"),
      epoch: uintText(request.epoch, "epoch"),
      method: request.method,
      path: request.path,
      headers: wire.encodeHeaderMap(request.headers),
    };
    if (!wire.isMethod(fwd.method) || !wire.isForwardPath(fwd.path)) {
      throw new MulticonnectError(
        "transport_rejected",
        "transport: forward: the method or path cannot be forwarded (path must start with / and be visible ASCII)",
      );
    }
    const reply = await this.client.send(to, "forward", fwd, request.body, timeoutMs);
    try {
      const status = wire.parseUint(reply.headers[H.status]);
      if (status === undefined || status < 100 || status > 599) throw new wire.MalformedMessage(`${H.status} is not an HTTP status`);
      return { status, headers: wire.decodeHeaderMap(reply.headers[H.headers]), body: reply.body };
    } catch (error) {
      throw protocolError(error, "forward", to.address);
    }
  }

  async admin(to: Peer, command: AdminCommand, timeoutMs: number): Promise<AdminReply> {
    const reply = await this.client.send(to, "admin", NO_FORWARD, Buffer.from(JSON.stringify(command)), timeoutMs);
    try {
      return wire.parseAdminReply(reply.body);
    } catch (error) {
      throw protocolError(error, "admin", to.address);
    }
  }

  async failsafe(to: Peer, request: FailsafeRequest, timeoutMs: number): Promise<FailsafeReply> {
    const body = Buffer.from(JSON.stringify({ shard: request.shard, epoch: request.epoch }));
    const reply = await this.client.send(to, "failsafe", NO_FORWARD, body, timeoutMs);
    try {
      return wire.parseFailsafeReply(reply.body);
    } catch (error) {
      throw protocolError(error, "failsafe", to.address);
    }
  }

  async switchover(to: Peer, command: SwitchoverCommand, timeoutMs: number): Promise<SwitchoverReply> {
    const body = Buffer.from(JSON.stringify({ shard: command.shard, to: command.to, force: command.force })); // undefined fields are left out
    const reply = await this.client.send(to, "switchover", NO_FORWARD, body, timeoutMs);
    try {
      return wire.parseSwitchoverReply(reply.body);
    } catch (error) {
      throw protocolError(error, "switchover", to.address);
    }
  }

  listen(self: string, host: string, port: number, handlers: TransportHandlers): Promise<TransportServer> {
    return startServer(self, host, port, handlers, this.server);
  }

  /** Closes the pools and stops watching the TLS files; listeners are closed by their own handles. */
  close(): Promise<void> {
    this.tls?.close();
    return this.client.close();
  }

  /** Reads the TLS files now instead of at the next tick; true when new ones were taken. For tests and operators' tools. */
  reloadTls(): Promise<boolean> {
    return this.tls?.reload() ?? Promise.resolve(false);
  }
}

function positiveInt(value: number, key: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new ConfigError(key, `must be a positive integer, got ${String(value)}`);
  return value;
}

/** Shard and epoch travel as decimal text; anything else cannot be stamped on a forward. */
function uintText(value: number, what: string): string {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new MulticonnectError("transport_rejected", `transport: forward: ${what} must be a non-negative integer`);
  return String(value);
}

export { deriveTransportKey, signReply, signRequest } from "./auth.js";
export { REPLAY_WINDOW, ReplayGuard, SenderWindow, type ReplayGuardOptions } from "./replay-window.js";
export type { TransportTlsOptions } from "./tls.js";
export { H as TRANSPORT_HEADERS, PATHS as TRANSPORT_PATHS } from "./wire.js";

/**
 * FOR TESTS ONLY: the protocol range a node reports, from `MULTICONNECT_TEST_PROTOCOL`
 * ("<version>" or "<version>:<min>"), so an integration test can run nodes of versions N and N + 1
 * side by side. Unset: undefined (the SDK's own PROTOCOL). A malformed value is a ConfigError.
 */
export function testProtocolOverride(env: NodeJS.ProcessEnv = process.env): wire.ProtocolRange | undefined {
  const text = env["MULTICONNECT_TEST_PROTOCOL"];
  if (text === undefined || text === "") return undefined;
  const [v, m] = text.split(":");
  const range = wire.parseProtocol(v, m);
  if (range === undefined)
    throw new ConfigError("MULTICONNECT_TEST_PROTOCOL", `must be <version> or <version>:<min>, got ${JSON.stringify(text)}`);
  return range;
}

export { ProtocolMismatchError } from "./errors.js";
export { PROTOCOL, type ProtocolRange } from "./wire.js";
