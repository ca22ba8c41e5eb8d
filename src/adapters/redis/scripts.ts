import { createHash } from "node:crypto";

/**
 * The Lua scripts of the Redis adapter, and the key layout they work on.
 *
 * Every read-check-write is one script, so Redis runs it atomically; the only time a script uses is
 * the server's `TIME`, read inside the script (never a client's clock). All keys of a namespace
 * share the hash tag `{prefix}`, so each script's keys sit in one slot of a Redis Cluster.
 *
 * EPOCHS (fencing tokens, S2). This Redis may lose everything (no RDB/AOF: a restart empties it),
 * so an epoch cannot simply be "the last one + 1". Each lease name and each shard has its own
 * epoch counter; a new epoch is
 *     counter written by this server process (same run_id): max(counter + 1 [, expected + 1])
 *     counter missing, or written by another run_id: max(server time in µs [, expected + 1])
 * and is stored back into the counter with the run_id. Within one server process epochs go up by
 * one, as on the SQL stores. After a restart — with data lost, or restored from a snapshot or a
 * replica that may be behind — the next epoch is the server's current time in µs, which exceeds
 * every earlier epoch of that counter: each was at most its counter's base time in µs plus the
 * number of epochs issued since, fewer than the µs elapsed.
 * Assumptions, stated plainly: (1) the Redis server's clock does not step back, across the loss,
 * by more than the time between the last epoch before the loss and the first one after it (a
 * restart takes long enough that this means "no large backward jump"); after a failover to a
 * replica, that replica's clock is the one that counts; (2) fewer than a million epochs a second
 * on average (each is an election or a shard assignment). Epochs are about 1.8e15 today, exact in
 * a JS number (< 2^53) until the year 2255. The port only asks for "greater than every earlier
 * epoch", not previous + 1.
 *
 * QUARANTINE (S1 after data loss). When the data vanish, so do the lease keys, while their last
 * holders may still act until their local deadline (last renewal sent + TTL − margin). An
 * "incarnation" marker `{prefix}incarnation` records the server's `run_id` and the instant `from`
 * that a quarantine counts from. Whenever `acquire()` of a name that is NOT currently held finds
 * the marker missing (data lost, flushed or evicted) or stamped with another `run_id` (the server
 * restarted from a snapshot, or a replica took over), it re-creates the marker with `from = now`
 * and, until `from + window`, refuses such acquires: `acquired: false, holder: null,
 * expiresInMs: what is left`. `window` = max(the call's ttlMs, the `resetQuarantineMs` option);
 * every holder of a cluster uses the same lease TTL, so one TTL after the loss was noticed
 * (which is after the loss) every earlier holder's deadline has passed. Renewals need no check:
 * a vanished lease key makes `renew()` return false.
 *
 * FIRST START vs LOSS. An empty namespace cannot tell "never used" from "wiped", and every node
 * runs `migrate()` at start, so `migrate()` decides with what the server knows about itself. It
 * creates a missing marker with `from` = the server's start (+1 s, as uptime is in whole
 * seconds): a loss by restart is covered (every lost lease was last renewed before the server
 * started), and on a server up for longer than a TTL a new namespace starts unquarantined. If the
 * server has run FLUSHALL/FLUSHDB or evicted a key since it started (INFO commandstats / stats),
 * `from` = now instead, as for a script. What remains unseen: keys deleted one by one, or those
 * statistics reset (CONFIG RESETSTAT) after a flush. Hence: `maxmemory-policy noeviction` (checked
 * by `migrate()` where CONFIG is allowed), and never delete a live namespace's keys.
 */

/** A Lua script with its SHA1, for EVALSHA with a fallback to EVAL. */
export interface LuaScript {
  readonly lua: string;
  readonly sha: string;
}

function script(body: string): LuaScript {
  const lua = HELPERS + body;
  return { lua, sha: createHash("sha1").update(lua).digest("hex") };
}

/**
 * The version `migrate()` stamps on the marker; bump it when the key layout changes.
 * Version 2 adds the control plane's keys (`cluster`, `history` and their counters); keys are
 * created on first write, so nothing is converted.
 */
export const SCHEMA_VERSION = 2;

/** The keys (and the pub/sub channel) of one namespace. */
export interface NamespaceKeys {
  lease(name: string): string;
  /** The epoch counter of lease `name`. */
  leaseEpoch(name: string): string;
  /** The epoch counter of shard `shard`. */
  shardEpoch(shard: number): string;
  /** The cluster document: a hash of `v` (version), `doc` (JSON) and `at` (written at, server µs). */
  readonly cluster: string;
  /** The cluster document's version counter (re-based like an epoch counter). */
  readonly clusterVersion: string;
  /** The history: a sorted set scored by sequence number, members "seq|atMs|shard|body". */
  readonly history: string;
  /** The history's sequence counter (re-based like an epoch counter). */
  readonly historySeq: string;
  readonly incarnation: string;
  readonly shards: string;
  readonly nodes: string;
  /** The pub/sub channel of shard-map changes (message: the shard). */
  readonly channel: string;
  /** The pub/sub channel of lease releases (message: the lease name). */
  readonly releaseChannel: string;
}

