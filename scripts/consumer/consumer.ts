/**
 * A strict TypeScript consumer of the packed multiconnect, installed with only `pg` beside it
 * (scripts/consumer-check.sh). It uses nothing but the package's public entry point: one master,
 * one coreapp and one webapp in this process on PostgreSQL, and a request sent through the webapp
 * until the shard's primary coreapp answers it.
 */
import { createServer } from "node:net";
import {
  createNode,
  parseConfig,
  type AppRequest,
  type AppResponse,
  type Config,
  type CoreappApplication,
  type MulticonnectNode,
} from "multiconnect";

const config: Config = parseConfig({
  cluster_name: "consumer-check",
  shards: 1,
  secret: "${MC_SECRET}",
  store: { backend: "postgres", url: "${DATABASE_URL}", table_prefix: "${MC_TABLE_PREFIX}" },
  // The dev cluster's short intervals: the first promotion takes a second or two, not thirty.
  settings: { heartbeat_interval: "500ms", unhealthy_interval: "3s", db_heartbeat_interval: "1s", db_unhealthy_interval: "5s" },
});

const promoted: string[] = [];
const app: CoreappApplication = {
  onPromote(shard: number, epoch: number): void {
    promoted.push(`${shard}@${epoch}`);
  },
  onDemote(): void {},
  handle(request: AppRequest): AppResponse {
    return { status: 200, body: `shard ${request.shard} epoch ${request.epoch}: ${new TextDecoder().decode(request.body)}` };
  },
};

/** A port nothing listens on now, above the well-known range and below the kernel's ephemeral one. */
async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

const webappPort = await freePort();
const nodes: MulticonnectNode[] = [
  await createNode({ config, role: "master", name: "consumer-master", port: 0 }),
  await createNode({ config, role: "coreapp", name: "consumer-coreapp", port: 0, app }),
  await createNode({ config, role: "webapp", name: "consumer-webapp", port: webappPort }),
];
const t0 = performance.now();
for (const node of nodes) await node.start();
console.log(`   started ${nodes.map((n) => n.id).join(", ")}`);

let answer: { status: number; body: string } = { status: 0, body: "" };
const deadline = Date.now() + 60_000;
while (answer.status !== 200 && Date.now() < deadline) {
  try {
    const res = await fetch(`http://127.0.0.1:${webappPort}/v1/messages`, {
      method: "POST",
      headers: { "x-shard-key": "alice" },
      body: "hello",
    });
    answer = { status: res.status, body: await res.text() };
  } catch (error) {
    answer = { status: 0, body: String(error) };
  }
  if (answer.status !== 200) await new Promise((r) => setTimeout(r, 250));
}
console.log(
  `   POST /v1/messages -> ${answer.status} "${answer.body}" after ${Math.round(performance.now() - t0)} ms (promoted ${promoted.join(", ")})`,
);

for (const node of [...nodes].reverse()) await node.stop();
process.exit(answer.status === 200 && answer.body.endsWith(": hello") ? 0 : 1);
