import { expect, it } from "vitest";
import { MemoryStorage, MemoryStore } from "../../src/adapters/memory/index.js";
import { parseConfig } from "../../src/config/load.js";
import { MASTER_LEASE } from "../../src/core/ports/leases.js";
import { createNode } from "../../src/nodes/compose.js";
import { createLogger } from "../../src/nodes/logger.js";

/** A store opened by the embedder (a third-party adapter) runs a node instead of the configured one. */
it("createNode({ store }) runs the node on the given store and closes it on stop()", async () => {
  const config = parseConfig(
    {
      cluster_name: "custom",
      secret: "custom-store-secret-0123456789",
      store: { backend: "sqlite", path: "/nonexistent/never-opened.db" },
      node: { listen_host: "127.0.0.1" },
    },
    {},
  );
  const storage = new MemoryStorage();
  const store = new MemoryStore(storage);
  let closed = false;
  const close = store.close.bind(store);
  store.close = async () => {
    closed = true;
    await close();
  };
  const master = await createNode({ config, role: "master", name: "m", port: 0, store, logger: createLogger("silent") });
  await master.start();
  try {
    for (let i = 0; i < 100 && !(await store.leases.current(MASTER_LEASE)); i++) await new Promise((r) => setTimeout(r, 50));
    expect((await store.leases.current(MASTER_LEASE))?.holder).toBe(master.id);
    expect((await store.liveness.list()).map((n) => n.name)).toEqual(["m"]);
  } finally {
    await master.stop();
  }
  expect(closed).toBe(true);
});
