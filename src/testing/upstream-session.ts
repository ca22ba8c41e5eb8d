import net from "node:net";

/** The upstream's answer to one message. */
export interface UpstreamReply {
  readonly ok: boolean;
  readonly error?: string;
}

/**
 * A connection to an exclusive upstream, as the example application holds one per shard it serves;
 * in a test, the client side of the upstream oracle (`Oracle`): open one in `onPromote` with
 * `UpstreamSession.open`, report each request with `action`, and `close` it in `onDemote`. Wire protocol: newline-delimited JSON; the client sends `{type:"open",shard,epoch,node,pid}` first
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

  /**
   * Connects to `address` and opens the session of `shard` at `epoch` for `node` (the node's
   * name). Throws when the upstream cannot be reached or refuses the session (a stale epoch in
   * the oracle's fencing mode): an `onPromote` that throws gives the shard back.
   */
  static async open(address: string, session: { shard: number; epoch: number; node: string }, timeoutMs = 2000): Promise<UpstreamSession> {
    const upstream = await UpstreamSession.connect(address, timeoutMs);
    const r = await upstream.send({ type: "open", ...session, pid: process.pid }, timeoutMs);
    if (!r.ok) {
      await upstream.close();
      throw new Error(`the upstream refused the session of shard ${session.shard} at epoch ${session.epoch}: ${r.error}`);
    }
    return upstream;
  }

  /** Reports one action (a handled request) of `shard` at `epoch`; the reply says whether it was accepted. */
  action(shard: number, epoch: number, timeoutMs = 2000): Promise<UpstreamReply> {
    return this.send({ type: "action", shard, epoch }, timeoutMs);
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
