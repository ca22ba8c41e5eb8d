import type { ClusterDocumentStore, VersionedClusterDocument } from "./ports/cluster-document.js";
import type { Clock } from "./ports/clock.js";

/**
 * Following the cluster document, the one way every node learns of a change: poll `version()`
 * (one key read) every `pollMs`, and read the whole document only when the version moved. With
 * `pollMs` at most heartbeat_interval / 2, a change reaches every node well within one heartbeat
 * interval on every backend, push-capable or not.
 */
export interface ClusterDocumentFollowerOptions {
  readonly store: ClusterDocumentStore;
  /** The local monotonic clock: paces the polls and stamps each read. */
  readonly clock: Clock;
  /** Time between two `version()` polls. */
  readonly pollMs: number;
  /**
   * Called with the first read, then whenever the version differs from the last one delivered (a
   * lower one, or null, means the store lost the document: see the port's LOST DOCUMENT).
   * `readAtMs` is `clock.now()` just before the read: a pause read with `expiresInMs` ends, for this
   * node, at `readAtMs + expiresInMs` (never later than the store judges it over, as the store
   * measured the time left after `readAtMs`).
   */
  onChange(document: VersionedClusterDocument | null, readAtMs: number): void;
  /** A failed poll or read (`StoreUnavailableError`, `ClusterDocumentError`); the follower carries on. */
  onError?(error: unknown): void;
}

/** A running follower. */
export interface ClusterDocumentFollower {
  /** Stops polling. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts following. Resolves once the first read succeeded and was delivered, so a caller starts
 * from a known document; rejects with that read's error otherwise.
 */
export async function followClusterDocument(o: ClusterDocumentFollowerOptions): Promise<ClusterDocumentFollower> {
  const stop = new AbortController();
  let delivered = -1;
  const readAndDeliver = async () => {
    const readAtMs = o.clock.now();
    const doc = await o.store.read();
    const version = doc?.version ?? 0;
    if (version !== delivered) {
      delivered = version;
      o.onChange(doc, readAtMs);
    }
  };
  await readAndDeliver();
  const loop = (async () => {
    while (!stop.signal.aborted) {
      await o.clock.sleep(o.pollMs, stop.signal);
      if (stop.signal.aborted) return;
      try {
        if ((await o.store.version()) !== delivered) await readAndDeliver();
      } catch (error) {
        o.onError?.(error);
      }
    }
  })();
  return {
    async close() {
      stop.abort();
      await loop;
    },
  };
}
