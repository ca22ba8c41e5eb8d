import { ConfigError } from "../../core/errors.js";

/**
 * The key layout of one cluster under its `keyPrefix` (default "mc/"):
 *
 *   <p>schema          "2" (the schema version)         no lease
 *   <p>leases/<name>   the holder's id                  on the holder's etcd lease (TTL = the lease's)
 *   <p>shards/<n>      {"owner":…,"epoch":…}            no lease; never deleted
 *   <p>nodes/<id>      the node's record (JSON)         on a per-beat etcd lease of NODE_RECORD_TTL_S
 *   <p>cluster         the cluster document (JSON)      no lease; its mod_revision is its version
 *   <p>pauses/<lease>  "" (names a pause's etcd lease)  on that lease: gone when the pause ends; a
 *                                                     reset that revokes the leases under the prefix ends it
 *   <p>history-seq     ""; its version is the last seq  no lease
 *   <p>history/<seq>   one event (JSON); seq 16 digits  no lease; deleted when it falls off the bound
 *
 * A lease key exists exactly while its etcd lease is live, so "the key exists with this value" is
 * "held, live, by this holder" by etcd's own clock, and txn compares on it are fences.
 */
export class EtcdKeys {
  constructor(readonly prefix: string) {}

  get schema(): string {
    return `${this.prefix}schema`;
  }

  lease(name: string): string {
    return `${this.prefix}leases/${name}`;
  }

  get shards(): string {
    return `${this.prefix}shards/`;
  }

  shard(shard: number): string {
    return `${this.shards}${shard}`;
  }

  /** The shard number of a key under `shards`, or null for a key this SDK did not write. */
  shardOf(key: string): number | null {
    const tail = key.slice(this.shards.length);
    return /^(0|[1-9][0-9]{0,8})$/.test(tail) ? Number(tail) : null;
  }

  get cluster(): string {
    return `${this.prefix}cluster`;
  }

  /** The marker key of a pause's etcd lease. */
  pause(lease: string): string {
    return `${this.prefix}pauses/${lease}`;
  }

  get historySeq(): string {
    return `${this.prefix}history-seq`;
  }

  get history(): string {
    return `${this.prefix}history/`;
  }

  /** The key of history event `seq`, zero-padded so that key order is sequence order. */
  historyEvent(seq: number): string {
    return `${this.history}${String(seq).padStart(16, "0")}`;
  }

  get nodes(): string {
    return `${this.prefix}nodes/`;
  }

  node(id: string): string {
    return `${this.nodes}${id}`;
  }
}

/** Checks a key prefix: non-empty, printable, and not so long that keys get unwieldy. */
export function checkKeyPrefix(prefix: string, key = "store.key_prefix"): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this rejects
  if (prefix.length === 0 || prefix.length > 200 || /[\u0000-\u001f\u007f]/.test(prefix)) {
    throw new ConfigError(key, `must be 1 to 200 printable characters, got ${JSON.stringify(prefix)}`);
  }
  return prefix;
}
