import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort, type Endpoint, type PrivateServer } from "../backends.js";
import { StoreProcess, until } from "./process.js";

/** The Sentinel master name the harness's sets use. */
export const SENTINEL_NAME = "mc";

/**
 * A Redis primary, one replica and three Sentinels of the harness's own. Like the shared server,
 * the data servers keep nothing on disk: a killed server comes back empty, and the replica that
 * Sentinel promotes holds only what replication had brought it (the hard case). Sentinel declares
 * a server down after 1 s (production uses 5–30 s; the short figure makes runs short).
 */
export class RedisSentinelSet implements PrivateServer {
  readonly servers: StoreProcess[] = [];
  readonly sentinels: StoreProcess[] = [];

  private constructor(private readonly dir: string) {}

  static async start(dir: string): Promise<RedisSentinelSet> {
    const s = new RedisSentinelSet(dir);
    try {
      const [a, b] = [await freePort(), await freePort()];
      s.servers.push(new StoreProcess("redis a", a, "redis-server", serverArgs(a, dir, null), join(dir, "redis-a.log")));
      s.servers.push(new StoreProcess("redis b", b, "redis-server", serverArgs(b, dir, a), join(dir, "redis-b.log")));
      for (const server of s.servers) await server.start();
      await until("the replica in sync", async () => ((await s.connectedReplicas(a)) >= 1 ? true : null));
      for (let i = 1; i <= 3; i++) {
        const port = await freePort();
        const file = join(dir, `sentinel-${i}.conf`);
        writeFileSync(
          file,
          [
            `port ${port}`,
            "bind 127.0.0.1",
            `dir ${dir}`,
            `sentinel monitor ${SENTINEL_NAME} 127.0.0.1 ${a} 2`,
            `sentinel down-after-milliseconds ${SENTINEL_NAME} 1000`,
            `sentinel failover-timeout ${SENTINEL_NAME} 4000`,
            `sentinel parallel-syncs ${SENTINEL_NAME} 1`,
            "",
          ].join("\n"),
        );
        s.sentinels.push(new StoreProcess(`sentinel ${i}`, port, "redis-server", [file, "--sentinel"], join(dir, `sentinel-${i}.log`)));
      }
      for (const sentinel of s.sentinels) await sentinel.start();
      await until("every sentinel to know the replica and the others", async () => {
        for (const sentinel of s.sentinels) {
          const master = await s.ask(sentinel.port, ["SENTINEL", "MASTER", SENTINEL_NAME]);
          const flat = master as string[];
          const field = (k: string) => Number(flat[flat.indexOf(k) + 1]);
          if (field("num-slaves") < 1 || field("num-other-sentinels") < 2) return null;
        }
        return true;
      });
    } catch (error) {
      await s.stop();
      throw error;
    }
    return s;
  }

  get endpoint(): Endpoint {
    return { host: "127.0.0.1", port: this.servers[0]!.port };
  }

  get pid(): number | null {
    return null;
  }

  /** The config's `store:` section: the three Sentinels and the master name, never a server. */
  storeSection(ns: string): Record<string, unknown> {
    return {
      backend: "redis",
      sentinels: this.sentinels.map((s) => `127.0.0.1:${s.port}`),
      sentinel_name: SENTINEL_NAME,
      key_prefix: `mc:${ns}`,
    };
  }

  /** The data server the Sentinels name as primary now (asked of the first one that answers). */
  async primary(): Promise<StoreProcess> {
    for (const sentinel of this.sentinels) {
      if (!sentinel.running) continue;
      const addr = (await this.ask(sentinel.port, ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_NAME]).catch(() => null)) as
        string[] | null;
      const server = this.servers.find((x) => String(x.port) === addr?.[1]);
      if (server) return server;
    }
    throw new Error("no sentinel names a primary");
  }

  /** Waits until the Sentinels name a primary other than `old` that says it is one. */
  async waitNewPrimary(old: StoreProcess, ms = 20_000): Promise<StoreProcess> {
    return until(
      `a primary other than ${old.name}`,
      async () => {
        const p = await this.primary();
        if (p === old) return null;
        const role = (await this.ask(p.port, ["ROLE"])) as unknown[];
        return role[0] === "master" ? p : null;
      },
      ms,
    );
  }

  /** Restarts a killed data server as a replica of the current primary (it comes back empty). */
  async restartAsReplica(server: StoreProcess): Promise<void> {
    const primary = await this.primary();
    await server.start(serverArgs(server.port, this.dir, primary.port));
    await until(`${server.name} in sync with ${primary.name}`, async () =>
      (await this.connectedReplicas(primary.port)) >= 1 ? true : null,
    );
  }

  /** `SENTINEL FAILOVER`: a failover forced without agreement, as an operator would. */
  async forceFailover(): Promise<void> {
    const sentinel = this.sentinels.find((s) => s.running)!;
    await this.ask(sentinel.port, ["SENTINEL", "FAILOVER", SENTINEL_NAME]);
  }

  /** Replicas the server on `port` sees online. */
  async connectedReplicas(port: number): Promise<number> {
    const info = String(await this.ask(port, ["INFO", "replication"]));
    return (info.match(/^slave\d+:.*state=online/gm) ?? []).length;
  }

  /** One command on a short-lived connection. */
  async ask(port: number, command: string[]): Promise<unknown> {
    const client = new Redis({
      host: "127.0.0.1",
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      commandTimeout: 1000,
      retryStrategy: () => null,
    });
    client.on("error", () => {});
    try {
      await client.connect();
      return await client.call(command[0]!, ...command.slice(1));
    } finally {
      client.disconnect();
    }
  }

  async kill9(): Promise<void> {
    for (const p of [...this.sentinels, ...this.servers]) await p.kill9();
  }

  async start(): Promise<void> {
    throw new Error("a Sentinel set is started once, with RedisSentinelSet.start()");
  }

  async stop(): Promise<void> {
    await this.kill9();
  }
}

/** A data server: no persistence, as the shared server; a replica of `primary` when given. */
function serverArgs(port: number, dir: string, primary: number | null): string[] {
  return [
    ...["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    ...["--dbfilename", `dump-${port}.rdb`],
    ...(primary === null ? [] : ["--replicaof", "127.0.0.1", String(primary)]),
  ];
}
