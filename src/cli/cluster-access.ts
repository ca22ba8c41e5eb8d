import { FramedTransport, testProtocolOverride } from "../adapters/transport/index.js";
import type { Config } from "../config/load.js";
import { SystemClock } from "../core/clock.js";
import { MulticonnectError } from "../core/errors.js";
import type { Store } from "../core/ports/store.js";
import type { Peer } from "../core/ports/transport.js";
import { deriveTiming, type Timing } from "../core/timing.js";
import { newNodeId } from "../nodes/deps.js";
import { openStore } from "../nodes/open-store.js";
import { findPrimaryMaster } from "../nodes/primary-master.js";

/** What an operator command needs: the store, the timing, and a transport of its own. */
export interface ClusterAccess {
  readonly store: Store;
  readonly timing: Timing;
  readonly transport: FramedTransport;
  close(): Promise<void>;
}

/** Opens the configured store and a transport for an operator command (`status`, `switchover`). */
export async function openClusterAccess(config: Config): Promise<ClusterAccess> {
  const store = await openStore(config.store, new SystemClock());
  // With transport.tls the command calls nodes over mutual TLS with the certificate the config names.
  const transport = new FramedTransport({
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
 * The primary master (`findPrimaryMaster`). Throws a retryable `MulticonnectError` with code
 * `"no_primary_master"` when there is none right now (an election, no master running, or a store
 * that holds no cluster yet).
 */
export async function primaryMaster(access: ClusterAccess): Promise<Peer> {
  // A store no node has started on has no tables to read the lease from.
  if ((await access.store.recordedSchemaVersion()) === null) {
    throw new MulticonnectError("no_primary_master", "no primary master: the store holds no cluster (never started, or reset)", {
      retryable: true,
    });
  }
  const peer = await findPrimaryMaster(access.store);
  if (!peer) {
    throw new MulticonnectError(
      "no_primary_master",
      "no primary master holds the lease right now (or it has not registered its address yet); try again shortly",
      { retryable: true },
    );
  }
  return peer;
}
