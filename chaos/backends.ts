import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../src/testing/net.js";
import { signalServer } from "./cluster.js";

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
  /**
   * The server's process group as a negative pid, null while it is not running. Signal it with
   * `signalServer` (chaos/cluster.ts) to reach every process of the server: PostgreSQL's backends
   * leave the group. The pause scenarios SIGSTOP it so.
   */
  readonly pid: number | null;
  kill9(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * A replicated store (chaos/store-ha) dials several servers, not one endpoint: the config's
   * `store:` section for namespace `ns`, used instead of `Backend.store()` and without store proxies.
   */
  storeSection?(ns: string): Record<string, unknown>;
}

/** One backend as the harness drives it. */
export interface Backend {
  readonly name: "sqlite" | "postgres" | "mysql" | "redis" | "etcd" | "etcd-cluster" | "redis-sentinel" | "postgres-standby";
  /** The shared server (null for SQLite, which has no network link to cut). */
  readonly shared: Endpoint | null;
  /** The config's `store:` section for namespace `ns`, dialling `via` (a proxy, or the server). */
  store(ns: string, via: Endpoint | null, dir: string): Record<string, unknown>;
  /**
   * Starts a private server of this backend in `dir`, when the backend can restart one here. With
   * `tls`, the server speaks only TLS with that certificate and key, and asks clients for a
   * certificate from `tls.ca` where the backend supports it (the TLS tests).
   */
  privateServer?(dir: string, tls?: ServerTlsFiles): Promise<PrivateServer>;
}

/** A TLS server's PEM files: its certificate and key, and the CA its clients' certificates must chain to. */
export interface ServerTlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
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

export async function waitAccepting(port: number, what: string, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (await accepts(port)) return;
  throw new Error(`${what} on port ${port} did not start`);
}

/** How a private server runs: its command line, and where its data lives. */
interface ServerSpec {
  readonly cmd: string;
  readonly args: readonly string[];
  readonly log: string;
  /** Removed with the server (the log stays, in the run's directory). */
  readonly data?: string;
  /** Run as this user (PostgreSQL refuses to run as root). */
  readonly user?: { readonly uid: number; readonly gid: number };
}

/**
 * A server the harness can kill -9 and start again with the same arguments. It runs in a process
 * group of its own, and kill -9 and pauses hit every process of it (`signalServer`): a store that
 * crashes or stops takes all its processes with it (PostgreSQL's backends outlive a killed
 * postmaster otherwise, and a new postmaster would refuse their shared memory).
 */
function restartable(endpoint: Endpoint, what: string, spec: ServerSpec): PrivateServer {
  let child: ChildProcess | null = null;
  const kill = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    signalServer(-c.pid!, "SIGKILL");
    await exited;
    await sleep(50); // let the other processes go before a restart binds the same port
  };
  return {
    endpoint,
    get pid() {
      return child?.pid ? -child.pid : null;
    },
    kill9: kill,
    async stop() {
      await kill();
      if (spec.data) rmSync(spec.data, { recursive: true, force: true });
    },
    async start() {
      const out = openSync(spec.log, "a");
      child = spawn(spec.cmd, [...spec.args], { stdio: ["ignore", out, out], detached: true, ...spec.user });
      await waitAccepting(endpoint.port, what);
    },
  };
}

/**
 * A data directory for one run, copied from a template made once per machine with `make(dir)` (an
 * initdb takes seconds; a copy, a fraction of one). Concurrent runs may both make the template: the
 * first rename wins and the other copy is dropped.
 */
