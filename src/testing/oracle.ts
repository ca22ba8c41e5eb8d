import net from "node:net";

/**
 * The upstream oracle: a fake "exclusive upstream" on loopback that the example coreapp application
 * connects to on promotion and closes on demotion (see src/example/oracle-client.ts for the wire
 * protocol: newline-delimited JSON, one reply line per request line). It timestamps every open,
 * close and action on this process's monotonic clock and reports what a real upstream would punish:
 * two sessions of one shard open at the same time (the "ban"), actions stamped with an epoch older
 * than one already seen, epochs that go backwards or are used for a second session, actions outside
 * a session.
 *
 * The kernel closes a killed process's sockets, so kill -9 ends a session; a SIGSTOPped process's
 * socket stays open, so a frozen primary's session lives on — exactly the hazard the watchdog exists for.
 */

/** strict: accept and record everything, as a real upstream would. fencing: refuse stale epochs. */
export type OracleMode = "strict" | "fencing";

/** One upstream session: from `open` until the client closed it (or the oracle did, in fencing mode). */
export interface OracleSession {
  readonly id: number;
  readonly shard: number;
  readonly epoch: number;
  readonly node: string;
  readonly pid: number;
  readonly openedAt: number;
  closedAt: number | null;
  /** Why it closed: "client" (demotion or process death), "superseded" (fencing mode). */
  closedBy: string | null;
  actions: number;
}

/** What went wrong, by kind; every field counts violations except the informative ones. */
export interface OracleReport {
  readonly sessions: number;
  /** Pairs of sessions of one shard that were open at the same time. */
  readonly overlaps: number;
  readonly overlapTotalMs: number;
  readonly overlapMaxMs: number;
  /** Actions (and opens) carrying an epoch lower than one already seen for their shard, accepted. */
  readonly staleAccepted: number;
  /** The same, refused (fencing mode only; informative). */
  readonly staleRejected: number;
  /**
   * Opens whose epoch is lower than an earlier open's, or equal to one (also the same node's: an
   * upstream that wants a strictly higher fencing token for each new session refuses it).
   */
  readonly epochRegressions: number;
  /** Actions on a connection with no open session, or for another shard/epoch than its session. */
  readonly outsideSession: number;
  readonly actions: number;
  /** Human-readable lines describing each violation, for logs. */
  readonly details: string[];
}

/** Milliseconds on CLOCK_MONOTONIC (the same clock the example app's event log uses). */
export const monoNow = (): number => Number(process.hrtime.bigint()) / 1e6;

/** The fake upstream. `start()` binds an ephemeral loopback port; `address` is `host:port`. */
export class Oracle {
  readonly sessions: OracleSession[] = [];
  private readonly maxEpoch = new Map<number, number>();
  private readonly epochOwner = new Map<string, string>();
  private readonly sockets = new Map<net.Socket, OracleSession | null>();
  private readonly details: string[] = [];
  private staleAccepted = 0;
  private staleRejected = 0;
  private regressions = 0;
  private outside = 0;
  private actions = 0;
  private server: net.Server | null = null;
  private port = 0;
  private host = "127.0.0.1";

  constructor(readonly mode: OracleMode = "strict") {}

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /**
   * Binds an ephemeral port on `host` (default loopback; the multi-host chaos bed binds the address
   * every host namespace reaches, since the upstream stands for an internet service).
   */
  async start(host = "127.0.0.1"): Promise<void> {
    this.host = host;
    const server = net.createServer((s) => this.accept(s));
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Closes every connection (recording the sessions as closed now) and the listener. */
  async close(): Promise<void> {
    for (const s of this.sockets.keys()) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** The open session of `shard` with the highest epoch: who the upstream thinks is connected. */
  current(shard: number): OracleSession | null {
    return this.sessions.filter((s) => s.shard === shard && s.closedAt === null).sort((a, b) => b.epoch - a.epoch)[0] ?? null;
  }

  /** Sessions opened after `t` (promotions the upstream saw). */
  openedAfter(t: number): OracleSession[] {
    return this.sessions.filter((s) => s.openedAt > t);
  }

  /** Computes the report; sessions still open count as open until `end` (default now). */
  report(end = monoNow()): OracleReport {
    let overlaps = 0;
    let total = 0;
    let max = 0;
    const details = [...this.details];
    for (let i = 0; i < this.sessions.length; i++) {
      for (let j = i + 1; j < this.sessions.length; j++) {
        const a = this.sessions[i]!;
        const b = this.sessions[j]!;
        if (a.shard !== b.shard) continue;
        const from = Math.max(a.openedAt, b.openedAt);
        const to = Math.min(a.closedAt ?? end, b.closedAt ?? end);
        if (to <= from) continue;
        overlaps++;
        total += to - from;
        max = Math.max(max, to - from);
        details.push(`overlap shard ${a.shard}: ${a.node}@${a.epoch} and ${b.node}@${b.epoch} both open for ${(to - from).toFixed(1)} ms`);
      }
    }
    return {
      sessions: this.sessions.length,
      overlaps,
      overlapTotalMs: total,
      overlapMaxMs: max,
      staleAccepted: this.staleAccepted,
      staleRejected: this.staleRejected,
      epochRegressions: this.regressions,
      outsideSession: this.outside,
      actions: this.actions,
      details,
    };
  }

  private accept(socket: net.Socket): void {
    this.sockets.set(socket, null);
    socket.setNoDelay(true);
    let buffered = "";
    socket.on("data", (chunk) => {
      buffered += chunk.toString("utf8");
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line) this.message(socket, line);
      }
    });
    // Either a clean FIN or a reset (kill -9) ends the session; take the first.
    const ended = () => this.end(socket, "client");
    socket.on("end", ended).on("close", ended).on("error", ended);
  }

