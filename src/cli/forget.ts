import { loadConfigFile } from "../config/load.js";
import { ForgetRefusedError, Membership } from "../core/master/membership.js";
import { createLogger } from "../nodes/logger.js";
import { openClusterAccess } from "./cluster-access.js";

/**
 * `multiconnect forget NODE`: removes one node's record at once (by id, or by a name only one
 * record has). Refused for a shard's named owner, and for a live node unless `force`.
 */
export async function forgetCommand(o: { config: string; node: string; force?: boolean }): Promise<void> {
  const config = loadConfigFile(o.config);
  const access = await openClusterAccess(config);
  try {
    if ((await access.store.recordedSchemaVersion()) === null) {
      throw new ForgetRefusedError(
        `no node ${o.node} is registered: the ${config.store.backend} store holds no cluster (never started, or reset)`,
      );
    }
    const log = createLogger("info", { cluster: config.clusterName, node: "cli" });
    const membership = new Membership(access.store.liveness, access.store.shardMap, log, access.timing);
    const node = await membership.forget(o.node, o.force === true);
    process.stdout.write(`removed ${node.id} (${node.role} ${node.name}, last seen ${Math.round(node.ageMs)} ms ago)\n`);
  } finally {
    await access.close();
  }
}
