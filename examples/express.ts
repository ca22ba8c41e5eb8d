/**
 * A webapp inside an Express 5 service, under the /api prefix, with express.json() on for the
 * service's own routes: `PORT=3001 tsx examples/express.ts`.
 */
import express from "express";
import { createWebapp } from "multiconnect";
import { keepRawBody, multiconnect } from "multiconnect/express";
import { clusterConfig, stopOnSignals } from "./config.js";

const webapp = await createWebapp({
  config: clusterConfig(),
  name: "web-express",
  listen: false,
  shardKey: (req) => req.headers["x-phone"] as string | undefined,
});
await webapp.start();

const app = express();
app.use(express.json({ verify: keepRawBody })); // parsed for our routes, original bytes kept for the webapp
app.get("/hello", (_req, res) => void res.json({ hello: "from the host service" }));
app.use("/api", multiconnect(webapp));
const server = app.listen(Number(process.env["PORT"] ?? 3001), "127.0.0.1");
stopOnSignals([webapp], () => new Promise((resolve) => server.close(() => resolve())));