/** The key layout of namespace `prefix`; the hash tag keeps a namespace in one cluster slot. */
export function namespaceKeys(prefix: string): NamespaceKeys {
  const tag = `{${prefix}}`;
  return {
    lease: (name) => `${tag}lease:${name}`,
    leaseEpoch: (name) => `${tag}epoch:lease:${name}`,
    shardEpoch: (shard) => `${tag}epoch:shard:${shard}`,
    cluster: `${tag}cluster`,
    clusterVersion: `${tag}epoch:cluster`,
    history: `${tag}history`,
    historySeq: `${tag}epoch:history`,
    incarnation: `${tag}incarnation`,
    shards: `${tag}shards`,
    nodes: `${tag}nodes`,
    channel: `${tag}shard-map`,
    releaseChannel: `${tag}lease-released`,
  };
}

// Lua numbers are doubles: tostring() would print 1.7959e+15, so every number is formatted with
// %.0f, and epochs travel as strings (exact up to 2^53).
const HELPERS = String.raw`
local function fmt(n) return string.format('%.0f', n) end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function server_info()
  local info = redis.call('INFO', 'server')
  return string.match(info, 'run_id:(%x+)'), tonumber(string.match(info, 'uptime_in_seconds:(%d+)'))
end
local function maybe_wiped()
  local stats = redis.call('INFO', 'commandstats') .. redis.call('INFO', 'stats')
  return string.find(stats, 'cmdstat_flush') ~= nil or tonumber(string.match(stats, 'evicted_keys:(%d+)') or '0') > 0
end
local function next_epoch(counter, now, floor)
  local run = server_info()
  local c = redis.call('HMGET', counter, 'v', 'r')
  local last = tonumber(c[1])
  local e
  if last and c[2] == run then
    e = last + 1
  else
    -- Missing, or written by another server incarnation (a restart from a snapshot, a replica
    -- that took over): the value may be behind epochs already issued, so re-base on TIME.
    e = math.max(now, (last or 0) + 1)
  end
  e = math.max(e, floor + 1)
  redis.call('HSET', counter, 'v', fmt(e), 'r', run)
  return fmt(e)
end
local function quarantine_left_ms(marker, now, window_ms)
  local run = server_info()
  local m = redis.call('HMGET', marker, 'run', 'from')
  local from = tonumber(m[2])
  if m[1] ~= run or not from then
    from = now
    redis.call('HSET', marker, 'run', run, 'from', fmt(now))
  end
  return math.ceil((from - now) / 1000 + window_ms)
end
local function record_seq(stored)
  return cjson.decode(string.sub(stored, string.find(stored, '|', 1, true) + 1)).seq
end
`;

/**
 * KEYS: lease, epoch counter, marker. ARGV: holder, ttlMs, quarantine window ms.
 * Returns {1, epoch} when acquired, {0, epoch, expiresInMs, holder} when held by another,
 * {0, '0', quarantineLeftMs} during a quarantine.
 */
export const ACQUIRE = script(String.raw`
local cur = redis.call('HMGET', KEYS[1], 'h', 'e')
if cur[1] then
  if cur[1] == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, cur[2]}
  end
  return {0, cur[2], redis.call('PTTL', KEYS[1]), cur[1]}
end
local now = now_us()
local left = quarantine_left_ms(KEYS[3], now, tonumber(ARGV[3]))
if left > 0 then return {0, '0', left} end
local e = next_epoch(KEYS[2], now, 0)
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'e', e)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, e}
`);

/** KEYS: lease. ARGV: holder, epoch, ttlMs. Extends only the same holder at the same epoch; 1 or 0. */
export const RENEW = script(String.raw`
local cur = redis.call('HMGET', KEYS[1], 'h', 'e')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
`);

/**
 * KEYS: lease. ARGV: holder, epoch, release channel, lease name. Deletes only the same holder's
 * tenure (the counter keeps epochs), and only then publishes the name on the channel.
 */
export const RELEASE = script(String.raw`
local cur = redis.call('HMGET', KEYS[1], 'h', 'e')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return 0
`);

/**
 * KEYS: master lease, shards hash, epoch counter. ARGV: shard, expected epoch, has-owner ('1'/'0'),
 * owner, master holder, master epoch, channel. An entry is "epoch" (no owner) or "epoch|owner".
 * Returns {'fenced'}, {'conflict', entry or nil} or {'ok', entry}; publishes the shard on success.
 */
