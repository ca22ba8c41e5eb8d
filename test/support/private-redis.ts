import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "mc-redis-"));
const running = new Set<ChildProcess>();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TLS redis-server's PEM files: its certificate and key, and the CA clients' certificates must chain to. */
export interface RedisTlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/**
 * Starts a private redis-server (never the shared one) that keeps nothing on disk, on `port`, and
 * waits until it accepts connections. Tests kill, restart and shut these down at will. With `tls`,
 * `port` is a TLS port (the plain one is off) and clients must show a certificate from `tls.ca`.
 */
export async function startPrivateRedis(port: number, extra: string[] = [], tls?: RedisTlsFiles): Promise<ChildProcess> {
  const listen = tls
    ? [
        "--port",
        "0",
        "--tls-port",
        String(port),
        "--tls-cert-file",
        tls.cert,
        "--tls-key-file",
        tls.key,
        "--tls-ca-cert-file",
        tls.ca,
        "--tls-auth-clients",
        "yes",
      ]
    : ["--port", String(port)];
  const child = spawn("redis-server", [...listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...extra], {
    stdio: "ignore",
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  for (let i = 0; i < 100; i++) {
    if (await accepts(port)) return child;
    await sleep(50);
  }
  throw new Error(`setup: redis-server on port ${port} did not start`);
}

/** kill -9 of every private server still running, waiting for each to exit. */
export async function killPrivateRedises(): Promise<void> {
  await Promise.all([...running].map(kill9));
}

/** kill -9 of one process, resolving when it has exited. */
export function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => resolve(true)).once("error", () => resolve(false));
    socket.once("close", () => socket.destroy());
    socket.unref();
    setTimeout(() => socket.end(), 100).unref();
  });
}
