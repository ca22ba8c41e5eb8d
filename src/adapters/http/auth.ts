/**
 * Message authentication for the HTTP transport: a key derived once from the cluster secret, and
 * HMAC-SHA256 signatures over a canonical text of each request and each successful reply.
 *
 * What a request signature binds: the message kind (which is the URL path), the sender id, the
 * receiver id, the sender's sequence number, the SHA-256 of the body and, for a forward, the shard,
 * the epoch and the original method, path and headers. Binding the receiver id stops a message from
 * being redirected to another node; the sequence number lets the receiver refuse a replay. No time
 * stamp takes part: nodes' wall clocks may disagree by an hour and the scheme must not care.
 *
 * A reply signature binds the same request (kind, both ids, the request's sequence number) plus the
 * reply's status, headers and body hash, so a recorded reply cannot answer any other request.
 */
import * as crypto from "node:crypto";
import { createHash, createHmac, createSecretKey, hkdfSync, timingSafeEqual, type KeyObject } from "node:crypto";
import { ConfigError } from "../../core/errors.js";
import type { MessageKind } from "./wire.js";

/** Bumped whenever the canonical text changes, so that mixed versions fail closed. */
const REQUEST_TAG = "mc1-req";
const REPLY_TAG = "mc1-rep";
const HKDF_INFO = "multiconnect transport hmac v1";
/** Below this a secret is guessable offline from one captured message. */
const MIN_SECRET_LENGTH = 16;

/**
 * The signing key for one cluster: HKDF-SHA256 of the secret with the cluster name as salt, so two
 * clusters sharing a secret by mistake still cannot accept each other's messages. The secret itself
 * is not kept anywhere, which is also why no error can ever print it.
 */
export function deriveTransportKey(secret: string, clusterName: string): KeyObject {
  if (typeof secret !== "string" || secret.length < MIN_SECRET_LENGTH) {
    throw new ConfigError("transport.secret", `must be a string of at least ${MIN_SECRET_LENGTH} characters`);
  }
  if (typeof clusterName !== "string" || clusterName.length === 0) {
    throw new ConfigError("transport.cluster_name", "must be a non-empty string");
  }
  return createSecretKey(Buffer.from(hkdfSync("sha256", secret, clusterName, HKDF_INFO, 32)));
}

/** The fields of a request that its signature covers. Every string is free of line feeds (see wire.ts). */
export interface RequestFields {
  readonly kind: MessageKind;
  readonly from: string;
  readonly to: string;
  /** Decimal text, exactly as it travels in the header. */
  readonly seq: string;
  /** Forward only ("" otherwise): shard, epoch, original method, path and encoded headers. */
  readonly shard: string;
  readonly epoch: string;
  readonly method: string;
  readonly path: string;
  readonly headers: string;
  readonly body: Uint8Array;
}

/** The fields of a successful reply that its signature covers, besides the request it answers. */
export interface ReplyFields {
  readonly kind: MessageKind;
  /** The node that answered (the request's receiver). */
  readonly responder: string;
  /** The node that asked (the request's sender). */
  readonly requester: string;
  readonly seq: string;
  /** Forward only ("" otherwise): the coreapp's status and encoded headers. */
  readonly status: string;
  readonly headers: string;
  readonly body: Uint8Array;
}

/**
 * One-shot `crypto.hash` (Node >= 20.12) is several times cheaper than a Hash object for small
 * bodies, which is most forwards; older Node 20 releases fall back to the object.
 */
const oneShot: ((algorithm: string, data: Uint8Array, encoding: "base64url") => string) | undefined = (
  crypto as { hash?: typeof crypto.hash }
).hash;

/** SHA-256 of a body, base64url: the canonical text carries the hash, not the bytes. */
function bodyHash(body: Uint8Array): string {
  return oneShot !== undefined ? oneShot("sha256", body, "base64url") : createHash("sha256").update(body).digest("base64url");
}

/**
 * The signature of a request, base64url (43 characters). Fields are joined by line feeds; none of
 * them can contain one, and the last is a fixed-length hash, so two different requests never share
 * a canonical text.
 */
export function signRequest(key: KeyObject, f: RequestFields): string {
  const text = `${REQUEST_TAG}\n${f.kind}\n${f.from}\n${f.to}\n${f.seq}\n${f.shard}\n${f.epoch}\n${f.method}\n${f.path}\n${f.headers}\n${bodyHash(f.body)}`;
  return createHmac("sha256", key).update(text).digest("base64url");
}

/** The signature of a successful reply, base64url. Distinct tag: a request signature is never a valid reply one. */
export function signReply(key: KeyObject, f: ReplyFields): string {
  const text = `${REPLY_TAG}\n${f.kind}\n${f.responder}\n${f.requester}\n${f.seq}\n${f.status}\n${f.headers}\n${bodyHash(f.body)}`;
  return createHmac("sha256", key).update(text).digest("base64url");
}

/**
 * Compares a received signature with the expected one in constant time. The length check may
 * return early: every valid signature has the same public length, so it reveals nothing.
 */
export function signatureMatches(expected: string, received: string | undefined): boolean {
  if (received === undefined || received.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(expected, "latin1"), Buffer.from(received, "latin1"));
}
