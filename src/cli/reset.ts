import { loadConfigFile } from "../config/load.js";
import { StoreConfigurationError } from "../core/errors.js";
import type { NodeStatus } from "../core/ports/liveness.js";
import type { Store } from "../core/ports/store.js";
import { openClusterAccess } from "./cluster-access.js";

/**
 * `multiconnect reset`: the uninstall. Removes every table or key under the cluster's prefix (see
 * `Store.purge()`), printing each. Refused while any node's record is live, unless `force`: a
 * running node would recreate its records, and epochs would start again from 1 under its feet.
 */
export async function resetCommand(o: { config: string; force?: boolean }): Promise<void> {
  const config = loadConfigFile(o.config);
  const access = await openClusterAccess(config);
  try {
    const live = (await registeredNodes(access.store)).filter((n) => n.ageMs <= access.timing.dbUnhealthyIntervalMs);
    if (live.length > 0 && o.force !== true) {
      throw new StoreConfigurationError(
        `reset: refused, ${live.length} node(s) of cluster ${config.clusterName} are live: ` +
          `${live.map((n) => `${n.id} (${n.role})`).join(", ")}; stop them first, or pass --force`,
        { code: "reset_refused" },
      );
    }
    const removed = await access.store.purge();
    const where = `${config.store.backend} store of cluster ${config.clusterName}`;
    if (removed.length === 0) process.stdout.write(`reset: nothing to remove in the ${where}\n`);
    else process.stdout.write(`reset: removed ${removed.length} from the ${where}:\n${removed.map((n) => `  ${n}\n`).join("")}`);
  } finally {
    await access.close();
  }
}

/** The registered nodes, or none when there is no schema (never started, or reset: nothing to protect). */
async function registeredNodes(store: Store): Promise<NodeStatus[]> {
  return (await store.recordedSchemaVersion()) === null ? [] : store.liveness.list();
}
