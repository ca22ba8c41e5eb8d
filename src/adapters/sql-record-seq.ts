import type { NodeRecord } from "../core/ports/liveness.js";

/**
 * Where the SQL stores keep a liveness record's `seq` (src/core/ports/liveness.ts): under this
 * key of the stored meta JSON, not in a column of its own, so that ordering beats needed no
 * schema change (nodes of the previous version read the same tables during a rolling upgrade,
 * and ignore a meta key they do not know). `list()` takes it out again.
 */
export const SEQ_KEY = "_seq";

/** The meta JSON to store for `r`: its meta, with its `seq` when it has one. */
export function storedMeta(r: NodeRecord): string {
  return JSON.stringify(r.seq === undefined ? r.meta : { ...r.meta, [SEQ_KEY]: r.seq });
}

/** A stored meta object split back into what the node gave: its meta, and its beat's `seq` if it had one. */
export function givenMetaAndSeq(stored: Record<string, unknown>): { meta: Record<string, unknown>; seq?: number } {
  const { [SEQ_KEY]: seq, ...meta } = stored;
  return typeof seq === "number" ? { meta, seq } : { meta };
}
