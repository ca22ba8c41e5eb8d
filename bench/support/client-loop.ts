import { Pool } from "undici";
import { monoNow, sleep } from "./clock.js";

/** One request's outcome, stamped on CLOCK_MONOTONIC when it was sent and when its answer arrived. */
export interface Reply {
  readonly sent: number;
  readonly recv: number;
  readonly ok: boolean;
  /** HTTP status, or 0 when the request itself failed (reset, timeout). */
  readonly status: number;
  /** The coreapp that served it (`x-multiconnect-node`), and at which epoch. */
  readonly node?: string;
  readonly epoch?: number;
  readonly error?: string;
}

/** How hard a client loop sends. */
export interface ClientLoopOptions {
  /** Requests in flight at once, each on its own keep-alive connection. */
  readonly concurrency: number;
  /** Pause after each answer; 0 sends back to back. */
  readonly paceMs: number;
  /** The shard key header value (the same key always maps to the same shard). */
  readonly key?: string;
}

/**
 * A client that keeps sending through the webapp and records every answer, as an API client of the
 * cluster would. Requests are sequential per loop so a held request (the webapp retrying through a
 * failover) shows up as one long request, and the first answer after it is exact to the retry step.
 */
export class ClientLoop {
  private readonly pool: Pool;
  private running = false;
  private loops: Promise<void>[] = [];
  private buffer: Reply[] = [];
  private waiters: { pred: (r: Reply) => boolean; resolve: (r: Reply) => void }[] = [];

  constructor(
    port: number,
    private readonly o: ClientLoopOptions,
  ) {
    this.pool = new Pool(`http://127.0.0.1:${port}`, {
      connections: o.concurrency,
      pipelining: 1,
      headersTimeout: 20_000,
      bodyTimeout: 20_000,
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loops = Array.from({ length: this.o.concurrency }, () => this.loop());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  async close(): Promise<void> {
    await this.stop();
    await this.pool.close();
  }

  /** The answers recorded since the previous call. */
  drain(): Reply[] {
    const out = this.buffer;
    this.buffer = [];
    return out;
  }

  /** Resolves with the first answer from now on that satisfies `pred`, or null after `timeoutMs`. */
  waitFor(pred: (r: Reply) => boolean, timeoutMs: number): Promise<Reply | null> {
    return new Promise((resolve) => {
      const waiter = {
        pred,
        resolve: (r: Reply | null) => {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve(r);
        },
      };
      const timer = setTimeout(() => waiter.resolve(null), timeoutMs);
      this.waiters.push(waiter);
    });
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const r = await this.once();
      this.buffer.push(r);
      for (const w of [...this.waiters]) if (w.pred(r)) w.resolve(r);
      if (!r.ok && r.status === 0) await sleep(5); // a refused connection returns at once: do not spin
      if (this.o.paceMs > 0) await sleep(this.o.paceMs);
    }
  }

  private async once(): Promise<Reply> {
    const sent = monoNow();
    try {
      const res = await this.pool.request({
        path: "/v1/messages",
        method: "POST",
        headers: { "x-shard-key": this.o.key ?? "bench", "content-type": "text/plain" },
        body: "hello",
      });
      await res.body.text();
      const recv = monoNow();
      const node = res.headers["x-multiconnect-node"];
      const epoch = res.headers["x-multiconnect-epoch"];
      return {
        sent,
        recv,
        ok: res.statusCode >= 200 && res.statusCode < 300,
        status: res.statusCode,
        ...(typeof node === "string" ? { node } : {}),
        ...(typeof epoch === "string" ? { epoch: Number(epoch) } : {}),
      };
    } catch (error) {
      return { sent, recv: monoNow(), ok: false, status: 0, error: String((error as Error).message ?? error) };
    }
  }
}
