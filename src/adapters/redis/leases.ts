import type { AcquireResult, Lease, LeaseStore } from "../../core/ports/leases.js";
import type { RedisConnection } from "./connection.js";
import { ACQUIRE, RELEASE, RENEW, type NamespaceKeys } from "./scripts.js";
import type { RedisSubscriber } from "./subscriber.js";

/**
 * Leases as Redis hashes `{prefix}lease:<name>` = { h: holder, e: epoch } whose expiry is set with
 * `PEXPIRE`, so Redis alone decides when a lease lapses (a key past its expiry is never returned,
 * also inside a script). Every read-check-write is one Lua script (see scripts.ts for the epoch
 * and quarantine design). A renewal compares holder AND epoch, so one that reaches the server late
 * (after its lease lapsed and was given to someone else) changes nothing.
 */
export class RedisLeaseStore implements LeaseStore {
  constructor(
    private readonly conn: RedisConnection,
    private readonly subscriber: RedisSubscriber,
    private readonly keys: NamespaceKeys,
    /** The shortest quarantine after data loss; each call uses max(this, its own ttlMs). */
    private readonly resetQuarantineMs: number,
  ) {}

  async acquire(name: string, holder: string, ttlMs: number): Promise<AcquireResult> {
    const ttl = wholeTtl(ttlMs);
    const reply = (await this.conn.eval(
      ACQUIRE,
      [this.keys.lease(name), this.keys.leaseEpoch(name), this.keys.incarnation],
      [holder, ttl, Math.max(ttl, this.resetQuarantineMs)],
    )) as [number, string, number?, string?];
    const [acquired, epoch, expiresInMs, current] = reply;
    if (acquired === 1) return { acquired: true, lease: { name, holder, epoch: parseEpoch(epoch) } };
    return {
      acquired: false,
      // null only during a quarantine after data loss: nobody provably holds it, nobody may take it.
      holder: current ?? null,
      epoch: parseEpoch(epoch),
      expiresInMs: Math.max(0, Number(expiresInMs ?? 0)),
    };
  }

  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    const ttl = wholeTtl(ttlMs);
    const reply = await this.conn.eval(RENEW, [this.keys.lease(lease.name)], [lease.holder, String(lease.epoch), ttl]);
    return reply === 1;
  }

  async release(lease: Lease): Promise<void> {
    await this.conn.eval(RELEASE, [this.keys.lease(lease.name)], [lease.holder, String(lease.epoch), this.keys.releaseChannel, lease.name]);
  }

  async current(name: string): Promise<Lease | null> {
    // One HMGET is atomic by itself, and an expired key reads as absent: no script needed.
    const [holder, epoch] = await this.conn.run((c) => c.hmget(this.keys.lease(name), "h", "e"));
    return holder != null && epoch != null ? { name, holder, epoch: parseEpoch(epoch) } : null;
  }

  /**
   * The release script PUBLISHes the lease's name on the namespace's release channel in the same
   * atomic step as the DEL, and only when it deleted the key: a stale holder or epoch publishes
   * nothing, and no subscriber hears of a release before it happened. Resolves once the server
   * confirmed SUBSCRIBE, so a read made after that misses no release.
   *
   * A lease that merely expires publishes nothing: Redis sends `expired` keyspace events only when
   * configured to, and only when it notices the key, which may be well after its TTL. A contender
   * polls beside this watch and never waits past the expiry it was told (`expiresInMs`), so an
   * expiry costs at most one poll.
   *
   * Every watch of the store shares its one subscriber connection (`RedisSubscriber`): a contender
   * that already watches the shard map starts this watch with one round trip.
   */
  watchRelease(name: string, onChange: () => void, onLost: (error: unknown) => void): Promise<() => Promise<void>> {
    return this.subscriber.subscribe(
      this.keys.releaseChannel,
      (released) => {
        if (released === name) onChange();
      },
      onLost,
    );
  }
}

/** An epoch as the scripts return it (a decimal string) as an exact JS number. */
export function parseEpoch(text: string | number | null | undefined): number {
  const epoch = Number(text ?? 0);
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new Error(`redis: malformed epoch ${JSON.stringify(text)}`);
  return epoch;
}

/** PEXPIRE takes whole milliseconds and deletes the key for 0 or less: round up, refuse nonsense. */
function wholeTtl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`redis: lease ttlMs must be positive, got ${ttlMs}`);
  return Math.ceil(ttlMs);
}
