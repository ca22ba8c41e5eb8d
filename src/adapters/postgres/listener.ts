import { performance } from "node:perf_hooks";
import type pg from "pg";
import { ChannelSubscriptions, type Subscription } from "../channel-subscriptions.js";
import { before, type PgDb } from "./db.js";
import { closedError, deadlineError, mapPgError } from "./errors.js";

/** One LISTEN connection and its channels; `over` once it broke or was closed. */
interface Session {
  readonly client: pg.Client;
  /** Its channels; a LISTEN, once it has answered, gets every later commit's NOTIFY. */
  readonly channels: ChannelSubscriptions;
  over: boolean;
  /** Why it broke, mapped; null while it works or when it was closed on purpose. */
  lost: Error | null;
  probe?: NodeJS.Timeout;
}

/**
 * The store's LISTEN connection, shared by all its watches: the shard map's and every lease
 * release watch. A node thus holds one such connection however many watches it has open, and a
 * contender that starts a release watch only sends a LISTEN on a connection its shard-map watch
 * already opened (one round trip, not a new session in the middle of a switchover).
 *
 * LISTEN belongs to one session, so the connection is dedicated (`PgDb.connectListener`); it is
 * opened by the first subscription and closed when the last one leaves. NOTIFY has no replay:
 * when the connection breaks, every subscription is told once (`onLost`) and is over; the next
 * `listen()` opens a new connection, and its caller re-reads. A blackholed connection raises no
 * error, so a `SELECT 1` every `probeMs` proves it alive.
 */
export class PgListener {
  /** The connection being opened or in use; null when there is none. */
  private session: Promise<Session> | null = null;
  /** The same connection once open, to tell whether a retired one is still the current one. */
  private current: Session | null = null;
  private closed = false;

  constructor(
    private readonly db: PgDb,
    private readonly probeMs: number,
  ) {}

  /**
   * Subscribes to NOTIFY on `channel` and resolves once LISTEN is active, so that a read made
   * after that misses no notification of a later commit. `onNotify` gets each payload; `onLost`
   * is called at most once, if the connection breaks after this resolved. Returns the function
   * that ends this subscription only.
   */
  async listen(channel: string, onNotify: (payload: string) => void, onLost: (error: unknown) => void): Promise<() => Promise<void>> {
    const s = await this.connect();
    const { subscription, started } = s.channels.add(channel, onNotify, onLost, () => s.client.query(`LISTEN "${channel}"`));
    try {
      await before(started, this.deadline(), () => deadlineError(this.db.target, "listen", this.db.operationTimeoutMs));
      if (s.over) throw s.lost ?? closedError(this.db.target, "listen");
    } catch (error) {
      s.channels.remove(channel, subscription);
      // A LISTEN that fails or stalls means the connection is no good for anyone.
      this.fail(s, error);
      throw mapPgError(error, this.db.target);
    }
    subscription.live = true;
    return () => this.unsubscribe(s, channel, subscription);
  }

  /** Ends the connection without telling the subscriptions (the store is closing). Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const s = await this.session?.catch(() => null);
    if (s) await this.end(s);
  }

  private deadline(): number {
    return performance.now() + this.db.operationTimeoutMs;
  }

  /** The live connection, opened first if there is none. */
  private async connect(): Promise<Session> {
    for (;;) {
      if (this.closed) throw closedError(this.db.target, "listen");
      const opening = (this.session ??= this.open());
      let s: Session;
      try {
        s = await opening;
      } catch (error) {
        if (this.session === opening) this.session = null;
        throw error;
      }
      // It may have broken, or lost its last subscriber, while this call waited for it.
      if (!s.over) return s;
    }
  }

  private async open(): Promise<Session> {
    const client = await this.db.connectListener();
    const s: Session = { client, channels: new ChannelSubscriptions(), over: false, lost: null };
    this.current = s;
    client.on("notification", (message) => {
      if (!s.over) s.channels.deliver(message.channel, message.payload ?? "");
    });
    client.on("error", (error) => this.fail(s, error));
    client.on("end", () => this.fail(s, new Error("Connection terminated unexpectedly")));
    let probing = false;
    s.probe = setInterval(() => {
      if (probing || s.over) return;
      probing = true;
      before(client.query("SELECT 1"), this.deadline(), () =>
        deadlineError(this.db.target, "listen probe", this.db.operationTimeoutMs),
      ).then(
        () => {
          probing = false;
        },
        (error: unknown) => this.fail(s, error),
      );
    }, this.probeMs);
    s.probe.unref();
    return s;
  }

  private async unsubscribe(s: Session, channel: string, subscription: Subscription): Promise<void> {
    if (!s.channels.remove(channel, subscription) || s.over) return;
    if (s.channels.empty) return this.end(s);
    // A later LISTEN of the same channel queues behind this UNLISTEN on the same connection.
    await before(s.client.query(`UNLISTEN "${channel}"`), this.deadline(), () =>
      deadlineError(this.db.target, "unlisten", this.db.operationTimeoutMs),
    ).catch((error: unknown) => this.fail(s, error));
  }

  /** Takes `s` out of service; the next `listen()` opens a new connection. */
  private retire(s: Session): boolean {
    if (s.over) return false;
    s.over = true;
    clearInterval(s.probe);
    if (this.current === s) {
      this.current = null;
      this.session = null;
    }
    return true;
  }

  private async end(s: Session): Promise<void> {
    if (this.retire(s)) await this.db.endClient(s.client);
  }

  /** The connection broke: each subscription whose `listen()` resolved hears it once. */
  private fail(s: Session, error: unknown): void {
    if (!this.retire(s)) return;
    void this.db.endClient(s.client);
    const lost = (s.lost = mapPgError(error, this.db.target));
    s.channels.lose(lost);
  }
}
