/**
 * The transport's framing: length-prefixed binary frames on one TCP (or TLS) connection.
 *
 *   u32  length of the rest of the frame (big-endian)
 *   u8   type (see FRAME)
 *   u32  request id (0 for handshake frames)
 *   ...  payload
 *   [16] MAC, on every frame after the handshake (see session.ts)
 *
 * A reader refuses a frame whose declared length exceeds its limit before reading it: during the
 * handshake 4 KiB, afterwards the largest message the side accepts plus {@link FRAME_OVERHEAD}.
 * Nothing is buffered beyond one frame in progress, so a peer cannot make a reader hold more than
 * its limit.
 */

/** Frame types. Handshake frames carry no MAC; the others do. */
export const FRAME = {
  /** Client → server: first frame of a connection (protocol range, ids, client nonce). */
  hello: 1,
  /** Server → client: server nonce and proof of the key. */
  challenge: 2,
  /** Client → server: proof of the key. */
  auth: 3,
  /** Either way, unsealed, then the connection closes: why the handshake was refused. */
  reject: 4,
  /** Server → client, sealed: the handshake succeeded; requests may flow. */
  ready: 5,
  /** Client → server: a request (kind byte, then its payload). */
  request: 16,
  /** Server → client: the handler of a forward has started the request (the acknowledgement). */
  started: 17,
  /** Server → client: the reply to a request. */
  reply: 18,
  /** Server → client: the request was refused before any handler ran (code, reason). */
  refuse: 19,
} as const;

/** Bytes of length, type and request id. */
export const HEADER_BYTES = 9;
/** The MAC appended to each sealed frame. */
export const MAC_BYTES = 16;
/** The largest handshake frame either side reads. */
export const MAX_HANDSHAKE_FRAME = 4096;
/** Room for metadata (method, path, headers, status) on top of a message's body. */
export const FRAME_OVERHEAD = 256 * 1024;

/** A frame as read: type, request id and payload (the MAC, if any, still at the end of `payload`). */
export interface Frame {
  readonly type: number;
  readonly id: number;
  /** The bytes after the id; for sealed frames the last 16 are the MAC. */
  readonly payload: Buffer;
  /** The whole frame after its length field (type, id, payload): what a MAC covers, minus the MAC. */
  readonly raw: Buffer;
}

/** A peer broke the framing (an oversized or truncated frame): the connection must close. */
export class FramingError extends Error {}

/** Builds a frame's bytes: header, then `parts` in order (the caller appends the MAC if sealed). */
export function encodeFrame(type: number, id: number, parts: readonly Uint8Array[], extra = 0): Buffer {
  let size = HEADER_BYTES;
  for (const p of parts) size += p.byteLength;
  const out = Buffer.allocUnsafe(size + extra);
  out.writeUInt32BE(size - 4 + extra, 0);
  out.writeUInt8(type, 4);
  out.writeUInt32BE(id >>> 0, 5);
  let at = HEADER_BYTES;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * Reassembles frames from a byte stream. `push` returns the frames completed by a chunk; it throws
 * FramingError for a frame longer than `maxFrame` (declared length, checked before buffering) or
 * shorter than a header.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** The limit on one frame's length (after the length field); raised once the handshake is done. */
  maxFrame: number;

  constructor(maxFrame: number) {
    this.maxFrame = maxFrame;
  }

  /** Bytes held for a frame not yet complete. */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const length = head.readUInt32BE(0);
      if (length < HEADER_BYTES - 4) throw new FramingError(`frame of ${length} bytes is shorter than a header`);
      if (length > this.maxFrame) throw new FramingError(`frame of ${length} bytes exceeds the limit of ${this.maxFrame}`);
      if (this.buffered < 4 + length) break;
      const whole = this.take(4 + length);
      const raw = whole.subarray(4);
      frames.push({ type: raw.readUInt8(0), id: raw.readUInt32BE(1), payload: raw.subarray(5), raw });
    }
    return frames;
  }

  /** The first `n` buffered bytes, joining chunks only when the first is too short. */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first;
    const joined = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [joined];
    return joined;
  }

  /** Removes and returns the first `n` buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const joined = Buffer.concat(this.chunks, this.buffered);
      out = joined.subarray(0, n);
      this.chunks = joined.length === n ? [] : [joined.subarray(n)];
    }
    this.buffered -= n;
    return out;
  }
}
