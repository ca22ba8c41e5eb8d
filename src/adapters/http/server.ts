/**
 * The receiving side of the HTTP transport: a node:http server that authenticates every message
 * before any handler runs. The order of checks matters: cheap header checks first (404, 401 for a
 * missing signature or another receiver, 400), then the body within its size limit (413), then the
 * signature (401), and only then the replay window, so that nothing unauthenticated can move a
 * sender's window or take a slot in the sender table.
 */
import type { KeyObject } from "node:crypto";
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { ConfigError, TransportUnavailableError } from "../../core/errors.js";
import type { Logger } from "../../core/ports/logger.js";
import type { ForwardResponse, TransportHandlers, TransportServer } from "../../core/ports/transport.js";
import { signatureMatches, signReply, signRequest } from "./auth.js";
import { ReplayGuard, type ReplayGuardOptions } from "./replay-window.js";
import type { TransportTls } from "./tls.js";
import * as wire from "./wire.js";
import { H, MalformedMessage, NO_FORWARD, PATHS, type ForwardFields, type MessageKind } from "./wire.js";

/** Settings of the receiving side. */
export interface ServerOptions {
  readonly key: KeyObject;
  /** Largest request body accepted; larger gets 413 and runs no handler. */
  readonly maxBodyBytes: number;
  /** Idle keep-alive time; longer than the client's so that the client, not us, closes idle sockets. */
  readonly keepAliveMs: number;
  readonly replay: ReplayGuardOptions;
  readonly logger: Logger;
  /** The protocol versions this node speaks (wire.PROTOCOL unless a test overrides it). */
  readonly protocol: wire.ProtocolRange;
  /** Mutual TLS: set, the listener speaks only TLS and refuses a client without a certificate from the CA. */
  readonly tls?: TransportTls;
}

/**
 * How long a client may take to complete its TLS handshake (Node's default is 2 minutes). Peers
 * on a network finish in milliseconds; a socket that has not is not a peer.
 */
const HANDSHAKE_TIMEOUT_MS = 10_000;

const KINDS = new Map<string, MessageKind>(Object.entries(PATHS).map(([kind, path]) => [path, kind as MessageKind]));

/** The outcome of one handler, ready to send: extra headers (forward only) and the body. */
interface Outcome {
  readonly status: string;
  readonly headers: string;
  readonly body: Uint8Array;
}

/** One listener's state: who it is, what it runs, and its replay table. */
class Receiver {
  private readonly guard: ReplayGuard;

  constructor(
    private readonly self: string,
    private readonly handlers: TransportHandlers,
    private readonly o: ServerOptions,
  ) {
    this.guard = new ReplayGuard(o.replay);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.sendDate = false; // nothing reads it; keep replies small
    const kind = req.method === "POST" ? KINDS.get(req.url ?? "") : undefined;
    if (kind === undefined) return refuse(res, 404, "unknown path");
    const h = req.headers;
    const theirs = wire.parseProtocol(h[H.proto], h[H.protoMin]);
    if (theirs === undefined) return refuse(res, 400, `${H.proto} / ${H.protoMin} malformed`);
    if (!wire.protocolsOverlap(theirs, this.o.protocol)) {
      // Before the body and the signature: nothing of an incompatible message is worth reading.
      return refuse(res, 426, `sender speaks ${wire.describeProtocol(theirs)}, this node ${wire.describeProtocol(this.o.protocol)}`);
    }
    const sig = h[H.sig];
    if (typeof sig !== "string") return refuse(res, 401, "signature missing");
    const from = h[H.from];
    const to = h[H.to];
    const seqText = h[H.seq];
    const seq = wire.parseSeq(seqText);
    if (!wire.isNodeId(from) || !wire.isNodeId(to) || seq === undefined)
      return refuse(res, 400, "sender, receiver or sequence number missing or malformed");
    // A message for another node is refused whatever its signature: it was redirected here.
    if (to !== this.self) return refuse(res, 401, "addressed to another node");
    const fwd = kind === "forward" ? forwardFields(h) : NO_FORWARD;
    if (fwd === undefined) return refuse(res, 400, "forward metadata missing or malformed");
    if (Number(h["content-length"]) > this.o.maxBodyBytes) return refuse(res, 413, "body too large");

    const body = await readBody(req, this.o.maxBodyBytes);
    if (body === "aborted") return void res.destroy();
    if (body === "too-large") return refuse(res, 413, "body too large");

    const expected = signRequest(this.o.key, { kind, from, to, seq: seqText as string, ...fwd, body });
    if (!signatureMatches(expected, sig)) return refuse(res, 401, "bad signature");
    if (!this.guard.accept(from, seq)) return refuse(res, 401, "replayed or too old sequence number");

    let outcome: Outcome | undefined;
    try {
      outcome = await this.run(kind, from, fwd, body);
    } catch (error) {
      if (error instanceof MalformedMessage) return refuse(res, 400, error.message);
      this.o.logger.warn({ kind, from, error: error instanceof Error ? error.message : String(error) }, "transport: handler failed");
      return refuse(res, 500, "handler failed");
    }
    if (outcome === undefined) return refuse(res, 501, `no ${kind} handler`);

    const replySig = signReply(this.o.key, { kind, responder: this.self, requester: from, seq: seqText as string, ...outcome });
    const headers = [H.sig, replySig, "content-length", String(outcome.body.byteLength)];
    headers.push(H.proto, String(this.o.protocol.version), H.protoMin, String(this.o.protocol.min));
    if (kind === "forward") headers.push(H.status, outcome.status, H.headers, outcome.headers);
    else headers.push("content-type", "application/json");
    res.writeHead(200, headers);
    res.end(outcome.body);
  }

