/**
 * The transport's connection handshake and per-frame authentication.
 *
 * Keys: the cluster key is scrypt of the cluster secret with the cluster name in the salt, so two
 * clusters sharing a secret by mistake still cannot talk to each other. The secret itself is not
 * kept anywhere, which is also why no error can ever print it.
 *
 * Handshake (three frames, then one sealed "ready"):
 *   client → server  hello      { proto, from, to, nonce: Nc }          (32 random bytes)
 *   server → client  challenge  { proto, nonce: Ns, proof: P_s }
 *   client → server  auth       { proof: P_c }
 *   server → client  ready      (sealed with the session key: proves both sides derived it)
 * where P_s = HMAC(K, "mc2-srv" ‖ from ‖ to ‖ both protocol ranges ‖ Nc ‖ Ns) and
 * P_c = HMAC(K, "mc2-cli" ‖ …same…).
 * The server refuses a hello addressed to another id before answering; the client refuses a
 * challenge whose proof does not verify (the server does not hold K, or is not `to`). Both nonces
 * are fresh, so a recorded handshake cannot be replayed to either side, and the distinct tags keep
 * one side's proof from ever serving as the other's.
 *
 * Session: two keys (one per direction) are HKDF(K, Nc ‖ Ns, "mc2 session" ‖ from ‖ to). Every
 * sealed frame after the handshake carries HMAC(direction key, sequence ‖ frame)[:16], where the
 * sequence is the frame's position in its direction (0, 1, 2, …) and travels nowhere: a frame
 * replayed, reordered, dropped or moved into another connection fails its MAC, and the connection
 * closes. No wall clock takes part. A batch (frames.ts) is one sealed frame: its MAC covers every
 * frame inside, in order, so none of them can be changed, dropped, reordered or moved either.
 */
import { createHash, createHmac, createSecretKey, hkdfSync, scryptSync, timingSafeEqual, type KeyObject } from "node:crypto";
import { ConfigError } from "../../core/errors.js";
import { FRAME, MAC_BYTES, splitBatch, type Frame } from "./frames.js";
import type { ProtocolRange } from "./messages.js";

const KEY_SALT = "multiconnect transport v2";
const SESSION_INFO = "mc2 session";
/** Below this a secret is guessable offline from one captured handshake, however slow its key. */
const MIN_SECRET_LENGTH = 16;
/**
 * scrypt's cost for the cluster key: N = 2^14, r = 8, the scrypt paper's cost for an interactive
 * login (16 MiB; about 60 ms on a 2-core VM, once per process and cluster, see `deriveTransportKey`;
 * a supervised node pays it twice, in the supervisor and in the node). Anyone who reaches a node's port gets a
 * proof made with the key (the listener proves first), and anyone on the path sees both; from one,
 * a secret that a person chose rather than drew at random could be guessed offline. Through HKDF a
 * guess cost two HMACs; through scrypt it costs what this derivation costs. A random secret of 16
 * or more characters needs none of it, but nothing checks that a secret is random.
 */
const SCRYPT = { N: 2 ** 14, r: 8, p: 1, maxmem: 32 * 1024 * 1024 };
/** Keys derived in this process, by a hash of (secret, cluster name): each is derived once. */
const derived = new Map<string, Buffer>();
/** Bytes of each nonce. */
export const NONCE_BYTES = 32;

/**
 * The key of one cluster: scrypt of the secret, salted with the cluster name (see SCRYPT). Throws
 * ConfigError for a secret shorter than 16 characters or an empty cluster name.
 */
export function deriveTransportKey(secret: string, clusterName: string): Buffer {
  if (typeof secret !== "string" || secret.length < MIN_SECRET_LENGTH) {
    throw new ConfigError("transport.secret", `must be a string of at least ${MIN_SECRET_LENGTH} characters`);
  }
  if (typeof clusterName !== "string" || clusterName.length === 0) {
    throw new ConfigError("transport.cluster_name", "must be a non-empty string");
  }
  const id = createHash("sha256")
    .update(JSON.stringify([secret, clusterName]))
    .digest("hex");
  let key = derived.get(id);
  if (key === undefined) {
    key = scryptSync(secret, `${KEY_SALT}\0${clusterName}`, 32, SCRYPT);
    // A process talks for one cluster or two; a test suite for a few: keep the newest few.
    if (derived.size >= 16) derived.delete(derived.keys().next().value!);
    derived.set(id, key);
  }
  return Buffer.from(key);
}

