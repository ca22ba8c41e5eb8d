/**
 * Item 4's watchers: `count` store handles (the bench runs one per process, as webapps are), each
 * watching the shard map exactly as a webapp's Router does (`store.shardMap.watch`, whose callback is
 * where the Router's in-memory map changes). Usage: watcher.ts '<store section JSON>' <count> [first
 * index]. Prints {"ready":true}, then {"w":i,"shard":s,"epoch":e,"t":<CLOCK_MONOTONIC ms>} per change.
 */
import { parseConfig } from "../../src/config/load.js";
import { monoNow } from "./clock.js";
import { sdk } from "./sdk.js";

// tsx turns source-mapped stack traces on; the CLI runs without them, and every Error (undici makes
// one per closed connection) would cost a source-map lookup here that it does not cost in production.
process.setSourceMapsEnabled(false);

const { SystemClock, openStore } = sdk;

const section = JSON.parse(process.argv[2]!) as Record<string, unknown>;
const count = Number(process.argv[3] ?? 1);
const first = Number(process.argv[4] ?? 0);
const config = parseConfig({ cluster_name: "bench", secret: "benchmark-secret-0123456789abcdef", store: section });
for (let w = first; w < first + count; w++) {
  const store = await openStore(config.store, new SystemClock());
  await store.shardMap.watch((changed) => {
    const t = monoNow();
    for (const a of changed) process.stdout.write(`${JSON.stringify({ w, shard: a.shard, epoch: a.epoch, t })}\n`);
  });
}
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
process.on("SIGTERM", () => process.exit(0));
