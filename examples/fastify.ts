/**
 * A webapp inside a Fastify 5 service, under the /api prefix; the service's own routes keep
 * Fastify's JSON parser: `PORT=3002 tsx examples/fastify.ts`.
 */
import Fastify from "fastify";
import { createWebapp } from "multiconnect";
import { multiconnect } from "multiconnect/fastify";
import { clusterConfig, stopOnSignals } from "./config.js";

const webapp = await createWebapp({
  config: clusterConfig(),
  name: "web-fastify",
  listen: false,
  shardKey: (req) => req.headers["x-phone"] as string | undefined,
});
await webapp.start();

const app = Fastify();
app.post("/echo", async (request) => ({ parsed: request.body }));
await app.register(multiconnect, { prefix: "/api", webapp });
await app.listen({ port: Number(process.env["PORT"] ?? 3002), host: "127.0.0.1" });
stopOnSignals([webapp], () => app.close());
