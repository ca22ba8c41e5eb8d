import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import net from "node:net";

/**
 * How the proxy treats bytes now.
 * - pass: forward at once;
 * - blackhole: connections stay open, bytes stop both ways (they are held, as TCP retransmission
 *   would deliver them after the partition heals; new connections are accepted but not forwarded);
 * - delay: every chunk is forwarded `delayMs` later, in order; with `jitterMs`, each chunk's delay is
 *   drawn uniformly from `delayMs ± jitterMs` (never below 0), and a chunk never overtakes the one
 *   before it (TCP delivers in order: a late segment holds back those behind it).
 */
export type ProxyMode =
  | { readonly kind: "pass" }
  | { readonly kind: "blackhole" }
  | { readonly kind: "delay"; readonly delayMs: number; readonly jitterMs?: number };

/** The delay one chunk gets in `mode` (0 unless it is a delay mode). */
function delayOf(mode: ProxyMode): number {
  if (mode.kind !== "delay") return 0;
  const jitter = mode.jitterMs ?? 0;
  return Math.max(0, mode.delayMs + (jitter > 0 ? (Math.random() * 2 - 1) * jitter : 0));
}

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
    private readonly mode: () => ProxyMode,
    private readonly out: () => net.Socket | null,
  ) {}

  push(chunk: Buffer | null): void {
    const mode = this.mode();
    const now = performance.now();
    // Held items (blackhole) get released when the mode changes; `Infinity` keeps them queued.
    const at = mode.kind === "blackhole" ? Infinity : Math.max(now + delayOf(mode), this.last);
    if (at !== Infinity) this.last = at;
    this.queue.push({ at, chunk });
    this.pump();
  }

  /** Re-times held items after a mode change and releases what is due. */
  retime(): void {
    const now = performance.now();
    const mode = this.mode();
    if (mode.kind === "blackhole") return;
    for (let i = 0; i < this.queue.length; i++) {
      const item = this.queue[i]!;
      if (item.at === Infinity) {
        this.last = Math.max(now + delayOf(mode), this.last);
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
      this.timer = setTimeout(
        () => {
          this.timer = null;
          this.pump();
        },
        Math.max(1, Math.ceil(head.at - now)),
      );
    }
  }
}

interface Pair {
  readonly client: net.Socket;
  /** The dialer's local port (null if it reset before it was accepted), to find its socket in /proc. */
  readonly dialPort: number | null;
  /** This connection's own mode (set by source), or null to follow the proxy's mode. */
  mode: ProxyMode | null;
  upstream: net.Socket | null;
  readonly up: Lane;
  readonly down: Lane;
}

/** Hex `addr:port` of 127.0.0.1:`port` as /proc/net/tcp prints it (and as tcp6 prints a v4-mapped address). */
const procAddrs = (port: number) => {
  const p = port.toString(16).toUpperCase().padStart(4, "0");
  return [`0100007F:${p}`, `0000000000000000FFFF00000100007F:${p}`];
};

/**
 * The inode of the loopback socket bound to `localPort` and connected to `remotePort`: the dialer's
 * end of a connection this proxy accepted. Both ports are matched because Linux may give the same
 * ephemeral port to connections towards different destinations.
 */
function socketInode(localPort: number, remotePort: number): string | null {
  const local = procAddrs(localPort);
  const remote = procAddrs(remotePort);
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n")) {
      const f = line.trim().split(/\s+/);
      if (local.includes(f[1]!) && remote.includes(f[2]!)) return f[9] ?? null;
    }
  }
  return null;
}

/**
 * The inodes of every loopback socket connected to `remotePort` (this proxy's port), by the socket's
 * own port: one read of /proc/net/tcp* for all the connections a `set(mode, { from })` must tag.
 */
function dialerInodes(remotePort: number): Map<number, string> {
  const remote = procAddrs(remotePort);
  const byPort = new Map<number, string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n")) {
      const f = line.trim().split(/\s+/);
      if (!remote.includes(f[2]!) || f[9] === undefined) continue;
      const local = f[1]!;
      if (!local.startsWith("0100007F:") && !local.startsWith("0000000000000000FFFF00000100007F:")) continue;
      byPort.set(parseInt(local.slice(local.indexOf(":") + 1), 16), f[9]);
    }
  }
  return byPort;
}

