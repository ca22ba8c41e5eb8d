import net from "node:net";

/** What came back on one raw connection. */
export interface RawExchange {
  /** Every byte the server sent, as latin1 text (one char per byte). */
  readonly text: string;
  /** The status of every response in `text`, in order (pipelined requests give several), the sentinel's left out. */
  readonly statuses: number[];
  /** Whether the sentinel request was answered (the server read everything before it in step). */
  readonly sentinel: boolean;
  /** How the connection ended: the server closed it, or our deadline ran out first (we closed it). */
  readonly ended: "closed" | "deadline";
  /** Milliseconds from connecting to the end. */
  readonly ms: number;
}

/** The response status lines in `text`. */
export function statusesOf(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
}

/**
 * The last request of an exchange: a reserved path answered 404 with its own path in the body,
 * and `connection: close`, so the server closes the connection once it answered everything before
 * it. (Half-closing our side instead would not do: Node's server takes a client's FIN as an abort
 * and drops the answers still pending.)
 */
export const SENTINEL = "GET /livez/fuzz-sentinel HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

/**
 * Sends `chunks` on a fresh TCP connection (`gapMs` apart: a trickle when set), then the
 * {@link SENTINEL} unless `keepOpen`, and collects the answers until the server closes the
 * connection or `deadlineMs` passes.
 */
export function exchange(
  port: number,
  chunks: readonly (Buffer | string)[],
  o: { gapMs?: number; deadlineMs?: number; keepOpen?: boolean; host?: string } = {},
): Promise<RawExchange> {
  const started = performance.now();
  const received: Buffer[] = [];
  return new Promise((resolve) => {
    const socket = net.connect(port, o.host ?? "127.0.0.1");
    let done = false;
    const finish = (ended: RawExchange["ended"]) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearTimeout(trickle);
      socket.destroy();
      const text = Buffer.concat(received).toString("latin1");
      const statuses = statusesOf(text);
      const last = text.lastIndexOf("HTTP/1.1 ");
      const sentinel = last >= 0 && text.slice(last).includes("/livez/fuzz-sentinel");
      if (sentinel) statuses.pop();
      resolve({ text, statuses, sentinel, ended, ms: performance.now() - started });
    };
    const deadline = setTimeout(() => finish("deadline"), o.deadlineMs ?? 10_000);
    let trickle: NodeJS.Timeout | undefined;
    socket.on("data", (d) => received.push(d));
    socket.on("error", () => finish("closed"));
    socket.on("close", () => finish("closed"));
    socket.on("connect", () => {
      let i = 0;
      const next = () => {
        if (done || socket.destroyed) return;
        if (i < chunks.length) {
          socket.write(chunks[i++]!);
          if (o.gapMs) trickle = setTimeout(next, o.gapMs);
          else next();
        } else if (!o.keepOpen) socket.write(SENTINEL);
      };
      next();
    });
  });
}

/** A request serialized as bytes: request line, headers (in order, repeats allowed) and body. */
export function rawRequest(method: string, target: string, headers: readonly [string, string][], body: Buffer | string = ""): Buffer {
  const head = `${method} ${target} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`;
  return Buffer.concat([Buffer.from(head, "latin1"), Buffer.isBuffer(body) ? body : Buffer.from(body)]);
}

/** A small seeded generator (mulberry32): the same seed gives the same run. */
export class Rng {
  private state: number;
  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** A whole number in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/**
 * Applies one to four random mutations to a request's bytes: a byte flipped, random bytes
 * inserted, a range deleted or duplicated, a line break, a lying or absurd Content-Length, a
 * Transfer-Encoding slipped in, truncation, trailing garbage, pipelined copies, a huge header.
 */
export function mutateRequest(b: Buffer, rng: Rng): Buffer {
  for (let n = 1 + rng.int(4); n > 0; n--) {
    const at = rng.int(b.length + 1);
    switch (rng.int(11)) {
      case 0: // flip a byte
        if (b.length > 0) (b = Buffer.from(b))[Math.min(at, b.length - 1)] = rng.int(256);
        break;
      case 1: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(16)), b.subarray(at)]);
        break;
      case 2: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.int(32))]);
        break;
      case 3: // duplicate a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + rng.int(64)), b.subarray(at)]);
        break;
      case 4: // a line break in the middle of something
        b = Buffer.concat([b.subarray(0, at), Buffer.from(rng.pick(["\r\n", "\n", "\r", "\r\n\r\n"])), b.subarray(at)]);
        break;
      case 5: // a lying or absurd Content-Length
        b = Buffer.from(
          b
            .toString("latin1")
            .replace(/content-length: \d+/i, `content-length: ${rng.pick(["0", "1", "99999999999", "-3", "1e3", String(rng.int(5000))])}`),
          "latin1",
        );
        break;
      case 6: // a Transfer-Encoding header slipped in
        b = Buffer.from(
          b.toString("latin1").replace("\r\n", `\r\ntransfer-encoding: ${rng.pick(["chunked", "identity", "gzip, chunked"])}\r\n`),
          "latin1",
        );
        break;
      case 7: // truncated
        b = b.subarray(0, at);
        break;
      case 8: // trailing garbage
        b = Buffer.concat([b, rng.bytes(1 + rng.int(64))]);
        break;
      case 9: // pipelined copies
        b = Buffer.concat(Array.from({ length: 2 + rng.int(4) }, () => b));
        break;
      default: // a huge header value
        b = Buffer.from(b.toString("latin1").replace("\r\n", `\r\nx-pad: ${"p".repeat(rng.pick([100, 10_000, 17_000]))}\r\n`), "latin1");
    }
  }
  return b;
}
