import type { Clock } from "./ports/clock.js";
import type { ShardAssignment, ShardMapWatch } from "./ports/shard-map.js";

/**
 * The one implementation of `ShardMapStore.watch()` semantics that every adapter shares: on each
 * signal from the store's own mechanism (NOTIFY, pub/sub, etcd watch, a poll tick), and at least
 * every `resyncMs`, re-read the map and deliver the entries whose epoch grew, and a void entry
 * (`owner: null` at the last epoch delivered) for each shard the store no longer has at all. Adapters
 * only supply `read` and, if the store pushes, a way to be signalled; delivery order, de-duplication
 * and loss detection live here.
 */
export interface DiffingWatchOptions {
  /** Reads the whole map (`ShardMapStore.read`). */
  read(): Promise<ShardAssignment[]>;
  /**
   * Subscribes to the store's change signal; called again after a failure. Call `signal()` on every
   * change and `lost()` when the channel broke (the watcher resyncs and subscribes again).
   * Returns a function that unsubscribes. Absent for stores that only poll.
   */
  subscribe?(signal: () => void, lost: (error: unknown) => void): Promise<() => Promise<void>>;
  /** Re-read at least this often even without a signal. */
  resyncMs: number;
  /** Paces the resyncs and the retries. */
  clock: Clock;
  /** Receives what changed (see `ShardMapStore.watch`). */
  onChange(changed: ShardAssignment[]): void;
  /** A failed read or a broken channel; the watch retries. */
  onError?(error: unknown): void;
}

/** Starts a watch; resolves once the first read was delivered (rejects with that read's error). */
export async function startDiffingWatch(o: DiffingWatchOptions): Promise<ShardMapWatch> {
  const known = new Map<number, number>();
  /** Shards whose entry the store lost, already delivered as void. */
  const voided = new Set<number>();
  const stop = new AbortController();
  let wake = new AbortController();
  let pending = true;
  let channelBroken = false;
  let unsubscribe: (() => Promise<void>) | null = null;

  const signal = () => {
    pending = true;
    wake.abort();
  };
  const lost = (error: unknown) => {
    o.onError?.(error);
    channelBroken = true;
    signal();
  };

  const deliver = (entries: ShardAssignment[]) => {
    const changed = entries.filter((a) => (known.get(a.shard) ?? -1) < a.epoch);
    for (const a of changed) {
      known.set(a.shard, a.epoch);
      voided.delete(a.shard);
    }
    // A store that lost its data (Redis without persistence, a restore) no longer has entries it
    // had: the assignments in them are void. Say so, so that no reader keeps acting on a cached
    // one — a coreapp must serve only while the store's map names it at its epoch (S1).
    const present = new Set(entries.map((a) => a.shard));
    for (const [shard, epoch] of known) {
      if (present.has(shard) || voided.has(shard)) continue;
      voided.add(shard);
      changed.push({ shard, owner: null, epoch });
    }
    if (changed.length > 0) o.onChange(changed);
  };

  const subscribe = async () => {
    if (!o.subscribe) return;
    if (unsubscribe) await unsubscribe().catch(() => {});
    unsubscribe = null;
    unsubscribe = await o.subscribe(signal, lost);
    channelBroken = false;
  };

  // The first read must succeed before watch() resolves, so callers start from a known map.
  try {
    await subscribe();
    deliver(await o.read());
  } catch (error) {
    if (unsubscribe) await (unsubscribe as () => Promise<void>)().catch(() => {});
    throw error;
  }
  pending = false;

  const loop = async () => {
    let backoff = 50;
    while (!stop.signal.aborted) {
      if (!pending) {
        await o.clock.sleep(o.resyncMs, AbortSignal.any([stop.signal, wake.signal]));
        if (stop.signal.aborted) break;
      }
      wake = new AbortController();
      pending = false;
      try {
        if (channelBroken) await subscribe();
        deliver(await o.read());
        backoff = 50;
      } catch (error) {
        o.onError?.(error);
        pending = true;
        await o.clock.sleep(backoff, stop.signal);
        backoff = Math.min(backoff * 2, Math.max(1000, o.resyncMs));
      }
    }
  };
  const running = loop();

  return {
    async close() {
      if (stop.signal.aborted) return;
      stop.abort();
      await running;
      if (unsubscribe) await unsubscribe().catch(() => {});
    },
    lookNow: signal,
  };
}
