import net from "node:net";

/**
 * How the proxy treats bytes now.
 * - pass: forward at once;
 * - blackhole: connections stay open, bytes stop both ways (they are held, as TCP retransmission
 *   would deliver them after the partition heals; new connections are accepted but not forwarded);
 * - delay: every chunk is forwarded `delayMs` later, in order.
 */
export type ProxyMode = { readonly kind: "pass" } | { readonly kind: "blackhole" } | { readonly kind: "delay"; readonly delayMs: number };

interface Item {
  readonly at: number;
  /** Bytes, or null for "end of stream". */
  readonly chunk: Buffer | null;
}

/** One direction of one connection: an ordered queue released no earlier than each item's time. */
class Lane {
  private readonly queue: Item[] = [];
  private timer: NodeJS.Timeout | null = null;
  private last = 0;

  constructor(
    private readonly proxy: FaultProxy,
    private readonly out: () => net.Socket | null,
  ) {}

  push(chunk: Buffer | null): void {
    const mode = this.proxy.mode;
    const now = performance.now();
    // Held items (blackhole) get released when the mode changes; `Infinity` keeps them queued.
    const at = mode.kind === "blackhole" ? Infinity : Math.max(now + (mode.kind === "delay" ? mode.delayMs : 0), this.last);
    if (at !== Infinity) this.last = at;
    this.queue.push({ at, chunk });
    this.pump();
  }

  /** Re-times held items after a mode change and releases what is due. */
  retime(): void {
    const now = performance.now();
    const mode = this.proxy.mode;
    if (mode.kind === "blackhole") return;
    for (let i = 0; i < this.queue.length; i++) {
      const item = this.queue[i]!;
      if (item.at === Infinity) {
        this.last = Math.max(now + (mode.kind === "delay" ? mode.delayMs : 0), this.last);
        this.queue[i] = { at: this.last, chunk: item.chunk };
      }
    }
    this.pump();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
  }

  private pump(): void {
    if (this.timer) return;
    const out = this.out();
    if (!out) return; // the upstream connection is not made yet; `FaultProxy` pumps again on connect
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0]!.at <= now) {
      const { chunk } = this.queue.shift()!;
      if (out.destroyed) continue;
      if (chunk === null) out.end();
      else out.write(chunk);
    }
    const head = this.queue[0];
    if (head && head.at !== Infinity) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, Math.max(1, Math.ceil(head.at - now)));
    }
  }
}

interface Pair {
  readonly client: net.Socket;
  upstream: net.Socket | null;
  readonly up: Lane;
  readonly down: Lane;
}

/**
 * A TCP fault proxy on loopback: listens on its own port and relays each connection to `target`.
 * Placed on a link (a node's store connection, or in front of a coreapp's listener) it injects the
 * faults of a network: blackhole, delay, reset of every connection, refusal of new connections.
 * Counts what it injected so the harness can report it.
 */
export class FaultProxy {
  mode: ProxyMode = { kind: "pass" };
  /** Faults injected so far (mode changes away from pass, resets, refusals). */
  faults = 0;
  private readonly pairs = new Set<Pair>();
  private server: net.Server | null = null;
  private ownPort = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    /** A label for logs ("coreapp-1→store"). */
    readonly label = "",
  ) {}

  /** The port clients dial. */
  get port(): number {
    return this.ownPort;
  }

  /** Binds `port` (0: any free port) on 127.0.0.1. */
  async start(port = 0): Promise<void> {
    const server = net.createServer((c) => this.accept(c));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.ownPort = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Switches mode; held bytes are released (in order) when the new mode lets them through. */
  set(mode: ProxyMode): void {
    if (mode.kind !== "pass") this.faults++;
    const wasHole = this.mode.kind === "blackhole";
    this.mode = mode;
    for (const p of this.pairs) {
      if (wasHole && mode.kind !== "blackhole" && !p.upstream) this.connectUpstream(p);
      p.up.retime();
      p.down.retime();
    }
  }

  /** Resets (RST) every open connection, both sides. The mode is unchanged. */
  resetAll(): void {
    this.faults++;
    for (const p of [...this.pairs]) this.drop(p, true);
  }

  /** Stops accepting: new connections are refused by the kernel (ECONNREFUSED). Existing ones go on. */
  async refuse(): Promise<void> {
    this.faults++;
    await this.closeListener();
  }

  /** Accepts again on the same port after `refuse()`. */
  async reopen(): Promise<void> {
    if (!this.server) await this.start(this.ownPort);
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    for (const p of [...this.pairs]) this.drop(p, false);
    await this.closeListener();
  }

  private async closeListener(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    const pair: Pair = {
      client,
      upstream: null,
      up: new Lane(this, () => pair.upstream),
      down: new Lane(this, () => pair.client),
    };
    this.pairs.add(pair);
    client.setNoDelay(true);
    client.on("data", (d: Buffer) => pair.up.push(d));
    client.on("end", () => pair.up.push(null));
    client.on("error", () => {});
    client.on("close", () => this.drop(pair, false));
    // A connection that arrives during a blackhole waits, like a SYN retransmitted until the route heals.
    if (this.mode.kind !== "blackhole") this.connectUpstream(pair);
  }

  private connectUpstream(pair: Pair): void {
    const upstream = net.connect(this.targetPort, this.targetHost);
    pair.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on("connect", () => pair.up.retime());
    upstream.on("data", (d: Buffer) => pair.down.push(d));
    upstream.on("end", () => pair.down.push(null));
    upstream.on("error", () => {});
    upstream.on("close", () => this.drop(pair, false));
  }

  private drop(pair: Pair, reset: boolean): void {
    if (!this.pairs.delete(pair)) return;
    pair.up.stop();
    pair.down.stop();
    for (const s of [pair.client, pair.upstream]) {
      if (!s || s.destroyed) continue;
      if (reset) s.resetAndDestroy();
      else s.destroy();
    }
  }
}