export function fromTemplate(name: string, make: (dir: string) => void, owner?: { uid: number; gid: number }): string {
  const template = join(tmpdir(), `mc-chaos-template-${name}`);
  if (!existsSync(template)) {
    const fresh = mkdtempSync(join(tmpdir(), `mc-chaos-template-${name}-`));
    if (owner) chownSync(fresh, owner.uid, owner.gid);
    make(fresh);
    try {
      renameSync(fresh, template);
    } catch {
      rmSync(fresh, { recursive: true, force: true });
    }
  }
  const dir = mkdtempSync(join(tmpdir(), `mc-chaos-${name}-`));
  const copy = spawnSync("cp", ["-a", `${template}/.`, dir]);
  if (copy.status !== 0) throw new Error(`copying the ${name} template failed: ${copy.stderr.toString()}`);
  if (owner) chownSync(dir, owner.uid, owner.gid);
  return dir;
}

/** Runs a setup command, throwing with its output when it fails. */
export function run(cmd: string, args: string[], options: { input?: string; uid?: number; gid?: number } = {}): void {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...options });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.error?.message ?? ""}${r.stderr}${r.stdout}`);
}

/** PostgreSQL's server binaries (Debian keeps them out of PATH, one directory per major version). */
export function postgresBin(tool: string): string {
  const versions = existsSync("/usr/lib/postgresql") ? readdirSync("/usr/lib/postgresql").sort() : [];
  if (versions.length === 0) throw new Error("PostgreSQL's server binaries are not installed (/usr/lib/postgresql)");
  return join("/usr/lib/postgresql", versions.at(-1)!, "bin", tool);
}

export function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
  const user = { uid: id("-u"), gid: id("-g") };
  if (!Number.isInteger(user.uid) || !Number.isInteger(user.gid)) throw new Error("no postgres system user to run a private PostgreSQL as");
  return user;
}

/**
 * Server options for PostgreSQL over TLS only: copies of the files inside the data directory
 * (PostgreSQL runs as its own user and refuses a key that others can read), and an hba file that
 * admits TCP clients only over TLS with a certificate from the CA.
 */
function postgresTls(data: string, tls: ServerTlsFiles, owner: { uid: number; gid: number }): string[] {
  const at = join(data, "tls");
  mkdirSync(at);
  const copies = { cert: join(at, "server.crt"), key: join(at, "server.key"), ca: join(at, "ca.crt"), hba: join(at, "pg_hba.conf") };
  copyFileSync(tls.cert, copies.cert);
  copyFileSync(tls.key, copies.key);
  copyFileSync(tls.ca, copies.ca);
  writeFileSync(copies.hba, "local all all trust\nhostssl all all 127.0.0.1/32 trust clientcert=verify-ca\n");
  for (const file of [at, ...Object.values(copies)]) chownSync(file, owner.uid, owner.gid);
  chmodSync(copies.key, 0o600);
  return [
    "-c",
    "ssl=on",
    "-c",
    `ssl_cert_file=${copies.cert}`,
    "-c",
    `ssl_key_file=${copies.key}`,
    "-c",
    `ssl_ca_file=${copies.ca}`,
    "-c",
    `hba_file=${copies.hba}`,
  ];
}

const local = (port: number): Endpoint => ({ host: "127.0.0.1", port });

/** The five backends, on this machine's shared servers (see scripts/services.sh). */
export const BACKENDS: Record<"sqlite" | "postgres" | "mysql" | "redis" | "etcd", Backend> = {
  sqlite: {
    name: "sqlite",
    shared: null,
    store: (ns, _via, dir) => ({ backend: "sqlite", path: join(dir, `${ns}.db`) }),
  },
  postgres: {
    name: "postgres",
    shared: local(5432),
    store: (ns, via) => ({ backend: "postgres", host: via!.host, port: via!.port, user: "postgres", database: "test", table_prefix: ns }),
    async privateServer(dir, tls) {
      const port = await freePort();
      const user = postgresUser();
      const data = fromTemplate(
        "postgres",
        (d) => {
          run(postgresBin("initdb"), ["-D", d, "--auth=trust", "-U", "postgres", "--no-sync", "-E", "UTF8"], user);
          run(postgresBin("postgres"), ["--single", "-D", d, "postgres"], { ...user, input: "CREATE DATABASE test;\n" });
        },
        user,
      );
      // fsync off: a killed server process loses nothing the kernel already has, and runs start faster.
      const args = [
        "-D",
        data,
        "-p",
        String(port),
        "-k",
        data,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=200",
        "-c",
        "shared_buffers=16MB",
        ...(tls ? postgresTls(data, tls, user) : []),
      ];
      const s = restartable(local(port), "postgres", { cmd: postgresBin("postgres"), args, log: join(dir, "postgres.log"), data, user });
      await s.start();
      return s;
    },
  },
  mysql: {
    name: "mysql",
    shared: local(3306),
    store: (ns, via) => ({ backend: "mysql", host: via!.host, port: via!.port, user: "root", database: "test", table_prefix: ns }),
    async privateServer(dir, tls) {
      const port = await freePort();
      const innodb = ["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M"];
      const data = fromTemplate("mariadb", (d) =>
        run("mariadb-install-db", [
          "--no-defaults",
          `--datadir=${d}`,
          "--user=root",
          "--auth-root-authentication-method=normal",
          ...innodb,
        ]),
      );
      // No grant tables: root without a password from 127.0.0.1, as on the shared server.
      const args = [
        "--no-defaults",
        `--datadir=${data}`,
        `--port=${port}`,
        "--bind-address=127.0.0.1",
        `--socket=${join(data, "mysqld.sock")}`,
        `--pid-file=${join(data, "mysqld.pid")}`,
        "--user=root",
        "--skip-grant-tables",
        "--skip-name-resolve",
        "--skip-log-bin",
        ...innodb,
        // Without grant tables no account can demand a client certificate; TLS itself is required.
        ...(tls ? [`--ssl-cert=${tls.cert}`, `--ssl-key=${tls.key}`, `--ssl-ca=${tls.ca}`, "--require-secure-transport=ON"] : []),
      ];
      const s = restartable(local(port), "mariadbd", { cmd: "mariadbd", args, log: join(dir, "mariadb.log"), data });
      await s.start();
      return s;
    },
  },
  redis: {
    name: "redis",
    shared: local(6379),
    store: (ns, via) => ({ backend: "redis", host: via!.host, port: via!.port, key_prefix: `mc:${ns}` }),
    async privateServer(dir) {
      const port = await freePort();
      // Like the shared server: nothing kept on disk, so a restart loses every key (the hard case).
      const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir];
      const s = restartable(local(port), "redis-server", { cmd: "redis-server", args, log: join(dir, "redis.log") });
      await s.start();
      return s;
    },
  },
  etcd: {
    name: "etcd",
    shared: local(2379),
    store: (ns, via) => ({ backend: "etcd", hosts: `http://${via!.host}:${via!.port}`, key_prefix: `mc/${ns}/` }),
    async privateServer(dir, tls) {
      const [client, peer] = [await freePort(), await freePort()];
      const data = join(dir, "etcd-data");
      mkdirSync(data, { recursive: true });
      const c = `${tls ? "https" : "http"}://127.0.0.1:${client}`;
      const p = `http://127.0.0.1:${peer}`;
      const args = [
        "--name",
        "chaos",
        "--data-dir",
        data,
        "--listen-client-urls",
        c,
        "--advertise-client-urls",
        c,
        "--listen-peer-urls",
        p,
        "--initial-advertise-peer-urls",
        p,
        "--initial-cluster",
        `chaos=${p}`,
        ...(tls ? ["--cert-file", tls.cert, "--key-file", tls.key, "--trusted-ca-file", tls.ca, "--client-cert-auth"] : []),
      ];
      // The data directory goes with the server (etcd preallocates 64 MB of WAL per run).
      const s = restartable(local(client), "etcd", { cmd: "etcd", args, log: join(dir, "etcd.log"), data });
      await s.start();
      return s;
    },
  },
};