  private message(socket: net.Socket, line: string): void {
    const t = monoNow();
    let m: { type?: string; shard?: number; epoch?: number; node?: string; pid?: number };
    try {
      m = JSON.parse(line) as typeof m;
    } catch {
      return this.reply(socket, { ok: false, error: "malformed" });
    }
    if (m.type === "open") return this.open(socket, t, m.shard ?? -1, m.epoch ?? -1, m.node ?? "?", m.pid ?? 0);
    if (m.type === "action") return this.action(socket, m.shard ?? -1, m.epoch ?? -1);
    this.reply(socket, { ok: false, error: "unknown message" });
  }

  private open(socket: net.Socket, t: number, shard: number, epoch: number, node: string, pid: number): void {
    const max = this.maxEpoch.get(shard) ?? 0;
    const owner = this.epochOwner.get(`${shard}:${epoch}`);
    if (epoch < max || owner !== undefined) {
      this.regressions++;
      this.details.push(
        `epoch regression shard ${shard}: ${node} opened epoch ${epoch} after epoch ${max}${owner ? ` (epoch ${epoch} was opened before by ${owner})` : ""}`,
      );
    }
    if (this.mode === "fencing" && epoch < max) {
      this.staleRejected++;
      this.reply(socket, { ok: false, error: `stale epoch ${epoch} < ${max}` });
      return;
    }
    const session: OracleSession = {
      id: this.sessions.length + 1,
      shard,
      epoch,
      node,
      pid,
      openedAt: t,
      closedAt: null,
      closedBy: null,
      actions: 0,
    };
    this.sessions.push(session);
    this.sockets.set(socket, session);
    this.maxEpoch.set(shard, Math.max(max, epoch));
    this.epochOwner.set(`${shard}:${epoch}`, node);
    if (this.mode === "fencing") {
      // An upstream that honours fencing tokens drops the older holder the moment a newer one arrives.
      for (const [s, other] of this.sockets) {
        if (other && other !== session && other.shard === shard && other.epoch < epoch && other.closedAt === null) {
          other.closedAt = t;
          other.closedBy = "superseded";
          s.destroy();
        }
      }
    }
    this.reply(socket, { ok: true });
  }

  private action(socket: net.Socket, shard: number, epoch: number): void {
    this.actions++;
    const session = this.sockets.get(socket) ?? null;
    const max = this.maxEpoch.get(shard) ?? 0;
    if (!session || session.closedAt !== null || session.shard !== shard || session.epoch !== epoch) {
      this.outside++;
      this.details.push(
        `action outside a session: shard ${shard} epoch ${epoch}${session ? ` on ${session.node}@${session.epoch}'s connection` : ""}`,
      );
    }
    if (epoch < max) {
      if (this.mode === "fencing") {
        this.staleRejected++;
        return this.reply(socket, { ok: false, error: `stale epoch ${epoch} < ${max}` });
      }
      this.staleAccepted++;
      this.details.push(`stale action shard ${shard}: epoch ${epoch} after epoch ${max} opened${session ? ` (from ${session.node})` : ""}`);
    }
    if (session) session.actions++;
    this.reply(socket, { ok: true });
  }

  private end(socket: net.Socket, by: string): void {
    const session = this.sockets.get(socket);
    this.sockets.delete(socket);
    if (session && session.closedAt === null) {
      session.closedAt = monoNow();
      session.closedBy = by;
    }
  }

  private reply(socket: net.Socket, value: unknown): void {
    if (!socket.destroyed) socket.write(`${JSON.stringify(value)}\n`);
  }
}
