import type { RedisConnection } from "./connection.js";
import { mapRedisError, storeClosed, type RedisWhere } from "./errors.js";

/** One subscription: called on each message of its channel, and once if the connection breaks. */
interface Subscriber {
  readonly onMessage: (message: string) => void;
  readonly onLost: (error: unknown) => void;
  /** Its `subscribe()` resolved: from then on a broken connection is reported to it by `onLost`. */
  live: boolean;
}

/** A channel the connection is subscribed to, with the subscriptions that want it. */
interface Channel {
  readonly subscribers: Set<Subscriber>;
  /** The SUBSCRIBE command; once confirmed, every later PUBLISH on the channel is delivered. */
  readonly subscribing: Promise<void>;
}

/** One subscriber connection and its channels; `over` once it broke or was closed. */
interface Session {
  readonly conn: RedisConnection;
  readonly channels: Map<string, Channel>;
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
    let c = s.channels.get(channel);
    if (!c) {
      c = { subscribers: new Set(), subscribing: s.conn.subscribe(channel) };
      s.channels.set(channel, c);
    }
    const subscriber: Subscriber = { onMessage, onLost, live: false };
    c.subscribers.add(subscriber);
    try {
      await c.subscribing;
      if (s.over) throw s.lost ?? storeClosed(this.where);
    } catch (error) {
      c.subscribers.delete(subscriber);
      // A SUBSCRIBE that fails or times out means the connection is no good for anyone.
      this.fail(s, error);
      throw error;
    }
    subscriber.live = true;
    return () => this.unsubscribe(s, channel, subscriber);
  }

  /** Closes the connection without telling the subscriptions (the store is closing). Idempotent. */
  close(): void {
    this.closed = true;
    if (this.current) this.retire(this.current);
  }

  private open(): Session {
    const s: Session = { conn: this.openConnection(), channels: new Map(), over: false, lost: null };
    s.conn.receive(
      (channel, message) => {
        const c = s.over ? undefined : s.channels.get(channel);
        if (!c) return;
        for (const subscriber of [...c.subscribers]) subscriber.onMessage(message);
      },
      (error) => this.fail(s, error),
    );
    return s;
  }

  private async unsubscribe(s: Session, channel: string, subscriber: Subscriber): Promise<void> {
    const c = s.channels.get(channel);
    if (!c?.subscribers.delete(subscriber) || c.subscribers.size > 0) return;
    s.channels.delete(channel);
    if (s.over) return;
    if (s.channels.size === 0) {
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
    for (const c of s.channels.values()) {
      for (const subscriber of c.subscribers) if (subscriber.live) subscriber.onLost(lost);
    }
  }
}