  /** Parses the content and runs the handler; undefined when there is no handler for this kind. */
  private async run(kind: MessageKind, from: string, fwd: ForwardFields, body: Buffer): Promise<Outcome | undefined> {
    const handlers = this.handlers;
    switch (kind) {
      case "heartbeat": {
        if (handlers.heartbeat === undefined) return undefined;
        const r = await handlers.heartbeat(from, wire.parseHeartbeatMessage(body));
        return json({ id: r.id, shard: r.shard, epoch: r.epoch, ended: r.ended ?? null });
      }
      case "switchover": {
        if (handlers.switchover === undefined) return undefined;
        const r = await handlers.switchover(from, wire.parseSwitchoverCommand(body));
        return json(r);
      }
      case "admin": {
        if (handlers.admin === undefined) return undefined;
        return json(await handlers.admin(from, wire.parseAdminCommand(body)));
      }
      case "failsafe": {
        if (handlers.failsafe === undefined) return undefined;
        const r = await handlers.failsafe(from, wire.parseFailsafeRequest(body));
        return json(r.ok ? { ok: true, promiseMs: r.promiseMs } : { ok: false, reason: r.reason ?? "refused" });
      }
      case "forward": {
        if (handlers.forward === undefined) return undefined;
        const request = {
          shard: Number(fwd.shard),
          epoch: Number(fwd.epoch),
          method: fwd.method,
          path: fwd.path,
          headers: wire.decodeHeaderMap(fwd.headers),
          body,
        };
        return forwardOutcome(await handlers.forward(from, request));
      }
    }
  }
}

/** A JSON reply body; no status or headers of its own. */
function json(value: unknown): Outcome {
  return { status: "", headers: "", body: Buffer.from(JSON.stringify(value)) };
}

/** Checks what the application's forward handler returned; a bad value is a handler failure (500). */
function forwardOutcome(r: ForwardResponse): Outcome {
  if (!Number.isInteger(r.status) || r.status < 100 || r.status > 599)
    throw new Error(`forward handler returned status ${String(r.status)}`);
  if (!(r.body instanceof Uint8Array)) throw new Error("forward handler returned a body that is not a Uint8Array");
  return { status: String(r.status), headers: wire.encodeHeaderMap(r.headers), body: r.body };
}

/** The forward metadata headers, checked for form (their content is checked after authentication). */
function forwardFields(h: IncomingHttpHeaders): ForwardFields | undefined {
  const shard = h[H.shard];
  const epoch = h[H.epoch];
  const method = h[H.method];
  const path = h[H.path];
  const headers = h[H.headers];
  if (wire.parseUint(shard) === undefined || wire.parseUint(epoch) === undefined) return undefined;
  if (!wire.isMethod(method) || !wire.isForwardPath(path) || typeof headers !== "string") return undefined;
  return { shard: shard as string, epoch: epoch as string, method, path, headers };
}

/**
 * Answers a refusal. The connection is closed afterwards: the body may not have been read, and
 * draining an arbitrary amount of it would cost more than a new connection.
 */
function refuse(res: ServerResponse, status: number, reason: string): void {
  const body = JSON.stringify({ error: reason });
  res.writeHead(status, ["content-type", "application/json", "content-length", String(Buffer.byteLength(body)), "connection", "close"]);
  res.end(body);
}

/** Reads the whole body, at most `max` bytes. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | "too-large" | "aborted"> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (result: Buffer | "too-large" | "aborted"): void => {
      req.off("data", onData).off("end", onEnd).off("error", onAbort).off("close", onAbort);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > max) done("too-large");
      else chunks.push(chunk);
    };
    const onEnd = (): void => done(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    const onAbort = (): void => done("aborted");
    req.on("data", onData).on("end", onEnd).on("error", onAbort).on("close", onAbort);
  });
}

/** Starts a listener for `self`. Rejects with TransportUnavailableError when the port cannot be bound. */
export async function startServer(
  self: string,
  host: string,
  port: number,
  handlers: TransportHandlers,
  o: ServerOptions,
): Promise<TransportServer> {
  if (!wire.isNodeId(self)) throw new ConfigError("transport.self", "must be 1-200 visible ASCII characters");
  const receiver = new Receiver(self, handlers, o);
  const onRequest: RequestListener = (req, res) => {
    receiver.handle(req, res).catch((error: unknown) => {
      o.logger.error({ error: error instanceof Error ? error.message : String(error) }, "transport: request failed");
      if (!res.headersSent) refuse(res, 500, "internal error");
      else res.destroy();
    });
  };
  const tls = o.tls;
  let server: Server;
  let unsubscribe: (() => void) | undefined;
  if (tls === undefined) {
    server = createServer(onRequest);
  } else {
    const secure = createTlsServer(
      { ...tls.context, requestCert: true, rejectUnauthorized: true, handshakeTimeout: HANDSHAKE_TIMEOUT_MS },
      onRequest,
    );
    // New handshakes use reloaded files; connections already open keep the context they began with.
    unsubscribe = tls.onChange(() => secure.setSecureContext(tls.context));
    server = secure;
  }
  server.keepAliveTimeout = o.keepAliveMs;
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
  const bound = (server.address() as AddressInfo).port;
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        unsubscribe?.();
        server.close(() => resolve());
        // close() alone waits for idle keep-alive sockets to time out; end them now.
        server.closeAllConnections();
      }),
  };
}
