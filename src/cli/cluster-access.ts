import { HttpTransport, testProtocolOverride } from "../adapters/http/index.js";
import type { Config } from "../config/load.js";
import { SystemClock } from "../core/clock.js";
import { MASTER_LEASE } from "../core/ports/leases.js";
import type { Store } from "../core/ports/store.js";
import type { Peer } from "../core/ports/transport.js";
import { deriveTiming, type Timing } from "../core/timing.js";
import { newNodeId } from "../nodes/deps.js";
import { openStore } from "../nodes/open-store.js";

/** What an operator command needs: the store, the timing, and a transport of its own. */
export interface ClusterAccess {
  readonly store: Store;
  readonly timing: Timing;
  readonly transport: HttpTransport;
  close(): Promise<void>;
}

/** Opens the configured store and a transport for an operator command (`status`, `switchover`). */
export async function openClusterAccess(config: Config): Promise<ClusterAccess> {
  const store = await openStore(config.store, new SystemClock());
  // With transport.tls the command calls nodes over mutual TLS with the certificate the config names.
  const transport = new HttpTransport({
    nodeId: newNodeId("cli"),
    secret: config.secret,
    clusterName: config.clusterName,
    protocol: testProtocolOverride(),
    tls: config.transport.tls,
  });
  return {
    store,
    timing: deriveTiming(config.settings, store.capabilities),
    transport,
    async close() {
      await transport.close();
      await store.close();
    },
  };
}

/**
 * The primary master, found through the master lease and its liveness record, for commands that
 * only it carries out. Throws with a message for people when there is none right now.
 */
export async function primaryMaster(access: ClusterAccess): Promise<Peer> {
  const master = await access.store.leases.current(MASTER_LEASE);
  if (!master) throw new Error("no primary master holds the lease right now; try again shortly");
  const record = (await access.store.liveness.list()).find((n) => n.id === master.holder);
  if (!record?.address) throw new Error(`the primary master ${master.holder} has no registered address`);
  return { id: record.id, address: record.address };
}