/** Who proves: the server answering a hello, or the client answering a challenge. */
export type ProofRole = "server" | "client";

/** The protocol ranges the two sides announced in a handshake: the caller's hello, the listener's challenge. */
export interface AnnouncedProtocols {
  readonly caller: ProtocolRange;
  readonly listener: ProtocolRange;
}

/**
 * The proof of `role` for one handshake: binds both ids, both nonces and both announced protocol
 * ranges. The ranges travel in the clear before any key is proven; bound into the proofs, a range
 * that was altered on the way (to talk two nodes down to an older version they both still accept)
 * makes the handshake fail instead.
 */
export function handshakeProof(
  key: Buffer,
  role: ProofRole,
  from: string,
  to: string,
  nonceC: Buffer,
  nonceS: Buffer,
  protocols: AnnouncedProtocols,
): Buffer {
  const h = createHmac("sha256", key);
  h.update(role === "server" ? "mc2-srv\n" : "mc2-cli\n");
  // Ids are visible ASCII without line feeds (messages.ts), so the text is unambiguous.
  h.update(`${from}\n${to}\n`);
  const { caller, listener } = protocols;
  h.update(`${caller.version}:${caller.min}\n${listener.version}:${listener.min}\n`);
  h.update(nonceC);
  h.update(nonceS);
  return h.digest();
}

/** Constant-time comparison; the length check may return early (every proof has the same public length). */
export function proofMatches(expected: Buffer, received: Buffer | undefined): boolean {
  return received !== undefined && received.length === expected.length && timingSafeEqual(expected, received);
}

/** The two directions' keys of one connection. */
export interface SessionKeys {
  readonly clientToServer: Buffer;
  readonly serverToClient: Buffer;
}

/** Derives the session keys once both nonces are known. */
export function sessionKeys(key: Buffer, from: string, to: string, nonceC: Buffer, nonceS: Buffer): SessionKeys {
  const okm = Buffer.from(hkdfSync("sha256", key, Buffer.concat([nonceC, nonceS]), `${SESSION_INFO}\n${from}\n${to}`, 64));
  return { clientToServer: okm.subarray(0, 32), serverToClient: okm.subarray(32) };
}

/**
 * One direction of a session: seals outgoing frames or opens incoming ones, counting them. A
 * sealer and its peer's opener must see the same frames in the same order; any gap is a failure.
 */
export class FrameMac {
  private seq = 0n;
  private readonly seqBytes = Buffer.alloc(8);
  /** Prepared once: a KeyObject spares each HMAC from importing the raw key again. */
  private readonly key: KeyObject;

  constructor(key: Buffer) {
    this.key = createSecretKey(key);
  }

  /** The MAC of the next frame in this direction (`body`: type, id and payload). Advances the sequence. */
  next(body: Uint8Array): Buffer {
    this.seqBytes.writeBigUInt64BE(this.seq++, 0);
    return createHmac("sha256", this.key).update(this.seqBytes).update(body).digest().subarray(0, MAC_BYTES);
  }

  /** Seals a frame built with `encodeFrame(..., MAC_BYTES)`: writes the MAC into its last 16 bytes. */
  seal(frame: Buffer): Buffer {
    frame.set(this.next(frame.subarray(4, frame.length - MAC_BYTES)), frame.length - MAC_BYTES);
    return frame;
  }

  /** Checks the MAC of an incoming frame's `raw` bytes (MAC last); false means the connection must close. */
  verify(raw: Buffer): boolean {
    if (raw.length < 5 + MAC_BYTES) return false;
    const expected = this.next(raw.subarray(0, raw.length - MAC_BYTES));
    return timingSafeEqual(expected, raw.subarray(raw.length - MAC_BYTES));
  }

  /**
   * Checks an incoming sealed frame and returns the frames it carries, MACs cut off: the frame
   * itself, or a batch's frames in order. Null when the MAC fails (the connection must close);
   * throws FramingError for a batch whose MAC holds but whose frames do not tile it.
   */
  open(frame: Frame): Frame[] | null {
    if (!this.verify(frame.raw)) return null;
    const raw = frame.raw.subarray(0, frame.raw.length - MAC_BYTES);
    const payload = raw.subarray(5);
    return frame.type === FRAME.batch ? splitBatch(payload) : [{ type: frame.type, id: frame.id, payload, raw }];
  }
}