/** The socket inodes `pid` holds open (empty if the process is gone). */
function socketsOf(pid: number): Set<string> {
  const inodes = new Set<string>();
  const dir = `/proc/${pid}/fd`;
  let fds: string[];
  try {
    fds = readdirSync(dir);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`${dir}/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed while listing
    }
  }
  return inodes;
}

/**
 * A TCP fault proxy on loopback: listens on its own port and relays each connection to `target`.
 * Placed on a link (a node's store connection, or in front of a coreapp's listener) it injects the
 * faults of a network: blackhole, delay, reset of every connection, refusal of new connections.
 * A mode can also be applied only to the connections dialled by given processes (`set(mode, { from })`),
 * which cuts one party off a shared listener: the proxy finds each connection's owner through /proc.
 * Counts what it injected so the harness can report it.
 */
export class FaultProxy {
  /** The mode of every connection that has no mode of its own (see `set`). */
  mode: ProxyMode = { kind: "pass" };
  /** Faults injected so far (mode changes away from pass, resets, refusals). */
  faults = 0;
  /** Connections accepted so far (each one a connection its client opened). */
  accepted = 0;
  private readonly pairs = new Set<Pair>();
  /** Modes by dialling process, for connections accepted later (connections already open are tagged by `set`). */
  private readonly bySource = new Map<number, ProxyMode>();
  private server: net.Server | null = null;
  private ownPort = 0;
  private listenHost = "127.0.0.1";

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

  /**
   * Binds `port` (0: any free port) on `host` (default 127.0.0.1; the multi-host bed binds a
   * namespace bridge address). `set(mode, { from })` finds diallers only on loopback.
   */
  async start(port = 0, host = this.listenHost): Promise<void> {
    this.listenHost = host;
    const server = net.createServer((c) => this.accept(c));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    this.ownPort = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /**
   * Switches mode; held bytes are released (in order) when the new mode lets them through.
   * Without `from`, for every connection (and per-process modes are forgotten). With `from`, only for
   * connections dialled by one of those pids — already open ones (a keep-alive pool) and later ones;
   * every other connection keeps its mode (one whose dialler was not found follows `mode`).
   */
  set(mode: ProxyMode, opts?: { readonly from: readonly number[] }): void {
    if (mode.kind !== "pass") this.faults++;
    if (!opts) {
      this.mode = mode;
      this.bySource.clear();
      for (const p of this.pairs) this.apply(p, null);
      return;
    }
    const owned = new Set(opts.from.flatMap((pid) => [...socketsOf(pid)]));
    for (const pid of opts.from) this.bySource.set(pid, mode);
    const inodes = dialerInodes(this.ownPort);
    for (const p of this.pairs) {
      const inode = p.dialPort === null ? undefined : inodes.get(p.dialPort);
      if (inode !== undefined && owned.has(inode)) this.apply(p, mode);
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
    // Not awaited: `server.close` calls back only once every accepted connection has ended, and
    // these are meant to go on. The listening socket itself is closed at once.
    this.server?.close();
    this.server = null;
  }

  /** Accepts again on the same port after `refuse()`. */
  async reopen(): Promise<void> {
    if (!this.server) await this.start(this.ownPort);
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    for (const p of [...this.pairs]) this.drop(p, false);
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The mode `pair`'s bytes follow. */
  private modeOf(pair: Pair): ProxyMode {
    return pair.mode ?? this.mode;
  }

  /** Gives `pair` its own mode (null: the proxy's), connecting and releasing what the new mode lets through. */
  private apply(pair: Pair, mode: ProxyMode | null): void {
    pair.mode = mode;
    if (this.modeOf(pair).kind !== "blackhole" && !pair.upstream) this.connectUpstream(pair);
    pair.up.retime();
    pair.down.retime();
  }

  /**
   * The mode a new connection gets from `bySource`, or null. Synchronous, before any of its bytes
   * can be forwarded: the dialler's socket is found by port in /proc/net/tcp*, then among the
   * sockets of the pids that have a mode of their own.
   */
  private sourceMode(inode: string | null): ProxyMode | null {
    if (inode === null) return null;
    for (const [pid, mode] of this.bySource) if (socketsOf(pid).has(inode)) return mode;
    return null;
  }

  private accept(client: net.Socket): void {
    // A connection its dialer already closed (a starved host accepts late) has no remote port left.
    if (client.remotePort === undefined) {
      client.destroy();
      return;
    }
    // A connection's dialer is looked up in /proc only while some process has a mode of its own:
    // reading /proc/net/tcp on every accept cost the harness milliseconds per connection on a busy
    // machine (thousands of sockets), and a starved harness slowed every link it proxies. Connections
    // already open when `set(mode, { from })` starts are found then, by their port (`dialPort`). Off
    // 127.0.0.1 (the multi-host bed) the dialer is not a local process, so there is nothing to look up.
    this.accepted++;
    const dialPort = client.remotePort;
    const inode = this.listenHost === "127.0.0.1" && this.bySource.size > 0 ? socketInode(dialPort, this.ownPort) : null;
    const pair: Pair = {
      client,
      dialPort,
      mode: this.sourceMode(inode),
      upstream: null,
      up: new Lane(
        () => this.modeOf(pair),
        () => pair.upstream,
      ),
      down: new Lane(
        () => this.modeOf(pair),
        () => pair.client,
      ),
    };
    this.pairs.add(pair);
    client.setNoDelay(true);
    client.on("data", (d: Buffer) => pair.up.push(d));
    client.on("end", () => pair.up.push(null));
    client.on("error", () => {});
    client.on("close", () => this.drop(pair, false));
    // A connection that arrives during a blackhole waits, like a SYN retransmitted until the route heals.
    if (this.modeOf(pair).kind !== "blackhole") this.connectUpstream(pair);
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
