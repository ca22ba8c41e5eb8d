import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { FRAME } from "../../src/adapters/transport/frames.js";
import { deriveTransportKey } from "../../src/adapters/transport/index.js";
import { decodeForwardReply, encodeForwardRequest, PROTOCOL } from "../../src/adapters/transport/messages.js";
import { MAX_UNREAD_REPLY_BYTES, startServer } from "../../src/adapters/transport/server.js";
import type { ForwardResult, TransportServer } from "../../src/core/ports/transport.js";
import { silentLogger } from "../../src/core/silent-logger.js";
import { RawConnection } from "../support/raw-transport.js";

/**
 * Backpressure of the transport's listener: a peer holding the secret that sends requests and
 * never reads the replies makes the listener stop reading its requests once the replies it left
 * unread pass MAX_UNREAD_REPLY_BYTES, instead of buffering replies until the process dies. The
 * connection stays open; once the peer reads again, every request is answered, each once. The
 * bounds allow for the kernel's socket buffers, whose sizes vary between machines, and nothing
 * depends on how fast this machine is.
 */
const SECRET = "backpressure-test-secret-0123456789";
const CLUSTER = "backpressure";
const KEY = deriveTransportKey(SECRET, CLUSTER);
const KiB = 1024;
const MiB = 1024 * KiB;
/** The body of every reply. */
const REPLY_BYTES = 64 * KiB;
/** The body of every request: a few hundred fill the kernel's buffers towards the listener. */
const REQUEST_BYTES = 32 * KiB;
/**
 * Replies the kernel may hold on a loopback connection besides the listener's own bound: the
 * listener's send buffer and the peer's receive buffer (on Linux by default at most 4 and 32 MiB).
 */
const KERNEL_BYTES = 40 * MiB;
/** Requests the listener may handle before it stops reading a peer that reads nothing (in practice a fifth of this). */
const MAX_HANDLED = Math.ceil((MAX_UNREAD_REPLY_BYTES + KERNEL_BYTES) / REPLY_BYTES);
/** Requests queued in the peer's own process, unsent: the kernel's buffers towards the listener are full. */
const BACKED_UP_BYTES = 1 * MiB;
/** More written than this without backing up: the kernel's buffers (at most 36 MiB) cannot be what holds them. */
const MAX_WRITTEN = 5000;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Listener {
  readonly self: string;
  readonly server: TransportServer;
  /** Forward requests its handler has been called for. */
  readonly handled: () => number;
}

/**
 * A listener whose forward handler answers every request with REPLY_BYTES of body. It answers
 * without acknowledging: an acknowledgement resolves only once it is in the kernel's hands, so
 * behind unread replies an acknowledging handler waits in `started()` (bounded by MAX_IN_FLIGHT)
 * instead of answering. Replies that wait for nothing (every JSON kind's, refusals) are what
 * the bound is for.
 */
async function listener(): Promise<Listener> {
  const self = `core.${randomBytes(4).toString("hex")}`;
  const body = Buffer.alloc(REPLY_BYTES, 7);
  let handled = 0;
  const forward = async (): Promise<ForwardResult> => {
    handled++;
    return { outcome: "served", response: { status: 200, headers: {}, body } };
  };
  const server = await startServer(
    self,
    "127.0.0.1",
    0,
    { forward },
    { key: KEY, maxBodyBytes: 64 * KiB, protocol: PROTOCOL, logger: silentLogger },
  );
  cleanups.push(() => server.close());
  return { self, server, handled: () => handled };
}

const REQUEST = Buffer.concat(
  encodeForwardRequest({ shard: 0, epoch: 1, method: "POST", path: "/v1/x", headers: {}, body: Buffer.alloc(REQUEST_BYTES, 1) }),
);

/**
 * Opens an authenticated connection to `l` that reads nothing after the handshake, and writes
 * forward requests on it, one per turn of the event loop, until they back up in this process: the
 * listener has stopped reading them. Throws if the listener handles more than MAX_HANDLED first,
 * or closes the connection. Returns the connection and how many requests were written.
 */
async function stall(l: Listener): Promise<{ raw: RawConnection; written: number }> {
  const raw = await RawConnection.open(l.server.port);
  cleanups.push(async () => raw.close());
  expect(await raw.handshake(KEY, "web.1", l.self), "the handshake").toBe(true);
  raw.socket.pause();
  let written = 0;
  while (raw.socket.writableLength < BACKED_UP_BYTES) {
    if (l.handled() > MAX_HANDLED) {
      throw new Error(
        `the listener handled ${l.handled()} requests (${(l.handled() * REPLY_BYTES) / MiB} MiB of replies nobody read) ` +
          `and was still reading: it does not stop reading a peer that leaves its replies unread`,
      );
    }
    if (written >= MAX_WRITTEN) throw new Error(`${written} requests written and none backed up: the listener is still reading them`);
    if (raw.closed) throw new Error(`the listener closed the connection of a peer that only reads slowly (after ${written} requests)`);
    raw.request(++written, "forward", REQUEST);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { raw, written };
}

describe("transport listener backpressure", () => {
  it("stops reading a peer that leaves its replies unread, and answers every request once it reads again", async () => {
    const l = await listener();
    const { raw, written } = await stall(l);
    const handled = l.handled();
    expect(handled, `requests handled of ${written} written`).toBeLessThan(written);
    expect(handled).toBeLessThanOrEqual(MAX_HANDLED);

    // The peer goes on writing; none of it is read.
    for (let i = 0; i < 32; i++) {
      raw.request(written + i + 1, "forward", REQUEST);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const total = written + 32;
    expect(l.handled(), "requests handled while the peer wrote 32 more and read nothing").toBe(handled);
    expect(raw.closed, "the connection of a slow reader").toBe(false);

    // The peer reads again: every request is answered, each once, none refused.
    raw.socket.resume();
    const ids: number[] = [];
    const wrong: string[] = [];
    const collect = (): boolean => {
      for (const f of raw.sessionFrames()) {
        ids.push(f.id);
        const r = f.type === FRAME.reply ? decodeForwardReply(f.payload) : undefined;
        if (r?.outcome !== "served" || r.response.body.length !== REPLY_BYTES) wrong.push(`frame of type ${f.type} for request ${f.id}`);
      }
      return ids.length >= total || raw.closed;
    };
    await raw.until(collect, `the replies to all ${total} requests (${ids.length} so far)`, 30_000);
    expect(wrong, "frames other than a served reply of REPLY_BYTES").toEqual([]);
    expect(
      ids.sort((a, b) => a - b),
      "the ids of the replies",
    ).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(l.handled()).toBe(total);
    expect(raw.closed).toBe(false);
  });

  it("a connection paused for its unread replies still closes when the peer goes away", async () => {
    const tcpSockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;
    const l = await listener();
    const before = tcpSockets();
    const { raw } = await stall(l);
    raw.close();
    // The listener's side too: its pending write fails on the peer's reset.
    await vi.waitFor(() => expect(tcpSockets(), "TCP sockets open after the stalled peer went away").toBeLessThanOrEqual(before), {
      timeout: 5000,
      interval: 10,
    });
  });

  it("a connection paused for its unread replies still closes when the listener closes", async () => {
    const l = await listener();
    const { raw } = await stall(l);
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([
      l.server.close().then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 5000))),
    ]);
    clearTimeout(timer);
    expect(closed, "the listener's close() resolved (it waits for every connection to end)").toBe(true);
    await raw.until(() => raw.closed, "the peer seeing its connection closed", 5000);
  });
});
