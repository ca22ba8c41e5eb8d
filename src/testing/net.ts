import { readFileSync } from "node:fs";
import net from "node:net";

/**
 * A TCP listener that accepts connections and never answers: the shape of a store behind a dead
 * route or a frozen server. Used to prove that no store call hangs past its timeout.
 */
export async function startBlackhole(): Promise<{ host: string; port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    host: "127.0.0.1",
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port on loopback where nothing listens (connections are refused). */
export async function refusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A short random name for per-test namespaces (table prefixes, key prefixes). */
export function randomNamespace(prefix = "t"): string {
  return `${prefix}${Math.random().toString(36).slice(2, 10)}`;
}

/** The lowest port `freePort` hands out; `handedOut` keeps one process from handing a port out twice. */
const PORT_FLOOR = 10_000;
const handedOut = new Set<number>();

/**
 * A port for a node to listen on soon. Not port 0: the kernel picks that from its ephemeral range,
 * and it stays free only until some process's *outgoing* connection takes it as its local port —
 * with two chaos clusters on one machine, a node then failed to start with EADDRINUSE. Ports below
 * that range are never given to outgoing connections; a random one that binds now is free unless
 * another process picks the same one in the same instant.
 */
export async function freePort(): Promise<number> {
  const below = ephemeralLow();
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = PORT_FLOOR + Math.floor(Math.random() * (below - PORT_FLOOR));
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port between ${PORT_FLOOR} and ${below}`);
}

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > PORT_FLOOR + 1000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}
