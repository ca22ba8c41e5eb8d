import { loadConfigFile } from "../config/load.js";
import { openClusterAccess, primaryMaster } from "./cluster-access.js";

/**
 * `multiconnect switchover --shard N [--to NODE] [--force]`: asks the primary master (found through the
 * master lease and its liveness record) to move a shard; prints the outcome. Exit code 1 on failure.
 */
export async function switchoverCommand(o: { config: string; shard: number; to?: string; force?: boolean }): Promise<boolean> {
  const config = loadConfigFile(o.config);
  const access = await openClusterAccess(config);
  try {
    const master = await primaryMaster(access);
    const timeout = access.timing.unhealthyIntervalMs + access.timing.leaseTtlMs + 5000;
    const reply = await access.transport.switchover(
      master,
      { shard: o.shard, ...(o.to ? { to: o.to } : {}), ...(o.force ? { force: true } : {}) },
      timeout,
    );
    if (reply.ok) {
      process.stdout.write(
        `shard ${reply.shard}: ${reply.from ?? "(none)"} -> ${reply.to} at epoch ${reply.epoch}, serving after ${reply.gapMs?.toFixed(1)} ms\n`,
      );
      return true;
    }
    process.stderr.write(`switchover of shard ${o.shard} failed: ${reply.error?.code} ${reply.error?.message}\n`);
    return false;
  } finally {
    await access.close();
  }
}
