import { ChannelSubscriptions, type Subscription } from "../channel-subscriptions.js";
import type { RedisConnection } from "./connection.js";
import { mapRedisError, storeClosed, type RedisWhere } from "./errors.js";

/** One subscriber connection and its channels; `over` once it broke or was closed. */
interface Session {
  readonly conn: RedisConnection;
  /** Its channels; a SUBSCRIBE, once confirmed, gets every later PUBLISH on its channel. */
  readonly channels: ChannelSubscriptions;
  over: boolean;
  /** Why it broke; null while it works or when it was closed on purpose. */
  lost: Error | null;
}

/**
 * The store's pub/sub connection, shared by all its watches: the shard map's and every lease
 * release watch. A node thus holds one subscriber connection however many watches it has open,
 * and a contender that starts a release watch only sends a SUBSCRIBE on a connection its
 * shard-map watch already opened (one round trip, not a new connection in the middle of a
 * switchover).
 *
 * The connection is opened by the first subscription and closed when the last one leaves. It does
 * not reconnect by itself, because pub/sub has no replay: when it breaks, every subscription is
 * told once (`onLost`) and is over; the next `subscribe()` opens a new connection, and its caller
 * re-reads.
 */
export class RedisSubscriber {
  private current: Session | null = null;
  private closed = false;

  constructor(
    private readonly where: RedisWhere,
    /** Opens a new dedicated connection that does not reconnect. */
    private readonly openConnection: () => RedisConnection,
  ) {}

  /**
   * Subscribes to `channel` and resolves once the server confirmed SUBSCRIBE, so that a read
   * made after that misses no message published later. `onMessage` gets each message; `onLost`
   * is called at most once, if the connection breaks after this resolved. Returns the function
   * that ends this subscription only.
   */
  async subscribe(channel: string, onMessage: (message: string) => void, onLost: (error: unknown) => void): Promise<() => Promise<void>> {
    if (this.closed) throw storeClosed(this.where);
    const s = (this.current ??= this.open());
    const { subscription, started } = s.channels.add(channel, onMessage, onLost, () => s.conn.subscribe(channel));
    try {
      await started;
      if (s.over) throw s.lost ?? storeClosed(this.where);
    } catch (error) {
      s.channels.remove(channel, subscription);
      // A SUBSCRIBE that fails or times out means the connection is no good for anyone.
      this.fail(s, error);
      throw error;
    }
    subscription.live = true;
    return () => this.unsubscribe(s, channel, subscription);
  }

  /** Closes the connection without telling the subscriptions (the store is closing). Idempotent. */
  close(): void {
    this.closed = true;
    if (this.current) this.retire(this.current);
  }

  private open(): Session {
    const s: Session = { conn: this.openConnection(), channels: new ChannelSubscriptions(), over: false, lost: null };
    s.conn.receive(
      (channel, message) => {
        if (!s.over) s.channels.deliver(channel, message);
      },
      (error) => this.fail(s, error),
    );
    return s;
  }

  private async unsubscribe(s: Session, channel: string, subscription: Subscription): Promise<void> {
    if (!s.channels.remove(channel, subscription) || s.over) return;
    if (s.channels.empty) {
      this.retire(s);
      return;
    }
    // A later SUBSCRIBE of the same channel is sent after this UNSUBSCRIBE on the same connection.
    await s.conn.unsubscribe(channel).catch((error: unknown) => this.fail(s, error));
  }

  /** Takes `s` out of service and closes its connection; the next `subscribe()` opens a new one. */
  private retire(s: Session): void {
    if (s.over) return;
    s.over = true;
    s.conn.close();
    if (this.current === s) this.current = null;
  }

  /** The connection broke: each subscription whose `subscribe()` resolved hears it once. */
  private fail(s: Session, error: unknown): void {
    if (s.over) return;
    const lost = (s.lost = mapRedisError(error, this.where));
    this.retire(s);
    s.channels.lose(lost);
  }
}
