/**
 * The transport's framing: length-prefixed binary frames on one TCP (or TLS) connection.
 *
 *   u32  length of the rest of the frame (big-endian)
 *   u8   type (see FRAME)
 *   u32  request id (0 for handshake frames)
 *   ...  payload
 *   [16] MAC, on every frame after the handshake (see handshake.ts)
 *
 * After the handshake a sender may also seal several frames as one: a `batch` frame whose payload
 * is the frames themselves, each framed as above but without a MAC of its own, under the batch's
 * one MAC. Under load a connection's frames leave in batches anyway (outbox.ts), and one MAC per
 * batch instead of one per frame halves the transport's CPU per forward; the receiver reads the
 * whole batch before it checks the MAC, so no frame of it is acted on unauthenticated.
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
  /** Either way, sealed: frames without MACs of their own under this frame's one MAC. */
  batch: 20,
} as const;

/** Bytes of length, type and request id. */
export const HEADER_BYTES = 9;
/** The MAC appended to each sealed frame. */
export const MAC_BYTES = 16;
/** The largest handshake frame either side reads. */
export const MAX_HANDSHAKE_FRAME = 4096;
/** Room for metadata (method, path, headers, status) on top of a message's body. */
export const FRAME_OVERHEAD = 256 * 1024;

/**
 * A frame: type, request id and payload. As read from the stream, a sealed frame still ends in its
 * MAC; once opened (`FrameMac.open`) the payload is the message alone.
 */
export interface Frame {
  readonly type: number;
  readonly id: number;
  /** The bytes after the id (for a sealed frame as read, the last 16 are the MAC). */
  readonly payload: Buffer;
  /** The whole frame after its length field (type, id, payload): what a MAC covers, plus the MAC if sealed. */
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
 * One batch frame (with room for its MAC) holding `frames`, each built with
 * `encodeFrame(..., MAC_BYTES)`: their MAC slots are left out and their lengths shortened to match.
 */
export function encodeBatch(frames: readonly Buffer[]): Buffer {
  let size = HEADER_BYTES + MAC_BYTES;
  for (const f of frames) size += f.length - MAC_BYTES;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(size - 4, 0);
  out.writeUInt8(FRAME.batch, 4);
  out.writeUInt32BE(0, 5);
  let at = HEADER_BYTES;
  for (const f of frames) {
    const inner = f.length - MAC_BYTES;
    out.set(f.subarray(0, inner), at);
    out.writeUInt32BE(inner - 4, at);
    at += inner;
  }
  return out;
}

/**
 * The frames inside a batch's payload (its MAC already checked and cut off). Throws FramingError if
 * they do not tile the payload exactly, or if one is itself a batch.
 */
export function splitBatch(payload: Buffer): Frame[] {
  const frames: Frame[] = [];
  for (let at = 0; at < payload.length;) {
    if (payload.length - at < HEADER_BYTES) throw new FramingError("batch ends inside a frame header");
    const length = payload.readUInt32BE(at);
    if (length < HEADER_BYTES - 4 || at + 4 + length > payload.length)
      throw new FramingError(`batched frame of ${length} bytes does not fit its batch`);
    const raw = payload.subarray(at + 4, at + 4 + length);
    const type = raw.readUInt8(0);
    if (type === FRAME.batch) throw new FramingError("batch inside a batch");
    frames.push({ type, id: raw.readUInt32BE(1), payload: raw.subarray(5), raw });
    at += 4 + length;
  }
  return frames;
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
