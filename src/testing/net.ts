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
