/**
 * The floor anchor of item 3: a Node process that copies bytes between each client connection and
 * its own connection to the plain echo server, with no HTTP parsing and no authentication. What it
 * adds is what any hop through a Node process pays at the least (two wake-ups, a read and a write
 * each way); the rest of what a proxy adds is its own work. Usage: tcp-pipe.ts <target port>.
 * Prints {"port": n} when listening.
 */
import { connect, createServer, type AddressInfo } from "node:net";

const target = Number(process.argv[2]);
const server = createServer((down) => {
  const up = connect(target, "127.0.0.1");
  down.setNoDelay(true);
  up.setNoDelay(true);
  // No pipe(): its backpressure bookkeeping is more work than the copy; requests are small.
  down.on("data", (d: Buffer) => up.write(d));
  up.on("data", (d: Buffer) => down.write(d));
  down.on("close", () => up.destroy());
  up.on("close", () => down.destroy());
  down.on("error", () => up.destroy());
  up.on("error", () => down.destroy());
});
server.listen(0, "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`));
process.on("SIGTERM", () => process.exit(0));
