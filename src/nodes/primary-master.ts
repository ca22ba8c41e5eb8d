import { MASTER_LEASE } from "../core/ports/leases.js";
import type { Store } from "../core/ports/store.js";
import type { Peer } from "../core/ports/transport.js";

/**
 * The primary master, found through the master lease and its liveness record, for the commands
 * only it carries out (switchover, settings, pause). Null when no master holds the lease right now
 * or the holder has no registered address. Throws `StoreUnavailableError`.
 */
export async function findPrimaryMaster(store: Store): Promise<Peer | null> {
  const master = await store.leases.current(MASTER_LEASE);
  if (!master) return null;
  const record = (await store.liveness.list()).find((n) => n.id === master.holder);
  return record?.address ? { id: record.id, address: record.address } : null;
}