export const ASSIGN = script(String.raw`
local m = redis.call('HMGET', KEYS[1], 'h', 'e')
if m[1] ~= ARGV[5] or m[2] ~= ARGV[6] then return {'fenced'} end
local v = redis.call('HGET', KEYS[2], ARGV[1])
local cur = v and string.match(v, '^(%d+)') or '0'
if cur ~= ARGV[2] then return {'conflict', v} end
local e = next_epoch(KEYS[3], now_us(), tonumber(ARGV[2]))
local entry = e
if ARGV[3] == '1' then entry = e .. '|' .. ARGV[4] end
redis.call('HSET', KEYS[2], ARGV[1], entry)
redis.call('PUBLISH', ARGV[7], ARGV[1])
return {'ok', entry}
`);

/**
 * KEYS: master lease, cluster hash, version counter. ARGV: master holder, master epoch, expected
 * version, document JSON. The version comes from the counter, re-based on TIME after a data loss
 * like an epoch, so it only grows. Returns {'fenced'}, {'conflict'} or {'ok', version}.
 */
export const CLUSTER_WRITE = script(String.raw`
local m = redis.call('HMGET', KEYS[1], 'h', 'e')
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return {'fenced'} end
local cur = redis.call('HGET', KEYS[2], 'v') or '0'
if cur ~= ARGV[3] then return {'conflict'} end
local now = now_us()
local v = next_epoch(KEYS[3], now, tonumber(ARGV[3]))
redis.call('HSET', KEYS[2], 'v', v, 'doc', ARGV[4], 'at', fmt(now))
return {'ok', v}
`);

/** KEYS: cluster hash. Returns {now µs, version, document JSON, written µs}, read at one instant. */
export const CLUSTER_READ = script(String.raw`
local c = redis.call('HMGET', KEYS[1], 'v', 'doc', 'at')
return {fmt(now_us()), c[1] or '0', c[2] or '', c[3] or '0'}
`);

/**
 * KEYS: master lease, history sorted set, sequence counter. ARGV: master holder, master epoch,
 * limit, shard ('' for none), body. Appends "seq|atMs|shard|body" and keeps the newest `limit`.
 * Returns {'fenced'} or {'ok', member}.
 */
export const HISTORY_APPEND = script(String.raw`
local m = redis.call('HMGET', KEYS[1], 'h', 'e')
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return {'fenced'} end
local now = now_us()
local seq = next_epoch(KEYS[3], now, 0)
local member = seq .. '|' .. fmt(math.floor(now / 1000)) .. '|' .. ARGV[4] .. '|' .. ARGV[5]
redis.call('ZADD', KEYS[2], seq, member)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[3]) + 1))
return {'ok', member}
`);

/**
 * KEYS: nodes hash. ARGV: id, record JSON, seq ("" for none). Stores "seen µs|json" stamped by the
 * server's clock, unless the record held has a seq (in its JSON) at least as high: then nothing.
 */
export const BEAT = script(String.raw`
if ARGV[3] ~= '' then
  local held = redis.call('HGET', KEYS[1], ARGV[1])
  if held then
    local seq = record_seq(held)
    if type(seq) == 'number' and seq >= tonumber(ARGV[3]) then return 0 end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], fmt(now_us()) .. '|' .. ARGV[2])
return 0
`);

/**
 * KEYS: master lease, nodes hash. ARGV: master holder, master epoch, id, seq ("" for any). Deletes
 * the node's field only while that master lease is live (an expired lease key is gone) and, given
 * a seq, only while the record holds that beat. Returns 'fenced', 'superseded' or 'removed'.
 */
export const REMOVE_FENCED = script(String.raw`
local m = redis.call('HMGET', KEYS[1], 'h', 'e')
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return 'fenced' end
if ARGV[4] ~= '' then
  local held = redis.call('HGET', KEYS[2], ARGV[3])
  if held and record_seq(held) ~= tonumber(ARGV[4]) then return 'superseded' end
end
redis.call('HDEL', KEYS[2], ARGV[3])
return 'removed'
`);

/** KEYS: nodes hash. Returns {now µs, HGETALL} read at one instant of the server's clock. */
export const LIST = script(String.raw`
return {fmt(now_us()), redis.call('HGETALL', KEYS[1])}
`);

/**
 * KEYS: marker. ARGV: schema version. Creates a missing marker with `from` = server start + 1 s,
 * or now after a flush or an eviction (see FIRST START above); a marker from another server run
 * starts a quarantine now. Returns 0, or — writing nothing — the recorded version when it is newer
 * than ARGV's (a newer SDK's namespace).
 */
export const MIGRATE = script(String.raw`
local run, up = server_info()
local now = now_us()
local m = redis.call('HMGET', KEYS[1], 'run', 'v')
if tonumber(m[2] or '0') > tonumber(ARGV[1]) then return tonumber(m[2]) end
if not m[1] then
  local from = math.min(now, now - (up - 1) * 1000000)
  if maybe_wiped() then from = now end
  redis.call('HSET', KEYS[1], 'run', run, 'from', fmt(from))
elseif m[1] ~= run then
  redis.call('HSET', KEYS[1], 'run', run, 'from', fmt(now))
end
if tonumber(m[2] or '0') < tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'v', ARGV[1]) end
return 0
`);
