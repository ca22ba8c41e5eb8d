import { afterEach, describe, expect, it } from "vitest";
import { MemoryStorage, MemoryStore } from "../../src/adapters/memory/index.js";
import { ManualClock } from "../../src/core/clock.js";
import { followClusterDocument, type ClusterDocumentFollower } from "../../src/core/cluster-document-follower.js";
import { StoreUnavailableError } from "../../src/core/errors.js";
import type { VersionedClusterDocument } from "../../src/core/ports/cluster-document.js";
import { MASTER_LEASE } from "../../src/core/ports/leases.js";
import { DEFAULT_SETTINGS } from "../../src/core/timing.js";

const followers: ClusterDocumentFollower[] = [];
afterEach(async () => {
  await Promise.all(followers.splice(0).map((f) => f.close()));
});

/** Lets the follower's loop run after the clock moved. */
const settle = () => new Promise((r) => setTimeout(r, 5));

async function setup() {
  const clock = new ManualClock();
  const store = new MemoryStore(new MemoryStorage(clock));
  const lease = await store.leases.acquire(MASTER_LEASE, "m1", 1_000_000);
  if (!lease.acquired) throw new Error("setup");
  const seen: [VersionedClusterDocument | null, number][] = [];
  const errors: unknown[] = [];
  const follower = await followClusterDocument({
    store: store.clusterDocument,
    clock,
    pollMs: 100,
    onChange: (doc, at) => seen.push([doc, at]),
    onError: (e) => errors.push(e),
  });
  followers.push(follower);
  return { clock, store, master: lease.lease, seen, errors };
}

describe("followClusterDocument()", () => {
  it("delivers the first read at once, then each new version within one poll, and nothing while it stays the same", async () => {
    const { clock, store, master, seen } = await setup();
    expect(seen).toEqual([[null, 0]]);
    const w = await store.clusterDocument.write(0, { settings: DEFAULT_SETTINGS, shardCount: 2, pauses: [] }, master);
    if (!w.ok) throw new Error("write");
    await clock.advance(99);
    await settle();
    expect(seen).toHaveLength(1);
    await clock.advance(1);
    await settle();
    expect(seen).toHaveLength(2);
    expect(seen[1]).toEqual([{ version: w.version, document: expect.objectContaining({ shardCount: 2 }) }, 100]);
    await clock.advance(500);
    await settle();
    expect(seen).toHaveLength(2);
  });

  it("reports store errors and keeps following; a lost document is delivered as null", async () => {
    const { clock, store, master, seen, errors } = await setup();
    const w = await store.clusterDocument.write(0, { settings: DEFAULT_SETTINGS, shardCount: 2, pauses: [] }, master);
    if (!w.ok) throw new Error("write");
    store.unavailable = true;
    await clock.advance(100);
    await settle();
    expect(errors[0]).toBeInstanceOf(StoreUnavailableError);
    store.unavailable = false;
    await clock.advance(100);
    await settle();
    expect(seen.at(-1)?.[0]?.version).toBe(w.version);
    store.storage.cluster = null; // the store lost it
    await clock.advance(100);
    await settle();
    expect(seen.at(-1)?.[0]).toBeNull();
  });
});
