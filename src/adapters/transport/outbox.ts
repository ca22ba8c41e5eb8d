/**
 * Coalesces a connection's outgoing frames into one socket write per batch. On loopback each write
 * is a system call and a wake-up of the peer process; under load many frames are ready in the same
 * turn of the event loop (the requests of every client socket read in one poll phase, the replies
 * of every request in one chunk), and one writev of all of them costs about as much as one frame.
 *
 * Frames are sealed (MAC'd) when the batch is written, not when queued, so the order of the MAC
 * sequence is the order on the wire whatever the scheduling; the small frames of a batch are sealed
 * together under one MAC (a `batch` frame, frames.ts), which under load is most of the saving. `urgent` frames (a forward's
 * acknowledgement, which the application's handler waits for) are flushed at the end of the
 * current microtask queue; the others at the end of the event loop's poll phase (setImmediate),
 * which batches across every socket read in that phase and adds no timer delay.
 */
import type { Socket } from "node:net";
import { encodeBatch } from "./frames.js";
import type { FrameMac } from "./handshake.js";

/**
 * The most bytes of frames sealed together as one batch (copied into it: below this a copy costs
 * less than the writev of many small buffers). Far below any receiver's frame limit (frames.ts).
 */
const BATCH_LIMIT = 64 * 1024;

/** One connection's queue of unsealed frames. */
export class Outbox {
  private frames: Buffer[] = [];
  private callbacks: ((error?: Error | null) => void)[] = [];
  private micro = false;
  private immediate = false;

  constructor(
    private readonly socket: Socket,
    private readonly mac: FrameMac,
  ) {}

  /**
   * Queues a frame built with `encodeFrame(..., MAC_BYTES)`. `onWritten` runs once the batch holding
   * it is handed to the kernel (or with the error when the socket failed).
   */
  push(frame: Buffer, urgent: boolean, onWritten?: (error?: Error | null) => void): void {
    this.frames.push(frame);
    if (onWritten) this.callbacks.push(onWritten);
    if (urgent && !this.micro) {
      this.micro = true;
      queueMicrotask(() => {
        this.micro = false;
        this.flush();
      });
    } else if (!urgent && !this.immediate) {
      this.immediate = true;
      setImmediate(() => {
        this.immediate = false;
        this.flush();
      });
    }
  }

  /** Writes everything queued now, in one write. */
  flush(): void {
    if (this.frames.length === 0) return;
    const frames = this.frames;
    const callbacks = this.callbacks;
    this.frames = [];
    this.callbacks = [];
    const sealed = this.seal(frames);
    const done =
      callbacks.length === 0
        ? undefined
        : (error?: Error | null) => {
            for (const cb of callbacks) cb(error);
          };
    if (this.socket.destroyed) {
      done?.(new Error("connection closed"));
      return;
    }
    if (sealed.length === 1) {
      this.socket.write(sealed[0]!, done);
      return;
    }
    // Large frames (bodies) go as they are: no copy; corked writes still leave as one writev.
    this.socket.cork();
    sealed.forEach((f, i) => this.socket.write(f, i === sealed.length - 1 ? done : undefined));
    this.socket.uncork();
  }

  /**
   * Seals `frames` in order: runs of small frames (up to {@link BATCH_LIMIT} together) as one batch
   * under one MAC, a frame alone or a large one under its own.
   */
  private seal(frames: readonly Buffer[]): Buffer[] {
    const out: Buffer[] = [];
    let run: Buffer[] = [];
    let runBytes = 0;
    const close = (): void => {
      if (run.length > 0) out.push(this.mac.seal(run.length === 1 ? run[0]! : encodeBatch(run)));
      run = [];
      runBytes = 0;
    };
    for (const f of frames) {
      if (runBytes + f.length > BATCH_LIMIT) close();
      if (f.length > BATCH_LIMIT) out.push(this.mac.seal(f));
      else {
        run.push(f);
        runBytes += f.length;
      }
    }
    close();
    return out;
  }
}
