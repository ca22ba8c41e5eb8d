import { afterEach, describe, expect, it } from "vitest";
import { MemoryStorage, MemoryStore } from "../../src/adapters/memory/index.js";
import { storeConformance } from "../../src/testing/store-conformance.js";
import { controlConformance } from "../../src/testing/control-conformance.js";

const storages = new Map<string, MemoryStorage>();

storeConformance({ describe, it, afterEach, expect }, "memory", {
  open: async (namespace) => {
    let storage = storages.get(namespace);
    if (!storage) storages.set(namespace, (storage = new MemoryStorage()));
    return new MemoryStore(storage);
  },
  capabilities: { ttlMs: 300 },
});

controlConformance({ describe, it, afterEach, expect }, "memory", {
  open: async (namespace, o) => {
    let storage = storages.get(namespace);
    if (!storage) storages.set(namespace, (storage = new MemoryStorage()));
    return new MemoryStore(storage, o);
  },
  capabilities: { ttlMs: 300, writerWallClock: true },
});
