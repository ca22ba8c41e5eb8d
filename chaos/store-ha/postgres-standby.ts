import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort, fromTemplate, postgresBin, postgresUser, run, type Endpoint, type PrivateServer } from "../backends.js";
import { StoreProcess, until } from "./process.js";

/** The `application_name` the standby connects with, as named in `synchronous_standby_names`. */
const STANDBY_NAME = "standby1";

/**
 * A PostgreSQL primary and one streaming standby (pg_basebackup) of the harness's own. With
 * `synchronous` the primary lists the standby in `synchronous_standby_names` (what the adapter
 * requires when given several hosts, docs/configuration.md); without it the standby is
 * asynchronous, the setup the adapter must refuse at start.
 */
export class PostgresStandbyPair implements PrivateServer {
  readonly servers: StoreProcess[] = [];
  private readonly dataDirs: string[] = [];

  private constructor() {}

  static async start(dir: string, synchronous = true): Promise<PostgresStandbyPair> {
    const pair = new PostgresStandbyPair();
    const user = postgresUser();
    try {
      const [p, s] = [await freePort(), await freePort()];
      const primaryData = fromTemplate(
        "postgres",
        (d) => {
          run(postgresBin("initdb"), ["-D", d, "--auth=trust", "-U", "postgres", "--no-sync", "-E", "UTF8"], user);
          run(postgresBin("postgres"), ["--single", "-D", d, "postgres"], { ...user, input: "CREATE DATABASE test;\n" });
        },
        user,
      );
      pair.dataDirs.push(primaryData);
      const common = (port: number, data: string) => [
        ...["-D", data, "-p", String(port), "-k", data, "-c", "listen_addresses=127.0.0.1"],
        // fsync off: only whole-process kills here, never a machine crash.
        ...["-c", "fsync=off", "-c", "max_connections=100", "-c", "shared_buffers=16MB", "-c", "wal_level=replica"],
      ];
      pair.servers.push(
        new StoreProcess(
          "postgres primary",
          p,
          postgresBin("postgres"),
          [...common(p, primaryData), "-c", `synchronous_standby_names=${synchronous ? STANDBY_NAME : ""}`],
          join(dir, "postgres-primary.log"),
          user,
        ),
      );
      await pair.servers[0]!.start();
      // The port opens before recovery ends ("the database system is starting up").
      await until("the primary answering queries", async () => ((await pair.query(p, "SELECT 1")).length === 1 ? true : null));
      const standbyData = mkdtempSync(join(tmpdir(), "mc-chaos-pg-standby-"));
      chownSync(standbyData, user.uid, user.gid);
      pair.dataDirs.push(standbyData);
      run(
        postgresBin("pg_basebackup"),
        ["-h", "127.0.0.1", "-p", String(p), "-U", "postgres", "-D", standbyData, "-X", "stream", "-R"],
        user,
      );
      // The standby, once promoted, has no standby of its own: it must not wait for one.
      pair.servers.push(
        new StoreProcess(
          "postgres standby",
          s,
          postgresBin("postgres"),
          [
            ...common(s, standbyData),
            ...["-c", "synchronous_standby_names=", "-c", "hot_standby=on"],
            ...["-c", `primary_conninfo=host=127.0.0.1 port=${p} user=postgres application_name=${STANDBY_NAME}`],
          ],
          join(dir, "postgres-standby.log"),
          user,
        ),
      );
      await pair.servers[1]!.start();
      await until("the standby streaming", async () => {
        const rows = await pair.query(p, "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1", [STANDBY_NAME]);
        return rows.some((r) => r["sync_state"] === (synchronous ? "sync" : "async")) ? true : null;
      });
    } catch (error) {
      await pair.stop();
      throw error;
    }
    return pair;
  }

  get endpoint(): Endpoint {
    return { host: "127.0.0.1", port: this.servers[0]!.port };
  }

  get pid(): number | null {
    return null;
  }

  /** The config's `store:` section: both servers; the adapter finds the writable one. */
  storeSection(ns: string): Record<string, unknown> {
    return {
      backend: "postgres",
      hosts: this.servers.map((s) => `127.0.0.1:${s.port}`),
      user: "postgres",
      database: "test",
      table_prefix: ns,
    };
  }

  /** Kills the primary (every process of it) and promotes the standby; resolves once it is writable. */
  async failover(): Promise<void> {
    await this.servers[0]!.kill9();
    await this.query(this.servers[1]!.port, "SELECT pg_promote(true, 30)");
    await until("the promoted standby writable", async () => {
      const rows = await this.query(this.servers[1]!.port, "SELECT pg_is_in_recovery() AS r");
      return rows[0]?.["r"] === false ? true : null;
    });
  }

  async query(port: number, sql: string, values: unknown[] = []): Promise<Record<string, unknown>[]> {
    const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "test", connectionTimeoutMillis: 2000 });
    client.on("error", () => {});
    try {
      await client.connect();
      return (await client.query(sql, values)).rows as Record<string, unknown>[];
    } finally {
      await client.end().catch(() => {});
    }
  }

  async kill9(): Promise<void> {
    for (const s of this.servers) await s.kill9();
  }

  async start(): Promise<void> {
    throw new Error("a standby pair is started once, with PostgresStandbyPair.start()");
  }

  async stop(): Promise<void> {
    await this.kill9();
    for (const d of this.dataDirs) rmSync(d, { recursive: true, force: true });
  }
}
