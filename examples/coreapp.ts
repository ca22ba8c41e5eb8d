/**
 * A coreapp process running the application: `MC_NAME=coreapp-1 tsx examples/coreapp.ts`. Run
 * more coreapps than shards, so a standby is ready for each failure.
 */
import { createCoreapp, type AppRequest, type AppResponse, type CoreappApplication } from "multiconnect";
import { clusterConfig, stopOnSignals } from "./config.js";

const name = process.env["MC_NAME"] ?? "coreapp-1";

const app: CoreappApplication = {
  async onPromote(shard, epoch) {
    // Open the one upstream session for `shard` here; pass `epoch` upstream as a fencing token.
    console.error(`${name}: primary of shard ${shard} at epoch ${epoch}`);
  },
  async onDemote(shard, epoch) {
    // Close it here: no other coreapp gets the shard until this returns (or the lease lapses).
    console.error(`${name}: no longer primary of shard ${shard} (epoch ${epoch})`);
  },
  async handle(req: AppRequest): Promise<AppResponse> {
    // A bug in the application: the client gets 500 with code 1500, the stack goes to this log,
    // and the webapp does not send the request again.
    if (req.path.endsWith("/crash")) throw new Error("simulated application bug");
    const body = JSON.stringify({
      coreapp: name,
      shard: req.shard,
      epoch: req.epoch,
      method: req.method,
      path: req.path,
      bytes: req.body.byteLength,
    });
    return { status: 200, headers: { "content-type": "application/json" }, body };
  },
};

const coreapp = await createCoreapp({ config: clusterConfig(), name, port: Number(process.env["MC_PORT"] ?? 0), app });
coreapp.on("owner", (e) => console.error(`${name}: ${e.type} shard ${e.shard} epoch ${e.epoch}`));
stopOnSignals([coreapp]);
await coreapp.start();
