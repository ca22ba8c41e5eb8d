import type { AcquireResult, Lease, LeaseStore } from "../../core/ports/leases.js";
import type { Compare, Deadline, Kv } from "./client-types.js";
import type { EtcdClient } from "./client.js";
import type { EtcdKeys } from "./keys.js";

/** etcd grants no lease shorter than this (a requested 1 s is granted as 2 s). */
export const ETCD_MIN_TTL_S = 2;

/**
 * The etcd lease TTL for `ttlMs`: rounded UP to whole seconds, and at least etcd's minimum. Never
 * down: a store lease shorter than the holder believes would let it act after others may take over.
 */
export function ttlSeconds(ttlMs: number): number {
  return Math.max(ETCD_MIN_TTL_S, Math.ceil(ttlMs / 1000));
}

/**
 * Leases on etcd leases. The key `leases/<name>` holds the holder's id and is attached to an etcd
 * lease of `ttlSeconds(ttlMs)`; etcd deletes it when that lease expires, so the key exists exactly
 * while the lease is held and live by etcd's clock. No client time is ever written.
 *
 * Epochs are the key's `create_revision`. Why revisions rather than a per-name counter key: a new
 * tenure always creates the key anew (it was deleted by expiry or release), and etcd's revision is
 * one global counter that only grows, is persisted with the data and is never reset by compaction
 * or restart — so each tenure's epoch is greater than every earlier one of the name, with no second
 * key to keep consistent, and acquiring a free lease is one txn ("create_revision == 0" → put). The
 * price is that epochs are large and sparse (any write anywhere advances them), which the port
 * allows. Fences compare `create_revision == epoch` and `value == holder` in the same txn as the
 * guarded write.
 *
 * Expiry is etcd's: a lease expires by its leader's clock, but etcd deletes expired keys in a sweep
 * every 500 ms, so `current()` and the shard map's fence may see a lapsed key for up to ~0.5 s
 * (nobody else can acquire it meanwhile; `renew()` is exact: etcd refuses to refresh an expired lease).
 * After an etcd restart or leader change every lease gets its full TTL back.
 */
export class EtcdLeaseStore implements LeaseStore {
  /**
   * The etcd lease each tenure this handle took or renewed is attached to, by key: lets a renewal
   * send its keep-alive together with its fence check (one round trip, not two). Only a hint: a
   * wrong or missing entry costs the second round trip, never a wrong answer (see `extend`).
   */
  private readonly attached = new Map<string, { holder: string; epoch: number; lease: string }>();

  /**
   * An etcd lease granted ahead of need, for the next acquire of a free lease. A grant is a write
   * that etcd fsyncs (about a third of a takeover on this VM's disk: release, grant, put), so when
   * acquire() finds a lease held by another — a contender that will try again at the holder's
   * release, as in a switchover — the grant is done while it waits. The acquire that uses it first
   * refreshes it with a keep-alive sent after the acquire began (etcd does not persist keep-alives:
   * a round trip, no fsync): from then the etcd lease runs its whole TTL, so
   * the key's lease never ends before the caller believes it does (it counts from before its call).
   * A spare unused for its TTL has lapsed in etcd: it is granted again at the next wait, and not
   * kept alive by the acquire (a keep-alive answered with TTL 0, which a slow call can still see,
   * means the same: the acquire grants anew).
   * Taken by one acquire at a time, so no two keys ever share an etcd lease.
   */
  private spare: { ttlS: number; grantedAt: number; id: Promise<string | null> } | null = null;

  constructor(
    private readonly client: EtcdClient,
    private readonly keys: EtcdKeys,
  ) {}

