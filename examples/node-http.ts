/**
 * A webapp inside a plain node:http service, under the /api prefix, with no listener of its own:
 * `PORT=3000 tsx examples/node-http.ts`, then `curl -XPOST localhost:3000/api/v1/messages -H 'x-phone: 1' -d hi`.
 */
import { createServer } from "node:http";
import { createWebapp } from "multiconnect";
import { clusterConfig, stopOnSignals } from "./config.js";

const webapp = await createWebapp({
  config: clusterConfig(),
  name: "web-node-http",
  listen: false, // reached only through this service, behind whatever it checks first
  shardKey: (req) => req.headers["x-phone"] as string | undefined,
});
await webapp.start();

const server = createServer((req, res) => {
  const url = req.url ?? "/";
  // Everything under /api goes to the cluster with its full path (the coreapp sees /api/...);
  // localPath lets the webapp's own /v1/health and /metrics answer below the prefix.
  if (url.startsWith("/api/")) return void webapp.serve(req, res, { localPath: url.slice("/api".length) });
  res.writeHead(404).end();
});
server.listen(Number(process.env["PORT"] ?? 3000), "127.0.0.1");
stopOnSignals([webapp], () => new Promise((resolve) => server.close(() => resolve())));
