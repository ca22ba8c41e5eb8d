/**
 * The shard of a key: `fnv1a32(utf8(key)) % shards`. FNV-1a is fixed here forever: every webapp,
 * in every version, must map a key to the same shard, or two primaries would serve one key.
 */
export function shardOf(key: string, shards: number): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(key, "utf8")) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shards;
}
