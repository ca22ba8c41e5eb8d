/**
 * `npx tsx bench/transport-cost.ts [--seconds 3] [--concurrency 1,50] [--body 5]`: what one forward
 * costs in the framed transport alone — client and server in this one process on loopback, the
 * in-process shortcut off, an echo handler — as CPU µs per forward (user + system) and forwards per
 * second. No HTTP on either side: it isolates the hop the webapp adds behind its HTTP server (item 3
 * of `npm run bench` measures the whole path). For iterating on the transport; run it on an idle
 * machine and compare runs of the same command.
 */
import { parseArgs } from "node:util";
import { FramedTransport } from "../src/adapters/transport/index.js";
import type { ForwardRequest } from "../src/core/ports/transport.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "1,50" },
    body: { type: "string", default: "5" },
  },
});
const seconds = Number(values.seconds);
const levels = values.concurrency.split(",").map(Number);
const body = Buffer.alloc(Number(values.body), "x");

const options = { clusterName: "bench", secret: "bench-secret-of-enough-length", inProcessShortcut: false };
const server = new FramedTransport({ ...options, nodeId: "coreapp.bench" });
const client = new FramedTransport({ ...options, nodeId: "webapp.bench" });
const listener = await server.listen("coreapp.bench", "127.0.0.1", 0, {
  forward: async (_from, request, started) => {
    await started();
    return { outcome: "served", response: { status: 200, headers: { "content-type": "text/plain" }, body: request.body } };
  },
});
const peer = { id: "coreapp.bench", address: `127.0.0.1:${listener.port}` };
const request: ForwardRequest = {
  shard: 0,
  epoch: 1,
  method: "POST",
  path: "/v1/messages",
  headers: { "content-type": "text/plain", "x-shard-key": "bench", "user-agent": "bench", accept: "*/*" },
  body,
};

async function run(concurrency: number, ms: number): Promise<{ perSecond: number; cpuUs: number }> {
  let done = 0;
  const end = performance.now() + ms;
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const r = await client.forward(peer, request, 5000);
        if (r.outcome !== "served") throw new Error(`forward: ${r.outcome}`);
        done++;
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return { perSecond: done / ((performance.now() - start) / 1000), cpuUs: (used.user + used.system) / done };
}

await run(8, 1000); // warm-up: connection, JIT
for (const c of levels) {
  const r = await run(c, seconds * 1000);
  process.stdout.write(`concurrency ${c}: ${Math.round(r.perSecond)} forwards/s, ${r.cpuUs.toFixed(1)} µs CPU per forward (both ends)\n`);
}
await client.close();
await listener.close();
await server.close();
