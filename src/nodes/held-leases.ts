import type { AcquireResult, Lease, LeaseStore } from "../core/ports/leases.js";
import type { NodeRole } from "../core/ports/liveness.js";
import type { Store } from "../core/ports/store.js";

/**
 * What one node process holds in the store, with the tokens that fence giving it back: its
 * liveness record (`node`, a process-unique id) and every lease it acquired and has not given up,
 * each with its holder and epoch. A node hands this to whoever watches its process (the supervisor
 * of `multiconnect start`, or a host's own process manager: docs/embedding.md), so that when the
 * process is known dead its leases can be released at once with `releaseExitedNode` — fenced:
 * a lease that has meanwhile passed to another holder or epoch is left alone.
 */
export interface NodeTokens {
  /** The node id, also the key of its liveness record. */
  readonly node: string;
  /** The node's name. */
  readonly name: string;
  /** The node's role. */
  readonly role: NodeRole;
  /** The leases it holds now (the master lease, a shard's ownership lease), with their epochs. */
  readonly leases: readonly Lease[];
}

/**
 * A node's view of the lease port that keeps the ledger of what it holds: a lease enters when
 * `acquire` grants it, and leaves when `release` gave it back or a renewal was refused (then it is
 * not ours any more). A tenure that ended at its local deadline stays listed: the store may still
 * count it as ours until its expiry, and releasing it later is fenced by its holder and epoch.
 * One entry per lease name: a newer grant of a name replaces the older (the store granted it, so
 * the older tenure is over). `changed` runs after every change, with the whole list.
 */
export class HeldLeases implements LeaseStore {
  private readonly held = new Map<string, Lease>();
  /** The store's release notification, when it has one: a contender's wake-up, nothing to record. */
  readonly watchRelease?: NonNullable<LeaseStore["watchRelease"]>;

  constructor(
    private readonly inner: LeaseStore,
    private readonly changed: (leases: readonly Lease[]) => void,
  ) {
    if (inner.watchRelease) this.watchRelease = inner.watchRelease.bind(inner);
  }

  /** The leases held now. */
  list(): Lease[] {
    return [...this.held.values()];
  }

  async acquire(name: string, holder: string, ttlMs: number): Promise<AcquireResult> {
    const r = await this.inner.acquire(name, holder, ttlMs);
    if (r.acquired) this.set(r.lease);
    return r;
  }

  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    const ok = await this.inner.renew(lease, ttlMs);
    if (!ok) this.forget(lease);
    return ok;
  }

  async release(lease: Lease): Promise<void> {
    await this.inner.release(lease);
    this.forget(lease);
  }

  current(name: string): Promise<Lease | null> {
    return this.inner.current(name);
  }

  private set(lease: Lease): void {
    const known = this.held.get(lease.name);
    if (known && known.holder === lease.holder && known.epoch === lease.epoch) return;
    this.held.set(lease.name, lease);
    this.changed(this.list());
  }

  private forget(lease: Lease): void {
    const known = this.held.get(lease.name);
    if (!known || known.holder !== lease.holder || known.epoch !== lease.epoch) return;
    this.held.delete(lease.name);
    this.changed(this.list());
  }
}

/** `store` with its lease port replaced by `leases`; every other member is the store's own. */
export function withLeases(store: Store, leases: LeaseStore): Store {
  return {
    backend: store.backend,
    capabilities: store.capabilities,
    leases,
    liveness: store.liveness,
    shardMap: store.shardMap,
    clusterDocument: store.clusterDocument,
    history: store.history,
    schemaVersion: store.schemaVersion,
    recordedSchemaVersion: () => store.recordedSchemaVersion(),
    purge: () => store.purge(),
    migrate: () => store.migrate(),
    close: () => store.close(),
  };
}
