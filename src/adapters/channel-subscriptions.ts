/** One subscription: called on each message of its channel, and once if the connection breaks. */
export interface Subscription {
  readonly onMessage: (message: string) => void;
  readonly onLost: (error: unknown) => void;
  /** Its subscribe call resolved: from then on a broken connection is reported to it by `onLost`. */
  live: boolean;
}

/**
 * The subscriptions one notification connection carries (PostgreSQL's LISTEN connection, Redis's
 * subscriber), by channel. A store's watches — the shard map's and every lease-release watch —
 * share one such connection, so a node holds one however many watches it has open. The adapter
 * owns the connection (opening it, sending LISTEN / SUBSCRIBE, noticing that it broke); this keeps
 * who wants which channel, hands each message to them, and tells each live one once of a loss.
 */
export class ChannelSubscriptions {
  private readonly channels = new Map<string, { readonly subscriptions: Set<Subscription>; readonly started: Promise<unknown> }>();

  /** True when no channel has a subscription left. */
  get empty(): boolean {
    return this.channels.size === 0;
  }

  /**
   * Adds a subscription to `channel`. `start` sends the LISTEN / SUBSCRIBE, and is called only for
   * a channel not yet subscribed; `started` resolves once it has answered (for a channel already
   * subscribed, once the first subscription's did).
   */
  add(
    channel: string,
    onMessage: (message: string) => void,
    onLost: (error: unknown) => void,
    start: () => Promise<unknown>,
  ): { subscription: Subscription; started: Promise<unknown> } {
    let c = this.channels.get(channel);
    if (!c) this.channels.set(channel, (c = { subscriptions: new Set(), started: start() }));
    const subscription: Subscription = { onMessage, onLost, live: false };
    c.subscriptions.add(subscription);
    return { subscription, started: c.started };
  }

  /** Removes a subscription. True when it was its channel's last: the adapter unsubscribes the channel. */
  remove(channel: string, subscription: Subscription): boolean {
    const c = this.channels.get(channel);
    if (!c?.subscriptions.delete(subscription) || c.subscriptions.size > 0) return false;
    this.channels.delete(channel);
    return true;
  }

  /** Hands `message` to every subscription of `channel`. */
  deliver(channel: string, message: string): void {
    for (const s of [...(this.channels.get(channel)?.subscriptions ?? [])]) s.onMessage(message);
  }

  /** The connection broke: each live subscription hears it, once (the caller retires the connection first). */
  lose(error: Error): void {
    for (const c of this.channels.values()) for (const s of c.subscriptions) if (s.live) s.onLost(error);
  }
}
