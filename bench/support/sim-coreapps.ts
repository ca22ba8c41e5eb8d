/**
 * Simulated coreapps for item 5's scale test: `count` transport listeners in one process, each with
 * its own node id, answering the masters' heartbeats as a coreapp does (`sim-i` serves shard i at
 * epoch 1 for i < shards; the rest are standbys). With a real store it also writes their liveness
 * records every db_heartbeat_interval and, when told, runs the secondary master (a real Master).
 *
 * Usage: sim-coreapps.ts '{"count":n,"shards":s,"section":{...}|null}'. Prints {"sims":[{id,address}]}
 * once listening (and, with a store, once every record is written). Reads {"cmd":"secondary"} on stdin.
 */
import { createInterface } from "node:readline";
import { parseConfig } from "../../src/config/load.js";
import { buildNode } from "./in-process.js";
import { sdk } from "./sdk.js";

// tsx turns source-mapped stack traces on; the CLI runs without them, and every Error (undici makes
// one per closed connection) would cost a source-map lookup here that it does not cost in production.
process.setSourceMapsEnabled(false);

const { FramedTransport, SystemClock, DEFAULT_SETTINGS, openStore } = sdk;

const o = JSON.parse(process.argv[2]!) as { count: number; shards: number; section: Record<string, unknown> | null };
const SECRET = "benchmark-secret-0123456789abcdef";
const transport = new FramedTransport({ nodeId: "sim-host", secret: SECRET, clusterName: "bench" });
const sims: { id: string; address: string; shard: number | null }[] = [];
for (let i = 0; i < o.count; i++) {
  const id = `sim-${i}`;
  const shard = i < o.shards ? i : null;
  const server = await transport.listen(id, "127.0.0.1", 0, { heartbeat: () => ({ id, shard, epoch: shard === null ? null : 1 }) });
  sims.push({ id, address: `127.0.0.1:${server.port}`, shard });
}

if (o.section) {
  const config = parseConfig({ cluster_name: "bench", secret: SECRET, shards: o.shards, store: o.section });
  const store = await openStore(config.store, new SystemClock());
  await store.migrate();
  const beatAll = async () => {
    for (const s of sims) {
      await store.liveness.beat({
        id: s.id,
        name: s.id,
        role: "coreapp",
        address: s.address,
        meta: { shard: s.shard, epoch: s.shard === null ? null : 1, serving: s.shard !== null },
      });
    }
  };
  await beatAll();
  setInterval(() => void beatAll().catch(() => {}), DEFAULT_SETTINGS.dbHeartbeatIntervalMs).unref();
  createInterface({ input: process.stdin }).on("line", (line) => {
    if ((JSON.parse(line) as { cmd?: string }).cmd !== "secondary") return;
    void (async () => {
      const secondary = await buildNode("master", "secondary", config, await openStore(config.store, new SystemClock()), "bench-secondary");
      await secondary.node.start();
    })();
  });
}
process.stdout.write(`${JSON.stringify({ sims: sims.map(({ id, address }) => ({ id, address })) })}\n`);
process.on("SIGTERM", () => process.exit(0));
