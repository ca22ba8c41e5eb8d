import { SystemClock } from "../../core/clock.js";
import { StoreUnavailableError } from "../../core/errors.js";
import type { Clock } from "../../core/ports/clock.js";
import type { AcquireResult, Lease, LeaseStore } from "../../core/ports/leases.js";
import { MASTER_LEASE } from "../../core/ports/leases.js";
import type { LivenessStore, NodeRecord, NodeStatus, RemovalOutcome } from "../../core/ports/liveness.js";
import type { AssignResult, ShardAssignment, ShardMapStore, ShardMapWatch } from "../../core/ports/shard-map.js";
import type { Store, StoreCapabilities } from "../../core/ports/store.js";
import { startDiffingWatch } from "../../core/shard-map-watch.js";
import { checkHistoryLimit } from "../../core/control-records.js";
import type { ClusterDocumentStore } from "../../core/ports/cluster-document.js";
import type { HistoryStore } from "../../core/ports/history.js";
import { isHeld, MemoryClusterDocument, MemoryHistory, type MemoryControlStorage } from "./control.js";

/**
 * The in-memory store: one `MemoryStorage` shared by any number of `MemoryStore` handles, as one
 * server is shared by many clients. For unit tests of the core only — it is not durable and lives
 * in one process. `storage.unavailable = true` makes every operation throw `StoreUnavailableError`,
 * as an unreachable server would.
 */
export class MemoryStorage implements MemoryControlStorage {
  unavailable = false;
  readonly leases = new Map<string, { holder: string | null; epoch: number; expiresAt: number }>();
  readonly shards = new Map<number, ShardAssignment>();
  readonly nodes = new Map<string, { record: Omit<NodeRecord, "seq">; seq: number | undefined; seenAt: number }>();
  readonly listeners = new Set<() => void>();
  cluster: { version: number; json: string } | null = null;
  clusterVersionFloor = 0;
  readonly history: { seq: number; atMs: number; shard: number | null; body: string }[] = [];
  historySeq = 0;

  /** `clock` is the store's clock: expiry and ages are judged by it alone. */
  constructor(readonly clock: Clock = new SystemClock()) {}

  check(): void {
    if (this.unavailable) throw new StoreUnavailableError("memory store: unavailable (simulated)");
  }

  liveLease(name: string): Lease | null {
    const l = this.leases.get(name);
    if (!l || l.holder === null || l.expiresAt <= this.clock.now()) return null;
    return { name, holder: l.holder, epoch: l.epoch };
  }
}

class MemoryLeaseStore implements LeaseStore {
  constructor(
    private readonly s: MemoryStorage,
    private readonly check: () => void,
  ) {}

  async acquire(name: string, holder: string, ttlMs: number): Promise<AcquireResult> {
    this.check();
    const now = this.s.clock.now();
    const row = this.s.leases.get(name);
    const live = this.s.liveLease(name);
    if (live && live.holder !== holder) {
      return { acquired: false, holder: live.holder, epoch: live.epoch, expiresInMs: (row?.expiresAt ?? now) - now };
    }
    const epoch = live ? live.epoch : (row?.epoch ?? 0) + 1;
    this.s.leases.set(name, { holder, epoch, expiresAt: now + ttlMs });
    return { acquired: true, lease: { name, holder, epoch } };
  }

  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    this.check();
    const live = this.s.liveLease(lease.name);
    if (!live || live.holder !== lease.holder || live.epoch !== lease.epoch) return false;
    this.s.leases.set(lease.name, { holder: lease.holder, epoch: lease.epoch, expiresAt: this.s.clock.now() + ttlMs });
    return true;
  }

  async release(lease: Lease): Promise<void> {
    this.check();
    const row = this.s.leases.get(lease.name);
    if (row && row.holder === lease.holder && row.epoch === lease.epoch) {
      this.s.leases.set(lease.name, { holder: null, epoch: row.epoch, expiresAt: 0 });
    }
  }

  async current(name: string): Promise<Lease | null> {
    this.check();
    return this.s.liveLease(name);
  }
}

class MemoryShardMap implements ShardMapStore {
  constructor(
    private readonly s: MemoryStorage,
    private readonly check: () => void,
  ) {}

  async read(): Promise<ShardAssignment[]> {
    this.check();
    return [...this.s.shards.values()].sort((a, b) => a.shard - b.shard);
  }

