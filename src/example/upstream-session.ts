import net from "node:net";

/** The upstream's answer to one message. */
export interface UpstreamReply {
  readonly ok: boolean;
  readonly error?: string;
}

/**
 * A connection to an exclusive upstream, as the example application holds one per shard it serves.
 * Wire protocol: newline-delimited JSON; the client sends `{type:"open",shard,epoch,node,pid}` first
 * and then `{type:"action",shard,epoch}` per handled request; the upstream answers each line with
 * one `{ok, error?}` line, in order. Closing the socket ends the session. The chaos harness's oracle
 * (src/testing/oracle.ts) speaks the server side.
 */
export class UpstreamSession {
  private readonly waiting: ((r: UpstreamReply) => void)[] = [];
  private buffered = "";
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk) => {
      this.buffered += chunk.toString("utf8");
      for (let nl = this.buffered.indexOf("\n"); nl >= 0; nl = this.buffered.indexOf("\n")) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        this.waiting.shift()?.(parseReply(line));
      }
    });
    const gone = () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w({ ok: false, error: "upstream closed the connection" });
    };
    socket.on("close", gone).on("error", gone);
  }

  /** Connects to `address` (`host:port`) within `timeoutMs`. Throws when it cannot. */
  static connect(address: string, timeoutMs: number): Promise<UpstreamSession> {
    const i = address.lastIndexOf(":");
    const socket = net.connect(Number(address.slice(i + 1)), address.slice(0, i));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`upstream ${address}: connect timed out`));
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve(new UpstreamSession(socket));
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  /** True once the upstream or the network closed the connection. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Sends one message and waits for its answer at most `timeoutMs` (a timeout is a refusal). */
  send(message: Record<string, unknown>, timeoutMs = 2000): Promise<UpstreamReply> {
    if (this.closed) return Promise.resolve({ ok: false, error: "upstream closed the connection" });
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ ok: false, error: "upstream did not answer in time" }), timeoutMs);
      this.waiting.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Ends the session and waits (at most `timeoutMs`) until the socket is closed. */
  async close(timeoutMs = 1000): Promise<void> {
    if (this.closed) return;
    const done = new Promise<void>((resolve) => this.socket.once("close", () => resolve()));
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), timeoutMs);
    await done;
    clearTimeout(timer);
  }
}

function parseReply(line: string): UpstreamReply {
  try {
    const r = JSON.parse(line) as UpstreamReply;
    return { ok: r.ok === true, ...(r.error ? { error: String(r.error) } : {}) };
  } catch {
    return { ok: false, error: "malformed upstream reply" };
  }
}
