/**
 * A hand-driven transport client for tests: opens a TCP connection, runs (or spoils) the handshake
 * with the building blocks of src/adapters/transport, and sends arbitrary frames, so tests can
 * play a forger, a replayer or a broken peer. It records every frame it receives (after the
 * handshake: opened, so a frame failing its MAC closes the connection) and whether it closed.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import { encodeBatch, encodeFrame, FRAME, FrameReader, MAC_BYTES, type Frame } from "../../src/adapters/transport/frames.js";
import { FrameMac, handshakeProof, NONCE_BYTES, sessionKeys } from "../../src/adapters/transport/handshake.js";
import { KIND_CODES, PROTOCOL, type MessageKind } from "../../src/adapters/transport/messages.js";

/** One raw connection. */
export class RawConnection {
  readonly frames: Frame[] = [];
  readonly written: Buffer[] = [];
  closed = false;
  private readonly reader = new FrameReader(64 * 1024 * 1024);
  private send: FrameMac | null = null;
  private recv: FrameMac | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (c: Buffer) => {
      try {
        for (const f of this.reader.push(c)) {
          // Once the session keys are known every frame is sealed: opened here, batches into their frames.
          const opened = this.recv === null ? [f] : this.recv.open(f);
          if (opened === null) throw new Error("a frame from the server failed its MAC");
          this.frames.push(...opened);
        }
      } catch {
        socket.destroy();
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => (this.closed = true));
  }

  /** Connects to `port` on 127.0.0.1. */
  static async open(port: number): Promise<RawConnection> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    return new RawConnection(socket);
  }

  /** Writes bytes as they are (recorded for replays). */
  write(bytes: Buffer): void {
    this.written.push(bytes);
    this.socket.write(bytes);
  }

  /** Waits until `predicate` holds (polling), or throws after `ms` with `what`. */
  async until(predicate: () => boolean, what: string, ms = 3000): Promise<void> {
    const deadline = performance.now() + ms;
    while (!predicate()) {
      if (performance.now() > deadline) throw new Error(`raw connection: ${what} did not happen within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /**
   * Runs the client side of the handshake as `from` to `to` with `key` and waits for "ready" (or
   * the connection closing, when the server refuses). Returns true when the session is open.
   * `proved`: the range the proof covers, when it is not the one sent (a hello altered on the way).
   */
  async handshake(key: Buffer, from: string, to: string, proto = PROTOCOL, proved = proto): Promise<boolean> {
    const nonceC = randomBytes(NONCE_BYTES);
    const hello = { proto: [proto.version, proto.min], from, to, nonce: nonceC.toString("base64url") };
    this.write(encodeFrame(FRAME.hello, 0, [Buffer.from(JSON.stringify(hello))]));
    await this.until(() => this.frames.length > 0 || this.closed, "challenge");
    const challenge = this.frames.shift();
    if (challenge === undefined || challenge.type !== FRAME.challenge) return false;
    const answer = JSON.parse(challenge.payload.toString()) as { nonce: string; proto: [number, number] };
    const nonceS = Buffer.from(answer.nonce, "base64url");
    const listener = { version: answer.proto[0], min: answer.proto[1] };
    const proof = handshakeProof(key, "client", from, to, nonceC, nonceS, { caller: proved, listener });
    this.write(encodeFrame(FRAME.auth, 0, [Buffer.from(JSON.stringify({ proof: proof.toString("base64url") }))]));
    const keys = sessionKeys(key, from, to, nonceC, nonceS);
    this.send = new FrameMac(keys.clientToServer);
    this.recv = new FrameMac(keys.serverToClient);
    await this.until(() => this.frames.length > 0 || this.closed, "ready");
    const ready = this.frames.shift();
    return ready !== undefined && ready.type === FRAME.ready;
  }

  /** A sealed request frame of `kind` with `body`, written and returned (for replays). */
  request(id: number, kind: MessageKind | number, body: Uint8Array): Buffer {
    const code = typeof kind === "number" ? kind : KIND_CODES[kind];
    const frame = this.send!.seal(encodeFrame(FRAME.request, id, [Buffer.of(code), body], MAC_BYTES));
    this.write(frame);
    return frame;
  }

  /**
   * Seals `frames` (each built with `encodeFrame(..., MAC_BYTES)`) as one batch, or `payload` as a
   * batch's raw contents when given, writes it and returns it (for replays).
   */
  batch(frames: readonly Buffer[], payload?: Buffer): Buffer {
    const frame =
      payload === undefined ? this.send!.seal(encodeBatch(frames)) : this.send!.seal(encodeFrame(FRAME.batch, 0, [payload], MAC_BYTES));
    this.write(frame);
    return frame;
  }

  /** Frames received after the handshake (their MACs checked in order, batches opened), taken away. */
  sessionFrames(): Frame[] {
    return this.frames.splice(0);
  }

  close(): void {
    this.socket.destroy();
  }
}
