import { decodeClusterDocument, encodeClusterDocument, type StoredClusterDocument } from "../../core/control-records.js";
import type {
  ClusterDocumentInput,
  ClusterDocumentStore,
  ClusterDocumentWriteResult,
  VersionedClusterDocument,
} from "../../core/ports/cluster-document.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { Deadline, Kv } from "./client-types.js";
import type { EtcdClient } from "./client.js";
import type { EtcdKeys } from "./keys.js";
import { ttlSeconds } from "./leases.js";

/** A pause as this adapter stores it: its expiry is an etcd lease of its own. */
type EtcdStoredDocument = Omit<StoredClusterDocument, "pauses"> & {
  readonly pauses: readonly (StoredClusterDocument["pauses"][number] & { readonly lease: string })[];
};

/**
 * The cluster document: one key, `cluster`, whose `mod_revision` is its version (etcd revisions are
 * global, persisted and never decrease, so versions only grow, even if the key is deleted and
 * written again).
 *
 * etcd has no clock a client can read, so each pause's expiry is an etcd lease granted for the
 * pause's duration (whole seconds, at least etcd's 2 s minimum) and named in the document; a pause
 * is in force while its lease lives, and its time left is the lease's remaining TTL, counted by the
 * etcd leader. After an etcd restart etcd gives leases their full TTL back, so a restart can lengthen
 * a pause by up to its duration — never end it early or make it permanent. `pausedAtMs` is the
 * writer's wall clock (capability `writerWallClock`).
 *
 * `write()` grants the pauses' leases, then runs one txn that compares the master lease key (value
 * = holder, create_revision = epoch: it exists only while that lease lives, safety S3) and the
 * document's mod_revision, and puts the document and a marker key on each pause's lease. Leases of a failed write, and those of pauses the
 * new document no longer holds, are revoked afterwards (a failed revoke only lets one run out).
 */
export class EtcdClusterDocument implements ClusterDocumentStore {
  constructor(
    private readonly client: EtcdClient,
    private readonly keys: EtcdKeys,
  ) {}

  async read(): Promise<VersionedClusterDocument | null> {
    const d = this.client.deadline();
    const kv = await this.client.get(this.keys.cluster, d);
    return kv && this.toVersioned(kv, d);
  }

  async version(): Promise<number> {
    return (await this.client.get(this.keys.cluster, this.client.deadline()))?.modRevision ?? 0;
  }

  async write(expectedVersion: number, doc: ClusterDocumentInput, master: Lease): Promise<ClusterDocumentWriteResult> {
    const stored = encodeClusterDocument(doc, 0, Date.now());
    const d = this.client.deadline();
    const granted: string[] = [];
    try {
      for (const p of stored.pauses) granted.push((await this.client.grant(ttlSeconds(p.expiresAtMs), d)).id);
    } catch (error) {
      this.revokeQuietly(granted);
      throw error;
    }
    const value: EtcdStoredDocument = { ...stored, pauses: stored.pauses.map((p, i) => ({ ...p, lease: granted[i]! })) };
    const masterKey = this.keys.lease(MASTER_LEASE);
    const key = this.keys.cluster;
    // If this throws, the write may have landed: the leases are kept (they run out by themselves).
    const r = await this.client.txn(
      [
        { key: masterKey, target: "value", equals: master.holder },
        { key: masterKey, target: "create", equals: master.epoch },
        { key, target: "mod", equals: expectedVersion },
      ],
      [
        { range: key },
        { put: { key, value: JSON.stringify(value) } },
        // Keys on the pauses' leases, so that tooling that clears the prefix (revoking the leases
        // of its keys) ends the pauses too, instead of leaving leases to run out.
        ...granted.map((lease) => ({ put: { key: this.keys.pause(lease), value: "", lease } })),
      ],
      [{ range: masterKey }],
      d,
    );
    if (r.succeeded) {
      const previous = r.results[0]?.[0];
      if (previous) this.revokeQuietly(leasesOf(previous).filter((l) => !granted.includes(l)));
      return { ok: true, version: r.revision };
    }
    this.revokeQuietly(granted);
    const held = r.results[0]?.[0];
    if (!held || held.value !== master.holder || held.createRevision !== master.epoch) return { ok: false, reason: "fenced" };
    return { ok: false, reason: "conflict", current: await this.read() };
  }

  /** The document with each pause's time left read off its lease (gone: the pause ended). */
  private async toVersioned(kv: Kv, d: Deadline): Promise<VersionedClusterDocument> {
    let parsed: EtcdStoredDocument | null = null;
    try {
      parsed = JSON.parse(kv.value) as EtcdStoredDocument;
    } catch {
      // decodeClusterDocument reports it, naming the version.
    }
    const stored = parsed?.pauses as unknown; // checked here: Array.isArray would make a typed list any[]
    if (!parsed || !Array.isArray(stored)) return { version: kv.modRevision, document: decodeClusterDocument(kv.value, kv.modRevision, 0) };
    const pauses = await Promise.all(
      parsed.pauses.map(async (p) => {
        const ttl = typeof p.lease === "string" ? await this.client.timeToLive(p.lease, d) : null;
        return { ...p, expiresAtMs: (ttl?.ttlS ?? 0) * 1000 };
      }),
    );
    return { version: kv.modRevision, document: decodeClusterDocument(JSON.stringify({ ...parsed, pauses }), kv.modRevision, 0) };
  }

  private revokeQuietly(leases: readonly string[]): void {
    for (const l of leases) this.client.revoke(l, this.client.deadline()).catch(() => {});
  }
}

function leasesOf(kv: Kv): string[] {
  try {
    const doc = JSON.parse(kv.value) as Partial<EtcdStoredDocument>;
    return (doc.pauses ?? []).map((p) => p.lease).filter((l): l is string => typeof l === "string");
  } catch {
    return [];
  }
}
