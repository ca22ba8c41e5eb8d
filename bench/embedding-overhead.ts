/**
 * What mounting a webapp into a host framework costs per request, against the webapp's own
 * listener: `npx tsx bench/embedding-overhead.ts [requests]` (default 2000 per entry point).
 *
 * One process: 2 masters and 3 coreapps on a temporary SQLite file with the real HTTP transport,
 * one webapp, and four entry points to it — its own listener, a node:http host, Express 5 with
 * express.json({ verify: keepRawBody }) under /api, Fastify 5 with the plugin under /api. Each
 * gets the same sequential keep-alive POSTs of a 60-byte JSON body (after 200 warm-up requests),
 * in turns, so that load on the machine falls on all of them alike. Prints p50/p90/p99 latency.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import express from "express";
import Fastify from "fastify";
import { Agent, request } from "undici";
import { parseConfig } from "../src/config/load.js";
import { keepRawBody, multiconnect as expressMount } from "../src/frameworks/express.js";
import { multiconnect as fastifyPlugin } from "../src/frameworks/fastify.js";
import { createCoreapp, createMaster, createWebapp, type AnyNode } from "../src/nodes/compose.js";
import { createLogger } from "../src/nodes/logger.js";

const requests = Number(process.argv[2] ?? 2000);
const dir = mkdtempSync(join(tmpdir(), "mc-embed-bench-"));
const config = parseConfig(
  {
    cluster_name: "embed-bench",
    shards: 2,
    secret: "embed-bench-secret-0123456789",
    settings: { heartbeat_interval: "100ms", unhealthy_interval: "600ms", db_heartbeat_interval: "200ms", db_unhealthy_interval: "1s" },
    store: { backend: "sqlite", path: join(dir, "cluster.db") },
    node: { listen_host: "127.0.0.1", external_hostname: "127.0.0.1" },
  },
  {},
);
const logger = createLogger("silent");
const app = { onPromote() {}, onDemote() {}, handle: () => ({ status: 200, body: "ok" }) };
const nodes: AnyNode[] = [
  await createMaster({ config, name: "m1", port: 0, logger }),
  await createMaster({ config, name: "m2", port: 0, logger }),
];
for (const name of ["c1", "c2", "c3"]) nodes.push(await createCoreapp({ config, name, port: 0, app, logger }));
const webapp = await createWebapp({ config, port: 0, logger });
nodes.push(webapp);
for (const n of nodes) await n.start();

const servers: Server[] = [];
const listen = async (server: Server): Promise<number> => {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
};
const ex = express();
ex.use(express.json({ verify: keepRawBody }));
ex.use("/api", expressMount(webapp));
const fa = Fastify();
await fa.register(fastifyPlugin, { prefix: "/api", webapp });
const fastifyUrl = await fa.listen({ port: 0, host: "127.0.0.1" });

const entries: Record<string, string> = {
  "own listener": `http://127.0.0.1:${webapp.port}/v1/messages`,
  "node:http host": `http://127.0.0.1:${await listen(createServer(webapp.handler))}/v1/messages`,
  "Express 5, /api": `http://127.0.0.1:${await listen(createServer(ex))}/api/v1/messages`,
  "Fastify 5, /api": `${fastifyUrl}/api/v1/messages`,
};

const agent = new Agent({ connections: 1 });
const body = JSON.stringify({ to: "+15550001", text: "hello from the embedding benchmark" });
async function once(url: string): Promise<number> {
  const started = performance.now();
  const r = await request(url, {
    method: "POST",
    dispatcher: agent,
    headers: { "x-shard-key": "+15550001", "content-type": "application/json" },
    body,
  });
  await r.body.text();
  if (r.statusCode !== 200) throw new Error(`${url}: ${r.statusCode}`);
  return performance.now() - started;
}

for (let i = 0; i < 100; i++) {
  try {
    await once(entries["own listener"]!);
    break;
  } catch {
    await new Promise((r) => setTimeout(r, 100)); // the cluster is still electing and promoting
  }
}
const samples = new Map<string, number[]>(Object.keys(entries).map((k) => [k, []]));
for (const url of Object.values(entries)) for (let i = 0; i < 200; i++) await once(url);
// In turns of 100, so that a burst of load elsewhere on the machine lands on every entry point.
for (let done = 0; done < requests; done += 100) {
  for (const [name, url] of Object.entries(entries)) for (let i = 0; i < 100; i++) samples.get(name)!.push(await once(url));
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
console.log(
  `node ${process.version}, load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}, ${requests} sequential requests per entry point`,
);
console.log("entry point        p50 ms  p90 ms  p99 ms");
for (const [name, xs] of samples)
  console.log(
    `${name.padEnd(18)} ${pct(xs, 50).toFixed(3).padStart(6)}  ${pct(xs, 90).toFixed(3).padStart(6)}  ${pct(xs, 99).toFixed(3).padStart(6)}`,
  );

await agent.close();
await fa.close();
for (const s of servers) s.close();
await Promise.all(nodes.map((n) => n.stop()));
rmSync(dir, { recursive: true, force: true });
