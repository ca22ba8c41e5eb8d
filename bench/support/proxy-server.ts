/**
 * The Node proxy-library anchor of item 3: `http-proxy` with a keep-alive agent in front of the
 * plain echo server. Usage: proxy-server.ts <target port>. Prints {"port": n} when listening.
 */
import { Agent, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import httpProxy from "http-proxy";

// tsx turns source-mapped stack traces on; the CLI runs without them, and every Error (undici makes
// one per closed connection) would cost a source-map lookup here that it does not cost in production.
process.setSourceMapsEnabled(false);

const target = `http://127.0.0.1:${process.argv[2]}`;
const proxy = httpProxy.createProxyServer({ target, agent: new Agent({ keepAlive: true, maxSockets: 256 }) });
proxy.on("error", (_error, _req, res) => {
  if ("writeHead" in res && !res.headersSent) res.writeHead(502);
  res.end();
});
const server = createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 65_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`));
process.on("SIGTERM", () => process.exit(0));
