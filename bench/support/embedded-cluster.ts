/**
 * The "embedded" target of item 3: a master, a coreapp running the example echo app, and a webapp,
 * all in this one process on a SQLite file, as a service that embeds the three would run them
 * (docs/embedding.md). The webapp reaches its shard's owner through the transport's in-process
 * shortcut, without a socket. Prints {"port": n} (the webapp's) once it has served a request.
 * Usage: embedded-cluster.ts <dir>.
 */
import { join } from "node:path";
import { sdk } from "./sdk.js";

process.setSourceMapsEnabled(false); // as in echo-server.ts: the CLI runs without them

const dir = process.argv[2]!;
const config = sdk.parseConfig(
  {
    cluster_name: "bench-embedded",
    shards: 1,
    secret: "bench-embedded-secret-0123456789",
    settings: { heartbeat_interval: "1s", unhealthy_interval: "6s", db_heartbeat_interval: "2s", db_unhealthy_interval: "12s" },
    store: { backend: "sqlite", path: join(dir, "embedded.db") },
    node: { listen_host: "127.0.0.1", external_hostname: "127.0.0.1" },
  },
  {},
);
// Silent: stdout carries the ready line, and the other targets log nothing per request either.
const logger = sdk.silentLogger;
const nodes: { start(): Promise<void>; stop(): Promise<void> }[] = [
  await sdk.createMaster({ config, name: "master-1", port: 0, logger }),
  await sdk.createCoreapp({ config, name: "coreapp-1", port: 0, logger, app: sdk.createEchoApp({ name: "coreapp-1" }) }),
];
const webapp = await sdk.createWebapp({ config, port: 0, logger });
nodes.push(webapp);
for (const n of nodes) await n.start();
// Ready once the shard has an owner that serves: the same request the load sends, until it is answered.
for (const deadline = Date.now() + 60_000; ;) {
  const r = await fetch(`http://127.0.0.1:${webapp.port}/v1/messages`, {
    method: "POST",
    headers: { "x-shard-key": "bench", "content-type": "text/plain" },
    body: "hello",
  }).catch(() => null);
  if (r?.ok) break;
  if (Date.now() > deadline) throw new Error(`embedded cluster: no answer within 60 s (last: ${r?.status ?? "no connection"})`);
  await new Promise((resolve) => setTimeout(resolve, 100));
}
process.stdout.write(`${JSON.stringify({ port: webapp.port })}\n`);
process.on("SIGTERM", () => {
  void (async () => {
    for (const n of nodes.reverse()) await n.stop();
    process.exit(0);
  })();
});
