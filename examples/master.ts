/** A master process: `MC_NAME=master-1 tsx examples/master.ts`. Run two for availability. */
import { createMaster } from "multiconnect";
import { clusterConfig, stopOnSignals } from "./config.js";

const master = await createMaster({
  config: clusterConfig(),
  name: process.env["MC_NAME"] ?? "master-1",
  port: Number(process.env["MC_PORT"] ?? 0),
});
master.on("role", (role) => console.error(`${master.name} is now ${role}`));
master.on("promotion", (e) => console.error(`shard ${e.shard} -> ${e.to} at epoch ${e.epoch} (${e.reason})`));
stopOnSignals([master]);
await master.start();