  async acquire(name: string, holder: string, ttlMs: number): Promise<AcquireResult> {
    const d = this.client.deadline();
    const key = this.keys.lease(name);
    const ttlS = ttlSeconds(ttlMs);
    let lastEpoch = 0;
    // A read first, so that a contender polling a held lease costs a read, not a grant and a revoke.
    // Loops only when the key changed between our read and our write (expiry, a racing acquire).
    for (let attempt = 0; attempt < 3; attempt++) {
      const kv = await this.client.get(key, d);
      if (kv) {
        lastEpoch = kv.createRevision;
        if (kv.value !== holder) {
          this.prepareSpare(ttlS);
          return this.heldByOther(kv, d);
        }
        if (await this.extend(key, holder, kv.createRevision, ttlS, d)) {
          return { acquired: true, lease: { name, holder, epoch: kv.createRevision } };
        }
        continue;
      }
      const lease = (await this.takeSpare(ttlS, d)) ?? (await this.client.grant(ttlS, d)).id;
      const r = await this.client
        .txn([{ key, target: "create", equals: 0 }], [{ put: { key, value: holder, lease } }], [{ range: key }], d)
        .catch((error: unknown) => {
          this.revokeQuietly(lease); // the put may or may not have happened; a revoke undoes it either way
          throw error;
        });
      if (r.succeeded) {
        this.attached.set(key, { holder, epoch: r.revision, lease });
        return { acquired: true, lease: { name, holder, epoch: r.revision } };
      }
      this.putBackSpare(ttlS, Promise.resolve(lease)); // unattached: ours to use next time
      const current = r.results[0]?.[0];
      if (current && current.value !== holder) return this.heldByOther(current, d);
      if (current) lastEpoch = current.createRevision;
    }
    return { acquired: false, holder: null, epoch: lastEpoch, expiresInMs: 0 };
  }

  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    return this.extend(this.keys.lease(lease.name), lease.holder, lease.epoch, ttlSeconds(ttlMs), this.client.deadline());
  }

  async release(lease: Lease): Promise<void> {
    const d = this.client.deadline();
    const key = this.keys.lease(lease.name);
    const r = await this.client.txn(this.fence(key, lease.holder, lease.epoch), [{ range: key }, { delete: key }], [], d);
    const kv = r.results[0]?.[0];
    if (this.attached.get(key)?.holder === lease.holder) this.attached.delete(key);
    // The key is gone already; the revoke only frees etcd's lease early (it would expire anyway).
    if (r.succeeded && kv) this.revokeQuietly(kv.lease);
  }

  async current(name: string): Promise<Lease | null> {
    const kv = await this.client.get(this.keys.lease(name), this.client.deadline());
    return kv ? { name, holder: kv.value, epoch: kv.createRevision } : null;
  }

  /** A watch of the lease's key: a release or an expiry deletes it, which etcd pushes at once. */
  watchRelease(name: string, onChange: () => void, onLost: (error: unknown) => void): Promise<() => Promise<void>> {
    return this.client.watchKey(this.keys.lease(name), { events: onChange, lost: onLost }, this.client.deadline());
  }

  /** The compares that hold only while `holder`'s tenure `epoch` of the key is live. */
  private fence(key: string, holder: string, epoch: number): Compare[] {
    return [
      { key, target: "create", equals: epoch },
      { key, target: "value", equals: holder },
    ];
  }

  /**
   * Extends the tenure: checks in a txn that the key still holds holder + epoch (reading its etcd
   * lease in the same txn), then keeps that etcd lease alive once. A keep-alive that etcd answers
   * with TTL 0 means the lease expired or was revoked (its keys are then gone): false. If the
   * granted TTL differs from the one now asked for, the key moves to a fresh etcd lease of that TTL
   * in a txn guarded by the same fence, because an etcd lease's TTL cannot change.
   */
  private async extend(key: string, holder: string, epoch: number, ttlS: number, d: Deadline): Promise<boolean> {
    // The keep-alive of the etcd lease this tenure was last seen on goes out with the check. Safe
    // whatever the check finds: a keep-alive only extends that etcd lease, and the answer counts
    // only if the check shows the key still on it, held by this holder at this epoch.
    const hint = this.attached.get(key);
    const early = hint?.holder === holder && hint.epoch === epoch ? hint.lease : null;
    const [check, earlyGranted] = await Promise.all([
      this.client.txn(this.fence(key, holder, epoch), [{ range: key }], [], d),
      early === null ? null : this.client.keepAliveOnce(early, d),
    ]);
    const kv = check.results[0]?.[0];
    if (!check.succeeded || !kv) {
      this.attached.delete(key);
      return false;
    }
    this.attached.set(key, { holder, epoch, lease: kv.lease });
    const granted = early === kv.lease && earlyGranted !== null ? earlyGranted : await this.client.keepAliveOnce(kv.lease, d);
    if (granted <= 0) return false;
    if (granted === ttlS) return true;
    const fresh = await this.client.grant(ttlS, d);
    if (fresh.ttlS === granted) {
      this.revokeQuietly(fresh.id); // etcd's minimum is above what was asked: the lease already has it
      return true;
    }
    const moved = await this.client
      .txn(
        [...this.fence(key, holder, epoch), { key, target: "lease", equals: kv.lease }],
        [{ put: { key, value: holder, lease: fresh.id } }],
        [],
        d,
      )
      .catch((error: unknown) => {
        this.revokeQuietly(fresh.id);
        throw error;
      });
    this.revokeQuietly(moved.succeeded ? kv.lease : fresh.id);
    if (moved.succeeded) this.attached.set(key, { holder, epoch, lease: fresh.id });
    return moved.succeeded;
  }

  /** `acquired: false` with the live holder and how long its lease has left by etcd's clock. */
  private async heldByOther(kv: Kv, d: Deadline): Promise<AcquireResult> {
    const ttl = await this.client.timeToLive(kv.lease, d);
    // etcd reports the remaining TTL truncated to whole seconds: the lease lapses in under TTL + 1 s.
    const expiresInMs = ttl ? Math.min(ttl.grantedS, ttl.ttlS + 1) * 1000 : 0;
    return { acquired: false, holder: kv.value, epoch: kv.createRevision, expiresInMs };
  }

  /** Grants a spare of `ttlS` in the background, unless a live one is held already. */
  private prepareSpare(ttlS: number): void {
    if (this.spare?.ttlS === ttlS && !lapsed(this.spare)) return;
    this.dropSpare();
    const id = this.client.grant(ttlS, this.client.deadline()).then(
      (l) => (l.ttlS === ttlS ? l.id : (this.revokeQuietly(l.id), null)),
      () => null,
    );
    this.spare = { ttlS, grantedAt: performance.now(), id };
  }

  /**
   * Takes the spare of `ttlS` for this acquire and refreshes it: resolves to its id once etcd has
   * kept it alive for a whole `ttlS` from now, or to null (no spare, lapsed, or etcd unreachable).
   */
  private takeSpare(ttlS: number, d: Deadline): Promise<string | null> {
    const s = this.spare;
    if (s?.ttlS !== ttlS || lapsed(s)) return Promise.resolve(null);
    this.spare = null;
    return s.id.then(async (id) => (id !== null && (await this.client.keepAliveOnce(id, d)) === ttlS ? id : null)).catch(() => null);
  }

  /** Keeps a spare this acquire took but did not use, unless another took its place meanwhile. */
  private putBackSpare(ttlS: number, id: Promise<string | null>): void {
    if (this.spare === null) this.spare = { ttlS, grantedAt: performance.now(), id };
    else void id.then((lease) => lease !== null && this.revokeQuietly(lease));
  }

  private dropSpare(): void {
    const s = this.spare;
    this.spare = null;
    if (s && !lapsed(s)) void s.id.then((lease) => lease !== null && this.revokeQuietly(lease));
  }

  /** Revokes an etcd lease we no longer need, on its own budget, without waiting or failing. */
  private revokeQuietly(lease: string): void {
    if (lease === "0") return;
    this.client.revoke(lease, this.client.deadline()).catch(() => {}); // it expires by its TTL otherwise
  }
}

/** True once a spare's TTL has run out since its grant was sent: etcd has let it go (or soon will). */
function lapsed(spare: { readonly ttlS: number; readonly grantedAt: number }): boolean {
  return performance.now() - spare.grantedAt >= spare.ttlS * 1000;
}