  async assign(shard: number, expectedEpoch: number, owner: string | null, master: Lease): Promise<AssignResult> {
    this.check();
    const live = this.s.liveLease(MASTER_LEASE);
    if (!live || live.holder !== master.holder || live.epoch !== master.epoch) return { ok: false, reason: "fenced" };
    const current = this.s.shards.get(shard) ?? { shard, owner: null, epoch: 0 };
    if (current.epoch !== expectedEpoch) return { ok: false, reason: "conflict", current };
    const assignment = { shard, owner, epoch: expectedEpoch + 1 };
    this.s.shards.set(shard, assignment);
    for (const l of this.s.listeners) l();
    return { ok: true, assignment };
  }

  watch(onChange: (changed: ShardAssignment[]) => void, onError?: (error: unknown) => void): Promise<ShardMapWatch> {
    return startDiffingWatch({
      read: () => this.read(),
      subscribe: async (signal) => {
        this.s.listeners.add(signal);
        return async () => {
          this.s.listeners.delete(signal);
        };
      },
      resyncMs: 1000,
      clock: this.s.clock,
      onChange,
      onError,
    });
  }
}

class MemoryLiveness implements LivenessStore {
  constructor(
    private readonly s: MemoryStorage,
    private readonly check: () => void,
  ) {}

  async beat(record: NodeRecord): Promise<void> {
    this.check();
    const { seq, ...fields } = record;
    const held = this.s.nodes.get(record.id);
    if (seq !== undefined && held?.seq !== undefined && held.seq >= seq) return;
    this.s.nodes.set(record.id, { record: structuredClone(fields), seq, seenAt: this.s.clock.now() });
  }

  async list(): Promise<NodeStatus[]> {
    this.check();
    const now = this.s.clock.now();
    return [...this.s.nodes.values()]
      .map(({ record, seq, seenAt }) => ({ ...record, ...(seq === undefined ? {} : { seq }), ageMs: now - seenAt }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  async remove(id: string): Promise<void> {
    this.check();
    this.s.nodes.delete(id);
  }

  async removeFenced(id: string, master: Lease, seq?: number): Promise<RemovalOutcome> {
    this.check();
    if (!isHeld(this.s, master)) return "fenced";
    const held = this.s.nodes.get(id);
    if (held && seq !== undefined && held.seq !== seq) return "superseded";
    this.s.nodes.delete(id);
    return "removed";
  }
}

/** A handle on shared `MemoryStorage`, with the same interface as every real backend. */
export class MemoryStore implements Store {
  readonly backend = "memory";
  readonly capabilities: StoreCapabilities = { writerWallClock: true };
  readonly leases: LeaseStore;
  readonly liveness: LivenessStore;
  readonly shardMap: ShardMapStore;
  readonly clusterDocument: ClusterDocumentStore;
  readonly history: HistoryStore;

  /** Makes this handle alone fail as if its node were cut off from the store. */
  unavailable = false;

  /** `historyLimit`: how many history events are kept (default 1000). */
  constructor(
    readonly storage: MemoryStorage = new MemoryStorage(),
    options: { historyLimit?: number } = {},
  ) {
    const check = () => {
      if (this.unavailable) throw new StoreUnavailableError("memory store: unreachable from this node (simulated)");
      storage.check();
    };
    this.leases = new MemoryLeaseStore(storage, check);
    this.liveness = new MemoryLiveness(storage, check);
    this.shardMap = new MemoryShardMap(storage, check);
    this.clusterDocument = new MemoryClusterDocument(storage, check);
    this.history = new MemoryHistory(storage, check, checkHistoryLimit(options.historyLimit));
  }

  /** The memory store has no schema; it reports version 1 as created. */
  readonly schemaVersion = 1;

  async migrate(): Promise<void> {
    this.storage.check();
  }

  async recordedSchemaVersion(): Promise<number | null> {
    this.storage.check();
    return 1;
  }

  /** Forgets every lease, shard and node; names them as "leases/<name>", "shards/<n>", "nodes/<id>". */
  async purge(): Promise<string[]> {
    this.storage.check();
    const s = this.storage;
    const removed = [
      ...[...s.leases.keys()].map((k) => `leases/${k}`),
      ...[...s.shards.keys()].map((k) => `shards/${k}`),
      ...[...s.nodes.keys()].map((k) => `nodes/${k}`),
    ];
    s.leases.clear();
    s.shards.clear();
    s.nodes.clear();
    return removed.sort();
  }

  async close(): Promise<void> {}
}
