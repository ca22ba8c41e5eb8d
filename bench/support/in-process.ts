/**
 * Nodes run in the bench's own process with their store's operations counted (item 5). The nodes
 * (the built SDK, dist/) are wired exactly as the composition root (src/nodes/compose.ts) wires them — one store handle,
 * one HTTP transport and the derived timing per node — except that the store is wrapped first, which
 * `createNode` has no seam for.
 */
import type { MemoryStorage } from "../../src/adapters/memory/index.js";
import type { Config } from "../../src/config/load.js";
import type { Store } from "../../src/core/ports/store.js";
import type { Coreapp } from "../../src/nodes/coreapp.js";
import type { NodeDeps, NodeIdentity } from "../../src/nodes/deps.js";
import type { Master } from "../../src/nodes/master.js";
import type { Webapp } from "../../src/nodes/webapp.js";
import { sdk } from "./sdk.js";

const {
  FramedTransport,
  MemoryStore,
  SystemClock,
  silentLogger,
  deriveTiming,
  Coreapp: CoreappNode,
  Master: MasterNode,
  Webapp: WebappNode,
  openStore,
  createEchoApp,
} = sdk;

/** Operation counts of one store handle, by "port.method". */
export class OpCounter {
  private counts = new Map<string, number>();

  add(op: string): void {
    this.counts.set(op, (this.counts.get(op) ?? 0) + 1);
  }

  reset(): void {
    this.counts = new Map();
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts.entries()].sort());
  }

  total(): number {
    return [...this.counts.values()].reduce((a, b) => a + b, 0);
  }
}

const PORT_METHODS = {
  leases: ["acquire", "renew", "release", "current"],
  liveness: ["beat", "list", "remove"],
  shardMap: ["read", "assign"],
  clusterDocument: ["read", "version", "write"],
  history: ["append", "list"],
} as const;

/**
 * Wraps every port method of `store` in place (on the instances, so that an adapter's own calls —
 * a watch re-reading the map through `this.read()` — are counted too) and returns the counter.
 * SQLite's watcher does not go through `read()`: it polls `PRAGMA data_version` on a connection
 * of its own and re-reads with a private helper, so both are hooked as well ("shardMap.poll",
 * "shardMap.read (watch)").
 */
export function countOps(store: Store): OpCounter {
  const counter = new OpCounter();
  for (const [port, methods] of Object.entries(PORT_METHODS)) {
    const target = (store as unknown as Record<string, Record<string, (...a: unknown[]) => unknown>>)[port]!;
    for (const m of methods) {
      const original = target[m]!.bind(target);
      target[m] = (...args: unknown[]) => {
        counter.add(`${port}.${m}`);
        return original(...args);
      };
    }
  }
  if (store.backend === "sqlite") hookSqliteWatch(store, counter);
  return counter;
}

type Fn = (...a: unknown[]) => unknown;

function hookSqliteWatch(store: Store, counter: OpCounter): void {
  const map = store.shardMap as unknown as { read: Fn; readWith: Fn; db: { openSecondConnection: () => { pragma: Fn } } };
  let inRead = false;
  const read = map.read;
  map.read = (...a: unknown[]) => {
    inRead = true;
    try {
      return read(...a); // readWith runs synchronously inside, so the flag covers it
    } finally {
      inRead = false;
    }
  };
  const readWith = map.readWith.bind(map);
  map.readWith = (...a: unknown[]) => {
    if (!inRead) counter.add("shardMap.read (watch)");
    return readWith(...a);
  };
  const db = map.db;
  const open = db.openSecondConnection.bind(db);
  db.openSecondConnection = () => {
    const conn = open();
    const pragma = conn.pragma.bind(conn);
    conn.pragma = (...a: unknown[]) => {
      counter.add("shardMap.poll (data_version)");
      return pragma(...a);
    };
    return conn;
  };
}

/** A store handle for a node: a real backend from the config, or a handle on shared memory storage. */
export async function nodeStore(config: Config | null, memory: MemoryStorage | null): Promise<Store> {
  if (memory) return new MemoryStore(memory);
  return openStore(config!.store, new SystemClock());
}

/** Something `build` made: the node, its counter, and how to stop it and close what it opened. */
export interface InProcessNode<N> {
  readonly node: N;
  readonly ops: OpCounter;
  readonly store: Store;
  stop(): Promise<void>;
}

/** Builds one node as compose.ts does, around a counted store handle. */
export async function buildNode<R extends "master" | "coreapp" | "webapp">(
  role: R,
  name: string,
  config: Config,
  store: Store,
  id = `${name}.bench`,
): Promise<InProcessNode<R extends "master" ? Master : R extends "coreapp" ? Coreapp : Webapp>> {
  const ops = countOps(store);
  const transport = new FramedTransport({
    nodeId: id,
    secret: config.secret,
    clusterName: config.clusterName,
    maxBodyBytes: config.webapp.maxBodyBytes,
  });
  const deps: NodeDeps = {
    store,
    transport,
    clock: new SystemClock(),
    timing: deriveTiming(config.settings, store.capabilities),
    log: silentLogger,
  };
  const identity: NodeIdentity = { id, name, listenHost: "127.0.0.1", port: 0, externalHostname: "127.0.0.1" };
  const node =
    role === "master"
      ? new MasterNode(deps, identity, config.shards)
      : role === "coreapp"
        ? new CoreappNode(deps, identity, createEchoApp({ name }), config.coreapp.drainTimeoutMs)
        : new WebappNode(deps, identity, { shards: config.shards, ...config.webapp });
  return {
    node: node as never,
    ops,
    store,
    stop: async () => {
      await node.stop();
      await transport.close();
      await store.close();
    },
  };
}
