/**
 * The "direct" baseline of item 3: a plain node:http server running the same echo handler as the
 * example app on the coreapps (src/example/echo-app.ts). A coreapp's own listener accepts only
 * authenticated transport messages, so this is the closest plain-HTTP equivalent of "straight to
 * a coreapp". Prints {"port": n} when listening.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { sdk } from "./sdk.js";

// tsx turns source-mapped stack traces on; the CLI runs without them, and every Error (undici makes
// one per closed connection) would cost a source-map lookup here that it does not cost in production.
process.setSourceMapsEnabled(false);

const app = sdk.createEchoApp({ name: "direct" });
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    void (async () => {
      const r = await app.handle({
        shard: 0,
        epoch: 0,
        method: req.method ?? "GET",
        path: req.url ?? "/",
        headers: req.headers as Record<string, string>,
        body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks),
      });
      const body = r.body === undefined ? Buffer.alloc(0) : typeof r.body === "string" ? Buffer.from(r.body) : r.body;
      res.writeHead(r.status, { ...(r.headers ?? {}), "content-length": body.byteLength });
      res.end(body);
    })();
  });
});
server.keepAliveTimeout = 65_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`));
process.on("SIGTERM", () => process.exit(0));
