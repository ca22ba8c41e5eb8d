/**
 * Maps what can go wrong on a transport call to the SDK's errors, in one place. Messages name the
 * peer's address and the kind of message; they never carry the secret (the transport does not even
 * keep it) or a signature.
 */
import { AuthenticationError, MulticonnectError, TransportUnavailableError } from "../../core/errors.js";
import type { MessageKind } from "./messages.js";

/** Raised by our own timer when a call's budget runs out; mapped like any other timeout. */
export class CallTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
  }
}

/** Raised when a reply is larger than the client accepts. */
export class ReplyTooLarge extends Error {}

/** Node's codes that mean "the peer could not be reached or dropped us". */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/** Node's codes for TLS failures: an untrusted or misnamed certificate, a refusal alert, a bad record. */
const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$)/;

/**
 * The error a failed call throws, from what the socket reported. `notDelivered` says the request
 * certainly did not start, and only the caller can know it: a code alone cannot. EHOSTUNREACH or a
 * TLS alert before the handshake finished means nothing was written; the same code on an
 * established connection (a retransmission that gave up on a vanished host, a corrupted record)
 * comes after requests were written and possibly run.
 */
export function mapCallError(error: unknown, kind: MessageKind | "connection", address: string, notDelivered = false): Error {
  if (error instanceof MulticonnectError) return error;
  if (error instanceof CallTimeout) {
    return new TransportUnavailableError(`transport: ${kind} to ${address}: no answer within ${error.timeoutMs} ms`, {
      cause: error,
      notDelivered,
    });
  }
  if (error instanceof ReplyTooLarge) {
    return new MulticonnectError("transport_protocol", `transport: ${kind} to ${address}: ${error.message}`, { cause: error });
  }
  const code = networkCode(error);
  if (code !== undefined && TLS_CODE.test(code)) {
    // Before the handshake finished, one side does not trust the other (only new certificates fix
    // it); after it, a record or alert broke an established connection. "Unavailable" either way.
    const what = notDelivered ? "TLS handshake failed" : "TLS connection failed";
    return new TransportUnavailableError(`transport: ${kind} to ${address}: ${what} (${code})`, { cause: error, notDelivered });
  }
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return new TransportUnavailableError(`transport: ${kind} to ${address}: unreachable (${code})`, { cause: error, notDelivered });
  }
  // Anything else is still "we could not talk to the peer": retryable, and never treated as an answer.
  const detail = error instanceof Error && code === undefined ? error.message : (code ?? "unknown error");
  return new TransportUnavailableError(`transport: ${kind} to ${address}: failed (${detail})`, { cause: error, notDelivered });
}

/** The code of an error, or of the first error inside an AggregateError (happy-eyeballs connect failures). */
function networkCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") return code;
  if (error instanceof AggregateError) return networkCode(error.errors[0]);
  const cause = (error as { cause?: unknown }).cause;
  return cause === undefined || cause === error ? undefined : networkCode(cause);
}

/**
 * Two nodes have no protocol version in common (a rolling upgrade skipped a step, or a node was
 * left behind). The message names both ranges. Not retryable; the receiver ran nothing.
 */
export class ProtocolMismatchError extends MulticonnectError {
  constructor(detail: string) {
    super("protocol_mismatch", `transport: ${detail}; upgrade the older node (see docs/operations.md, rolling upgrade)`);
  }
}

/**
 * Codes of a refuse frame (and of a handshake reject), HTTP-like: 400 malformed, 401
 * unauthenticated or addressed to another node, 426 no protocol version in common, 500 the
 * handler failed, 501 no handler for the kind, 503 too many requests in flight on the connection.
 */
export const REFUSAL = { malformed: 400, unauthenticated: 401, protocol: 426, failed: 500, noHandler: 501, busy: 503 } as const;

/** The error for a refusal from the peer. `notDelivered`: the request certainly did not start (503, or a forward never acknowledged). */
export function refusalError(status: number, reason: string, kind: MessageKind, address: string, notDelivered = false): Error {
  const what = `transport: ${kind} to ${address}`;
  if (status === 401) return new AuthenticationError(`${kind} to ${address} rejected: ${reason}`, { refusedByReceiver: true });
  if (status === 426) return new ProtocolMismatchError(`${kind} to ${address} refused: ${reason}`);
  // The peer is up but failing, or something in between is: worth trying again later.
  if (status >= 500 && status !== 501)
    return new TransportUnavailableError(`${what}: peer answered ${status} (${reason})`, { notDelivered });
  // 400, 501: trying again will not help; a version or configuration mismatch.
  return new MulticonnectError("transport_rejected", `${what}: peer answered ${status} (${reason})`);
}

/** The error for a reply that arrived but cannot be used (bad signature, malformed content). */
export function badReplyError(problem: string, kind: MessageKind, address: string, unauthenticated: boolean): Error {
  if (unauthenticated) return new AuthenticationError(`${kind} reply from ${address} failed authentication: ${problem}`);
  return new MulticonnectError("transport_protocol", `transport: ${kind} reply from ${address}: ${problem}`);
}
