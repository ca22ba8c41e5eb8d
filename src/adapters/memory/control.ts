import {
  decodeClusterDocument,
  decodeHistoryEvent,
  encodeClusterDocument,
  encodeHistoryEvent,
  historyListLimit,
} from "../../core/control-records.js";
import type {
  ClusterDocumentInput,
  ClusterDocumentStore,
  ClusterDocumentWriteResult,
  VersionedClusterDocument,
} from "../../core/ports/cluster-document.js";
import type { HistoryAppendResult, HistoryEvent, HistoryEventInput, HistoryQuery, HistoryStore } from "../../core/ports/history.js";
import type { Lease } from "../../core/ports/leases.js";

/** What the memory adapter's control-plane stores need from `MemoryStorage`. */
export interface MemoryControlStorage {
  readonly clock: { now(): number };
  /** The document as stored (JSON) and its version; null when never written. */
  cluster: { version: number; json: string } | null;
  /** Every version the document had is below this one, also after `cluster` was dropped (a "data loss"). */
  clusterVersionFloor: number;
  readonly history: { seq: number; atMs: number; shard: number | null; body: string }[];
  historySeq: number;
  liveLease(name: string): Lease | null;
}

/** True while `master` is the live lease of its name: the memory store's fence. */
export const isHeld = (s: Pick<MemoryControlStorage, "liveLease">, master: Lease): boolean => {
  const live = s.liveLease(master.name);
  return live !== null && live.holder === master.holder && live.epoch === master.epoch;
};

/** The cluster document in memory; the storage's clock is the store's clock. */
export class MemoryClusterDocument implements ClusterDocumentStore {
  constructor(
    private readonly s: MemoryControlStorage,
    private readonly check: () => void,
  ) {}

  async read(): Promise<VersionedClusterDocument | null> {
    this.check();
    const c = this.s.cluster;
    return c && { version: c.version, document: decodeClusterDocument(c.json, c.version, this.s.clock.now()) };
  }

  async version(): Promise<number> {
    this.check();
    return this.s.cluster?.version ?? 0;
  }

  async write(expectedVersion: number, doc: ClusterDocumentInput, master: Lease): Promise<ClusterDocumentWriteResult> {
    const stored = encodeClusterDocument(doc, this.s.clock.now(), Date.now());
    this.check();
    if (!isHeld(this.s, master)) return { ok: false, reason: "fenced" };
    if ((this.s.cluster?.version ?? 0) !== expectedVersion) return { ok: false, reason: "conflict", current: await this.read() };
    const version = Math.max(expectedVersion, this.s.clusterVersionFloor) + 1;
    this.s.clusterVersionFloor = version;
    this.s.cluster = { version, json: JSON.stringify(stored) };
    return { ok: true, version };
  }
}

/** The history in memory, trimmed to the newest `limit` events on every append. */
export class MemoryHistory implements HistoryStore {
  constructor(
    private readonly s: MemoryControlStorage,
    private readonly check: () => void,
    private readonly limit: number,
  ) {}

  async append(event: HistoryEventInput, master: Lease): Promise<HistoryAppendResult> {
    const body = encodeHistoryEvent(event);
    this.check();
    if (!isHeld(this.s, master)) return { ok: false, reason: "fenced" };
    const row = { seq: ++this.s.historySeq, atMs: Date.now(), shard: event.shard, body };
    this.s.history.push(row);
    this.s.history.splice(0, Math.max(0, this.s.history.length - this.limit));
    return { ok: true, event: decodeHistoryEvent(row.seq, row.atMs, row.shard, row.body) };
  }

  async list(query: HistoryQuery = {}): Promise<HistoryEvent[]> {
    const limit = historyListLimit(query, this.limit);
    this.check();
    return this.s.history
      .filter((e) => (query.shard === undefined || e.shard === query.shard) && (query.before === undefined || e.seq < query.before))
      .slice(-limit)
      .reverse()
      .map((e) => decodeHistoryEvent(e.seq, e.atMs, e.shard, e.body));
  }
}
