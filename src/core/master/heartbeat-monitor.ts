import type { Clock } from "../ports/clock.js";
import type { NodeStatus } from "../ports/liveness.js";
import type { Logger } from "../ports/logger.js";
import type { HeartbeatReply, Transport } from "../ports/transport.js";
import type { Timing } from "../timing.js";

interface PeerState {
  address: string;
  /** When this master first learned of the coreapp: silence is counted from here until a first ack. */
  firstSeen: number;
  /** When the newest answered heartbeat was *sent* (see `probe`). */
  lastAck: number | null;
  lastReply: HeartbeatReply | null;
  /** The last non-retryable failure already logged at warn (logged again only when it changes). */
  lastRefusal?: string;
  /** The newest heartbeat's failure, cleared by an answer (for the reasons a standby is passed over). */
  lastFailure?: string;
}

/**
 * The heartbeat-based detector's evidence, kept by every master (primary or secondary): every
 * `heartbeat_interval` it heartbeats every registered coreapp and records, on this process's
 * monotonic clock, when the newest answered heartbeat to each was sent and what it said it was doing.
 */
export class HeartbeatMonitor {
  private readonly peers = new Map<string, PeerState>();
  private readonly stop = new AbortController();
  private running: Promise<void> | null = null;

  constructor(
    private readonly self: string,
    private readonly transport: Transport,
    private readonly clock: Clock,
    /** The node's live timing: `heartbeat_interval` and the answer timeout, read at each use. */
    private readonly timing: Pick<Timing, "heartbeatIntervalMs" | "heartbeatTimeoutMs">,
    private readonly log: Logger,
  ) {}

  /** Takes the coreapps from a fresh liveness list: new ones are added, vanished ones dropped. */
  updatePeers(nodes: readonly NodeStatus[]): void {
    const now = this.clock.now();
    const coreapps = nodes.filter((n) => n.role === "coreapp" && n.address !== "");
    const ids = new Set(coreapps.map((n) => n.id));
    for (const id of this.peers.keys()) if (!ids.has(id)) this.peers.delete(id);
    for (const n of coreapps) {
      const known = this.peers.get(n.id);
      if (known) known.address = n.address;
      else this.peers.set(n.id, { address: n.address, firstSeen: now, lastAck: null, lastReply: null });
    }
  }

  start(): void {
    this.running ??= this.loop();
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.running;
  }

  /** Milliseconds since `id` last answered this master (or since it was first seen); null if unknown. */
  silenceMs(id: string): number | null {
    const p = this.peers.get(id);
    if (!p) return null;
    return this.clock.now() - (p.lastAck ?? p.firstSeen);
  }

  /** The coreapp's last answer, if it ever answered. */
  lastReply(id: string): HeartbeatReply | null {
    return this.peers.get(id)?.lastReply ?? null;
  }

  /**
   * Why the newest heartbeat to `id` got no answer (a timeout, a refusal such as no protocol
   * version in common), or null after an answer. Read by the shard manager to explain itself.
   */
  lastFailure(id: string): string | null {
    return this.peers.get(id)?.lastFailure ?? null;
  }

  /** True when a heartbeat to `id` was refused for a reason retrying cannot fix (version, secret). */
  refused(id: string): boolean {
    const p = this.peers.get(id);
    return p?.lastRefusal !== undefined && p.lastFailure === p.lastRefusal;
  }

  /** True if `id` answered within `withinMs`. */
  answeredWithin(id: string, withinMs: number): boolean {
    const p = this.peers.get(id);
    return !!p && p.lastAck !== null && this.clock.now() - p.lastAck < withinMs;
  }

  /** This master's silence view of every coreapp, rounded, for publishing in its liveness record. */
  view(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const id of this.peers.keys()) out[id] = Math.round(this.silenceMs(id) ?? 0);
    return out;
  }

  /**
   * Heartbeats one coreapp now and records the answer; returns it, or null when there was none.
   * `mapChanged` asks it to read the shard map and retry its lease now (see HeartbeatMessage).
   */
  async probe(id: string, mapChanged = false): Promise<HeartbeatReply | null> {
    const p = this.peers.get(id);
    if (!p) return null;
    const sentAt = this.clock.now();
    try {
      const message = mapChanged ? { master: this.self, mapChanged } : { master: this.self };
      const reply = await this.transport.heartbeat({ id, address: p.address }, message, this.timing.heartbeatTimeoutMs);
      // An answer proves the coreapp alive at some instant after the heartbeat was sent, and no
      // later than that can be proven. Counting silence from the send, not from when this process
      // got round to the answer, keeps a loaded master's event-loop lag out of the detector: with
      // the handling time, detection came up to 400 ms past unhealthy_interval on a loaded host and
      // missed the failover bound. Up to unhealthy / heartbeat probes may be in flight: an older one's answer
      // arriving last neither moves the time back nor replaces the newer reply.
      if (p.lastAck === null || sentAt >= p.lastAck) {
        p.lastAck = sentAt;
        p.lastReply = reply;
        delete p.lastFailure;
      }
      return reply;
    } catch (error) {
      // A refusal that retrying cannot fix (no protocol version in common during an upgrade, a
      // wrong secret) is said once at warn; the usual silence of a dead node stays at debug.
      const permanent = (error as { retryable?: unknown }).retryable === false;
      if (p.lastAck === null || sentAt >= p.lastAck) p.lastFailure = String(error);
      if (permanent && p.lastRefusal !== String(error)) {
        p.lastRefusal = String(error);
        this.log.warn({ coreapp: id, err: String(error) }, "heartbeat refused; this coreapp cannot be promoted until it is fixed");
      } else this.log.debug({ coreapp: id, err: String(error) }, "heartbeat unanswered");
      return null;
    }
  }

  private async loop(): Promise<void> {
    while (!this.stop.signal.aborted) {
      const started = this.clock.now();
      // Fire all probes without waiting for slow ones: one dead coreapp must not delay the others.
      for (const id of this.peers.keys()) void this.probe(id);
      await this.clock.sleep(this.timing.heartbeatIntervalMs - (this.clock.now() - started), this.stop.signal);
    }
  }
}
