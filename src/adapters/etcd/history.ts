import { decodeHistoryEvent, encodeHistoryEvent, historyListLimit } from "../../core/control-records.js";
import type { HistoryAppendResult, HistoryEvent, HistoryEventInput, HistoryQuery, HistoryStore } from "../../core/ports/history.js";
import { StoreUnavailableError } from "../../core/errors.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { Kv } from "./client-types.js";
import type { EtcdClient } from "./client.js";
import type { EtcdKeys } from "./keys.js";

/** How many times an append races another append (two masters' overlap) before giving up as unavailable. */
const SEQ_RETRIES = 5;

interface StoredEvent {
  atMs: number;
  shard: number | null;
  body: string;
}

/**
 * The history: one key per event, `history/<seq>`, with `seq` = the version of the `history-seq`
 * key after the append's put (it only grows: etcd keeps the key and its version across restarts).
 * An append is one txn that compares the master lease key (fence) and `history-seq`'s version, puts
 * both keys, and deletes the one event that falls off the bound — atomic, so the history never
 * holds more than `limit` events (lowering `limit` leaves the older keys until a reset).
 * `atMs` is the writer's wall clock: etcd has no clock a client can read (`writerWallClock`).
 */
export class EtcdHistory implements HistoryStore {
  constructor(
    private readonly client: EtcdClient,
    private readonly keys: EtcdKeys,
    private readonly limit: number,
  ) {}

  async append(event: HistoryEventInput, master: Lease): Promise<HistoryAppendResult> {
    const body = encodeHistoryEvent(event);
    const d = this.client.deadline();
    const masterKey = this.keys.lease(MASTER_LEASE);
    let last = (await this.client.get(this.keys.historySeq, d))?.version ?? 0;
    for (let attempt = 0; ; attempt++) {
      const seq = last + 1;
      const stored: StoredEvent = { atMs: Date.now(), shard: event.shard, body };
      const r = await this.client.txn(
        [
          { key: masterKey, target: "value", equals: master.holder },
          { key: masterKey, target: "create", equals: master.epoch },
          { key: this.keys.historySeq, target: "version", equals: last },
        ],
        [
          { put: { key: this.keys.historySeq, value: "" } },
          { put: { key: this.keys.historyEvent(seq), value: JSON.stringify(stored) } },
          ...(seq > this.limit ? [{ delete: this.keys.historyEvent(seq - this.limit) }] : []),
        ],
        [{ range: masterKey }, { range: this.keys.historySeq }],
        d,
      );
      if (r.succeeded) return { ok: true, event: decodeHistoryEvent(seq, stored.atMs, stored.shard, body) };
      const held = r.results[0]?.[0];
      if (!held || held.value !== master.holder || held.createRevision !== master.epoch) return { ok: false, reason: "fenced" };
      if (attempt >= SEQ_RETRIES) {
        throw new StoreUnavailableError(
          `${this.client.where}: history append lost ${SEQ_RETRIES + 1} races for a sequence number in a row`,
        );
      }
      last = r.results[1]?.[0]?.version ?? 0;
    }
  }

  async list(query: HistoryQuery = {}): Promise<HistoryEvent[]> {
    const limit = historyListLimit(query, this.limit);
    // At most `limit` keys exist: read them all, newest first.
    const kvs = await this.client.range(this.keys.history, true, this.client.deadline());
    const events: HistoryEvent[] = [];
    for (const kv of kvs.reverse()) {
      const e = toEvent(kv, this.keys.history.length);
      if (!e || (query.shard !== undefined && e.shard !== query.shard) || (query.before !== undefined && e.seq >= query.before)) continue;
      events.push(e);
      if (events.length === limit) break;
    }
    return events;
  }
}

function toEvent(kv: Kv, prefixLength: number): HistoryEvent | null {
  const seq = Number(kv.key.slice(prefixLength));
  try {
    const s = JSON.parse(kv.value) as StoredEvent;
    return Number.isSafeInteger(seq) ? decodeHistoryEvent(seq, s.atMs, s.shard, s.body) : null;
  } catch {
    return null; // not written by this SDK
  }
}
