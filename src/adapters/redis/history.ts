import { decodeHistoryEvent, encodeHistoryEvent, historyListLimit } from "../../core/control-records.js";
import type { HistoryAppendResult, HistoryEvent, HistoryEventInput, HistoryQuery, HistoryStore } from "../../core/ports/history.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { RedisConnection } from "./connection.js";
import { parseEpoch } from "./leases.js";
import { HISTORY_APPEND, type NamespaceKeys } from "./scripts.js";

/**
 * The history as one sorted set `{prefix}history`, scored by sequence number. An append is one Lua
 * script: the master-lease fence, a sequence number from an epoch-like counter (it only grows, also
 * after this Redis lost its data), the server's `TIME`, and the trim to the newest `limit` members.
 */
export class RedisHistory implements HistoryStore {
  constructor(
    private readonly conn: RedisConnection,
    private readonly keys: NamespaceKeys,
    private readonly limit: number,
  ) {}

  async append(event: HistoryEventInput, master: Lease): Promise<HistoryAppendResult> {
    const body = encodeHistoryEvent(event);
    const reply = (await this.conn.eval(
      HISTORY_APPEND,
      [this.keys.lease(MASTER_LEASE), this.keys.history, this.keys.historySeq],
      [master.holder, String(master.epoch), String(this.limit), event.shard === null ? "" : String(event.shard), body],
    )) as [string, string?];
    const [outcome, member] = reply;
    if (outcome === "fenced") return { ok: false, reason: "fenced" };
    if (outcome === "ok" && member) return { ok: true, event: parseMember(member) };
    throw new Error(`redis: unexpected reply from the history append script: ${JSON.stringify(reply)}`);
  }

  async list(query: HistoryQuery = {}): Promise<HistoryEvent[]> {
    const limit = historyListLimit(query, this.limit);
    const max = query.before === undefined ? "+inf" : `(${query.before}`;
    // The set holds at most `limit` members: a shard filter reads them all and filters here.
    const members = await this.conn.run((c) =>
      query.shard === undefined
        ? c.zrevrangebyscore(this.keys.history, max, "-inf", "LIMIT", 0, limit)
        : c.zrevrangebyscore(this.keys.history, max, "-inf"),
    );
    return members
      .map(parseMember)
      .filter((e) => query.shard === undefined || e.shard === query.shard)
      .slice(0, limit);
  }
}

/** "seq|atMs|shard|body" (the body is JSON and may hold "|": split at the first three only). */
function parseMember(member: string): HistoryEvent {
  const [seq, at, shard] = member.split("|", 3) as [string, string, string];
  const body = member.slice(seq.length + at.length + shard.length + 3);
  return decodeHistoryEvent(parseEpoch(seq), Number(at), shard === "" ? null : Number(shard), body);
}
