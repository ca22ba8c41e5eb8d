import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, openSync, rmSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { freePort } from "../test/support/process-cluster.js";

/** Where a networked store listens. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/**
 * A store server of the harness's own (for the "store restarted" and "store paused" scenarios):
 * never the shared one, which other people's tests use. `kill9()` then `start()` restarts it on the
 * same port and data.
 */
export interface PrivateServer {
  readonly endpoint: Endpoint;
  /** The server process's pid, null while it is not running (the pause scenarios SIGSTOP it). */
  readonly pid: number | null;
  kill9(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** One backend as the harness drives it. */
export interface Backend {
  readonly name: "sqlite" | "postgres" | "mysql" | "redis" | "etcd";
  /** The shared server (null for SQLite, which has no network link to cut). */
  readonly shared: Endpoint | null;
  /** The config's `store:` section for namespace `ns`, dialling `via` (a proxy, or the server). */
  store(ns: string, via: Endpoint | null, dir: string): Record<string, unknown>;
  /** Starts a private server of this backend in `dir`, when the backend can restart one here. */
  privateServer?(dir: string): Promise<PrivateServer>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export { freePort };

/** True once `port` accepts a TCP connection. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true)).once("error", () => done(false));
    setTimeout(() => done(false), 500).unref();
  });
}

async function waitAccepting(port: number, what: string, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (await accepts(port)) return;
  throw new Error(`${what} on port ${port} did not start`);
}

/** A child process the harness can kill -9 and start again with the same arguments. */
function restartable(endpoint: Endpoint, what: string, cmd: string, args: string[], log: string, data?: string): PrivateServer {
  let child: ChildProcess | null = null;
  const kill = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGKILL");
    await exited;
  };
  return {
    endpoint,
    get pid() {
      return child?.pid ?? null;
    },
    kill9: kill,
    // The data directory goes with the server (etcd preallocates 64 MB of WAL per run); the log stays.
    async stop() {
      await kill();
      if (data) rmSync(data, { recursive: true, force: true });
    },
    async start() {
      const out = openSync(log, "a");
      child = spawn(cmd, args, { stdio: ["ignore", out, out] });
      await waitAccepting(endpoint.port, what);
    },
  };
}

const local = (port: number): Endpoint => ({ host: "127.0.0.1", port });

/** The five backends, on this machine's shared servers (see scripts/services.sh). */
export const BACKENDS: Record<Backend["name"], Backend> = {
  sqlite: {
    name: "sqlite",
    shared: null,
    store: (ns, _via, dir) => ({ backend: "sqlite", path: join(dir, `${ns}.db`) }),
  },
  postgres: {
    name: "postgres",
    shared: local(5432),
    store: (ns, via) => ({ backend: "postgres", host: via!.host, port: via!.port, user: "postgres", database: "test", table_prefix: ns }),
  },
  mysql: {
    name: "mysql",
    shared: local(3306),
    store: (ns, via) => ({ backend: "mysql", host: via!.host, port: via!.port, user: "root", database: "test", table_prefix: ns }),
  },
  redis: {
    name: "redis",
    shared: local(6379),
    store: (ns, via) => ({ backend: "redis", host: via!.host, port: via!.port, key_prefix: `mc:${ns}` }),
    async privateServer(dir) {
      const port = await freePort();
      // Like the shared server: nothing kept on disk, so a restart loses every key (the hard case).
      const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir];
      const s = restartable(local(port), "redis-server", "redis-server", args, join(dir, "redis.log"));
      await s.start();
      return s;
    },
  },
  etcd: {
    name: "etcd",
    shared: local(2379),
    store: (ns, via) => ({ backend: "etcd", hosts: `http://${via!.host}:${via!.port}`, key_prefix: `mc/${ns}/` }),
    async privateServer(dir) {
      const [client, peer] = [await freePort(), await freePort()];
      const data = join(dir, "etcd-data");
      mkdirSync(data, { recursive: true });
      const c = `http://127.0.0.1:${client}`;
      const p = `http://127.0.0.1:${peer}`;
      const args = ["--name", "chaos", "--data-dir", data, "--listen-client-urls", c, "--advertise-client-urls", c,
        "--listen-peer-urls", p, "--initial-advertise-peer-urls", p, "--initial-cluster", `chaos=${p}`];
      const s = restartable(local(client), "etcd", "etcd", args, join(dir, "etcd.log"), data);
      await s.start();
      return s;
    },
  },
};
