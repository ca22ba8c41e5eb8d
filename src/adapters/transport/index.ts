/**
 * The node-to-node transport: length-prefixed binary frames over one persistent TCP connection per
 * pair of nodes (TLS with `tls` set), every call to a peer multiplexed on it by request id.
 *
 * Authentication (handshake.ts): each connection opens with a handshake in which both sides prove
 * the cluster key (derived from the secret, salted with the cluster name) over fresh nonces and
 * both node ids, so a connection is bound to its receiver and cannot be replayed; every later frame
 * carries a MAC under a key of that connection and its position in the stream, so a frame cannot be
 * forged, replayed, reordered or moved to another connection. No wall clock takes part. The threat
 * model is in docs/security.md.
 *
 * Forwards are acknowledged: the coreapp sends a "started" frame before the application's handler
 * runs, so a caller whose connection the peer closed before that frame knows the request did not
 * run (`notDelivered`), and "not serving this shard at this epoch" is a typed result, not a header.
 * A webapp calling a coreapp in the same process skips the network (local.ts).
 */
import { ConfigError, MulticonnectError } from "../../core/errors.js";
import type { Logger } from "../../core/ports/logger.js";
import type {
  AdminCommand,
  AdminReply,
  ExitNotice,
  ExitReply,
  FailsafeReply,
  FailsafeRequest,
  ForwardRequest,
  ForwardResult,
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
import { TransportClient } from "./client.js";
import { badReplyError } from "./errors.js";
import { deriveTransportKey } from "./handshake.js";
import { callLocal, keyTagOf, registerLocal } from "./local.js";
import * as messages from "./messages.js";
import { MalformedMessage, type JsonKind, type JsonKindName } from "./messages.js";
import { startServer, type ServerOptions } from "./server.js";
import { TransportTls, type TransportTlsOptions } from "./tls.js";

/** Settings of a {@link FramedTransport}. */
export interface FramedTransportOptions {
  /**
   * This node's id, sent in every handshake. Must be unique per process (the nodes use
   * `name.randomhex`): the in-process shortcut and the peers' connections are keyed by it.
   */
  readonly nodeId: string;
  /** The cluster's name: the salt of the key derivation, so clusters never accept each other's connections. */
  readonly clusterName: string;
  /** The cluster secret, at least 16 characters. Only a derived key is kept; the secret is never logged or reported. */
  readonly secret: string;
  /** Largest request body a listener accepts (default 1 MiB); a larger request frame closes the connection. */
  readonly maxBodyBytes?: number;
  /** Largest reply body a call accepts (default 64 MiB); forwarded replies may carry media. */
  readonly maxReplyBytes?: number;
  /** Connections to distinct peers kept at once (default 4096); past it the oldest is closed. */
  readonly maxPeers?: number;
  readonly logger?: Logger;
  /**
   * Whether a forward to a listener of this process is a direct call (default true; see local.ts).
   * Tests and benchmarks of the network path turn it off.
   */
  readonly inProcessShortcut?: boolean;
  /** The protocol versions to speak (default messages.PROTOCOL). For tests of mixed-version clusters only. */
  readonly protocol?: messages.ProtocolRange;
  /**
   * Mutual TLS between nodes (default off: plain TCP). Every node of a cluster must agree: a TLS
   * node refuses plain connections, and a plain node cannot reach a TLS one. The files are checked
   * when the transport is made (ConfigError naming the key and file) and reloaded when they change.
   */
  readonly tls?: TransportTlsOptions;
}

const MIB = 1024 * 1024;

/** {@link Transport} over framed, multiplexed, authenticated connections. */
export class FramedTransport implements Transport {
  private readonly client: TransportClient;
  private readonly server: ServerOptions;
  private readonly tls: TransportTls | undefined;
  private readonly self: string;
  private readonly keyTag: string;
  private readonly shortcut: boolean;
  private readonly unregister: (() => void)[] = [];

  constructor(o: FramedTransportOptions) {
    if (!messages.isNodeId(o.nodeId)) throw new ConfigError("transport.node_id", "must be 1-200 visible ASCII characters");
    const key = deriveTransportKey(o.secret, o.clusterName);
    const logger = o.logger ?? silentLogger;
    const maxReplyBytes = positiveInt(o.maxReplyBytes ?? 64 * MIB, "transport.max_reply_bytes");
    const maxBodyBytes = positiveInt(o.maxBodyBytes ?? MIB, "transport.max_body_bytes");
    const maxPeers = positiveInt(o.maxPeers ?? 4096, "transport.max_peers");
    const protocol = o.protocol ?? messages.PROTOCOL;
    this.self = o.nodeId;
    // The shortcut serves only listeners of the same cluster key; a tag, not the key, is shared.
    this.keyTag = keyTagOf(key);
    this.shortcut = o.inProcessShortcut ?? true;
    // Last of the checks: it starts a reload timer, which nothing would stop if a later check threw.
    this.tls = o.tls === undefined ? undefined : new TransportTls(o.tls, logger);
    this.client = new TransportClient(o.nodeId, key, { maxReplyBytes, maxPeers, protocol, tls: this.tls });
    this.server = { key, maxBodyBytes, protocol, logger, tls: this.tls };
  }

  heartbeat(to: Peer, message: HeartbeatMessage, timeoutMs: number): Promise<HeartbeatReply> {
    const body = message.mapChanged ? { master: message.master, mapChanged: true } : { master: message.master };
    return this.json(to, "heartbeat", body, timeoutMs);
  }

  async forward(to: Peer, request: ForwardRequest, timeoutMs: number): Promise<ForwardResult> {
    if (!isUint(request.shard) || !isUint(request.epoch))
      throw new MulticonnectError("transport_rejected", "transport: forward: shard and epoch must be non-negative integers");
    if (!messages.isMethod(request.method) || !messages.isForwardPath(request.path)) {
      throw new MulticonnectError(
        "transport_rejected",
        "transport: forward: the method or path cannot be forwarded (path must start with / and be visible ASCII)",
      );
    }
    const local = this.shortcut ? callLocal(this.keyTag, this.self, to.id, request, timeoutMs) : undefined;
    if (local !== undefined) return local;
    const payload = await this.client.send(to, "forward", messages.encodeForwardRequest(request), timeoutMs);
    try {
      const r = messages.decodeForwardReply(payload);
      return r.outcome === "not-serving" ? r : { outcome: r.outcome, response: r.response };
    } catch (error) {
      throw replyError(error, "forward", to.address);
    }
  }

  switchover(to: Peer, command: SwitchoverCommand, timeoutMs: number): Promise<SwitchoverReply> {
    return this.json(to, "switchover", { shard: command.shard, to: command.to, force: command.force }, timeoutMs);
  }

  admin(to: Peer, command: AdminCommand, timeoutMs: number): Promise<AdminReply> {
    return this.json(to, "admin", command, timeoutMs);
  }

  failsafe(to: Peer, request: FailsafeRequest, timeoutMs: number): Promise<FailsafeReply> {
    return this.json(to, "failsafe", { shard: request.shard, epoch: request.epoch }, timeoutMs);
  }

  exited(to: Peer, notice: ExitNotice, timeoutMs: number): Promise<ExitReply> {
    return this.json(to, "exited", { node: notice.node, role: notice.role, cause: notice.cause, released: notice.released }, timeoutMs);
  }

  async listen(self: string, host: string, port: number, handlers: TransportHandlers): Promise<TransportServer> {
    const server = await startServer(self, host, port, handlers, this.server);
    const unregister = registerLocal(this.keyTag, self, handlers);
    this.unregister.push(unregister);
    return {
      port: server.port,
      close: () => {
        unregister();
        return server.close();
      },
    };
  }

  /** Closes the connections to peers and stops watching the TLS files; listeners are closed by their own handles. */
  close(): Promise<void> {
    this.tls?.close();
    return this.client.close();
  }

  /** Reads the TLS files now instead of at the next tick; true when new ones were taken. For tests and operators' tools. */
  reloadTls(): Promise<boolean> {
    return this.tls?.reload() ?? Promise.resolve(false);
  }

  /** One JSON request and its validated reply. */
  private async json<K extends JsonKindName, R>(to: Peer, kind: K, message: unknown, timeoutMs: number): Promise<R> {
    const payload = await this.client.send(to, kind, [Buffer.from(JSON.stringify(message))], timeoutMs);
    try {
      return (messages.JSON_KINDS[kind] as JsonKind<unknown, R>).reply(payload);
    } catch (error) {
      throw replyError(error, kind, to.address);
    }
  }
}

function positiveInt(value: number, key: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new ConfigError(key, `must be a positive integer, got ${String(value)}`);
  return value;
}

function isUint(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

/** Reply content that failed validation: a protocol error (version mismatch), not a network one. */
function replyError(error: unknown, kind: messages.MessageKind, address: string): Error {
  if (error instanceof MalformedMessage) return badReplyError(error.message, kind, address, false);
  return error as Error;
}

export { deriveTransportKey } from "./handshake.js";
export { MAX_HANDSHAKE_FRAME, FRAME_OVERHEAD } from "./frames.js";
export type { TransportTlsOptions } from "./tls.js";
export { ProtocolMismatchError } from "./errors.js";
export { PROTOCOL, type ProtocolRange } from "./messages.js";

/**
 * FOR TESTS ONLY: the protocol range a node reports, from `MULTICONNECT_TEST_PROTOCOL`
 * ("<version>" or "<version>:<min>"), so an integration test can run nodes of versions N and N + 1
 * side by side. Unset: undefined (the SDK's own PROTOCOL). A malformed value is a ConfigError.
 */
export function testProtocolOverride(env: NodeJS.ProcessEnv = process.env): messages.ProtocolRange | undefined {
  const text = env["MULTICONNECT_TEST_PROTOCOL"];
  if (text === undefined || text === "") return undefined;
  const [v, m] = text.split(":").map((part) => (/^[1-9][0-9]{0,5}$/.test(part) ? Number(part) : NaN));
  const range = messages.parseProtocol([v, m ?? v]);
  if (range === undefined)
    throw new ConfigError("MULTICONNECT_TEST_PROTOCOL", `must be <version> or <version>:<min>, got ${JSON.stringify(text)}`);
  return range;
}
