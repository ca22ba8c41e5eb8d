/** What every example process shares: the cluster file and SIGTERM handling. */
import { fileURLToPath } from "node:url";
import { loadConfigFile, type Config, type MulticonnectNode } from "multiconnect";

/** The cluster config (examples/cluster.yaml, or the file named by MC_CONFIG). */
export function clusterConfig(): Config {
  return loadConfigFile(process.env["MC_CONFIG"] ?? fileURLToPath(new URL("./cluster.yaml", import.meta.url)));
}

/**
 * Leaves the cluster on SIGTERM or SIGINT (what Kubernetes, systemd and Ctrl-C send): a coreapp
 * drains its requests and calls onDemote, so a standby takes the shard at once instead of after
 * the failure-detection interval; a webapp deregisters. `before` runs first (close the host's
 * HTTP server so no new request arrives), and a second signal exits at once.
 */
export function stopOnSignals(nodes: readonly MulticonnectNode[], before: () => Promise<void> = async () => {}): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1);
    stopping = true;
    console.error(`${signal}: leaving the cluster`);
    before()
      .then(() => Promise.all(nodes.map((n) => n.stop())))
      .then(
        () => process.exit(0),
        (error: unknown) => {
          console.error(error);
          process.exit(1);
        },
      );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
