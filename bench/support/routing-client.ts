/**
 * The "caller" targets of item 3: a Node process that calls the cluster itself, with a webapp
 * embedded in it (`listen: false`) and `webapp.request()` (docs/embedding.md, "Calling the cluster
 * from your own code"): client → coreapp over the framed transport, no HTTP hop. Its baseline,
 * "caller-direct", is the same process running the same loop with undici against the plain server,
 * so the two differ only in what carries the request.
 * Usage: routing-client.ts <cluster config file> <plain server port>. Prints {"ready": true} once
 * a request through the webapp was answered; then, for each {"target", "connections", "seconds"}
 * line on stdin, runs that load and prints {"rps", "p50Us", "p99Us", "failed", "requests", "cpuUs"}
 * (cpuUs: this process's CPU per request).
 */
import { createInterface } from "node:readline";
import { Pool } from "undici";
import { monoNow } from "./clock.js";
import { sdk } from "./sdk.js";
import { summarize } from "./stats.js";

process.setSourceMapsEnabled(false); // as in echo-server.ts: the CLI runs without them

const [configFile, directPort] = process.argv.slice(2);
const config = sdk.loadConfigFile(configFile!);
const webapp = await sdk.createWebapp({ config, name: "caller", port: 0, listen: false, logger: sdk.silentLogger });
await webapp.start();

const REQUEST = {
  shardKey: "bench",
  method: "POST",
  path: "/v1/messages",
  headers: { "content-type": "text/plain" },
  body: "hello",
} as const;

for (const deadline = Date.now() + 60_000; ;) {
  const r = await webapp.request(REQUEST).catch(() => null);
  if (r?.status === 201 || r?.status === 200) break;
  if (Date.now() > deadline) throw new Error(`routing client: no answer within 60 s (last: ${r?.status ?? "refused"})`);
  await new Promise((resolve) => setTimeout(resolve, 100));
}

/** One request of `target`; true when it was answered 2xx. */
type Send = () => Promise<boolean>;

async function measure(send: Send, connections: number, seconds: number): Promise<object> {
  const latencies: number[] = [];
  let failed = 0;
  const self = process.cpuUsage();
  const start = monoNow();
  const end = start + seconds * 1000;
  const worker = async () => {
    while (monoNow() < end) {
      const s = monoNow();
      if (await send().catch(() => false)) latencies.push((monoNow() - s) * 1000);
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const elapsed = (monoNow() - start) / 1000;
  const used = process.cpuUsage(self);
  const total = Math.max(1, latencies.length + failed);
  const rps = total / elapsed;
  const lat = summarize(latencies);
  return {
    rps,
    // As the item's other targets: p50 at one connection, the mean by Little's law at many.
    p50Us: connections === 1 ? (lat?.median ?? Number.NaN) : (connections / rps) * 1e6,
    p99Us: connections === 1 ? (lat?.p99 ?? Number.NaN) : Number.NaN,
    failed,
    requests: total,
    cpuUs: (used.user + used.system) / total,
  };
}

const pools = new Map<number, Pool>();

async function run(target: string, connections: number, seconds: number): Promise<object> {
  if (target === "caller") {
    return measure(
      async () => {
        const r = await webapp.request(REQUEST);
        return r.status >= 200 && r.status < 300;
      },
      connections,
      seconds,
    );
  }
  // One pool per concurrency, kept from run to run: its connections are open (warm) before a
  // measurement, as the webapp's transport connection is for "caller".
  let pool = pools.get(connections);
  if (!pool) pools.set(connections, (pool = new Pool(`http://127.0.0.1:${directPort}`, { connections, pipelining: 1 })));
  const direct = pool;
  return measure(
    async () => {
      const r = await direct.request({
        path: REQUEST.path,
        method: REQUEST.method,
        headers: { "x-shard-key": "bench", ...REQUEST.headers },
        body: REQUEST.body,
      });
      await r.body.text();
      return r.statusCode >= 200 && r.statusCode < 300;
    },
    connections,
    seconds,
  );
}

process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
let queue = Promise.resolve();
createInterface({ input: process.stdin }).on("line", (line) => {
  const { target, connections, seconds } = JSON.parse(line) as { target: string; connections: number; seconds: number };
  queue = queue.then(async () => {
    process.stdout.write(`${JSON.stringify(await run(target, connections, seconds))}\n`);
  });
});
process.on("SIGTERM", () => void webapp.stop().finally(() => process.exit(0)));
