import Database from "better-sqlite3";
import { bootId, storeNowMs } from "./clock.js";
import { SchemaTooNewError, StoreUnavailableError } from "../../core/errors.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import { ownedNames } from "../prefix-owned.js";
import { mapSqliteError } from "./errors.js";
import { SCHEMA_VERSION, schemaSql } from "./schema.js";

type Sql = Database.Database;

/** How long opening and migrating wait for another process's lock (one-off steps at start). */
const OPEN_BUSY_TIMEOUT_MS = 5000;

/**
 * One SQLite database file shared by the processes of one machine (WAL mode). better-sqlite3 is
 * synchronous: a write that waits for another process's lock blocks this process's event loop, so
 * the busy timeout is kept short (`busyTimeoutMs`, default 25 ms; transactions here take µs) and a
 * busy database surfaces as a retryable `StoreUnavailableError` instead of a stalled node.
 */
export class SqliteDb {
  private readonly sql: Sql;
  private closed = false;

  constructor(
    readonly file: string,
    /** The validated table prefix. */
    readonly p: string,
    private readonly busyTimeoutMs: number,
  ) {
    this.sql = this.open();
  }

  /**
   * Opens a connection in WAL mode. The nodes of a machine start together, and switching a new file
   * to WAL takes it for a moment to one connection: SQLite answers another connection that tries at
   * the same moment SQLITE_BUSY *without* waiting when waiting could deadlock (two connections each
   * holding a shared lock and wanting the exclusive one). So a busy open is retried, with a short
   * jittered pause, for up to `OPEN_BUSY_TIMEOUT_MS`. Found by the chaos harness: about one sqlite
   * cluster start in sixty had a node exit at start with SQLITE_BUSY.
   */
  private open(): Sql {
    const giveUp = performance.now() + OPEN_BUSY_TIMEOUT_MS;
    for (;;) {
      let sql: Sql | null = null;
      try {
        sql = new Database(this.file);
        sql.pragma(`busy_timeout = ${OPEN_BUSY_TIMEOUT_MS}`);
        sql.pragma("journal_mode = WAL");
        sql.pragma("synchronous = NORMAL");
        sql.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
        return sql;
      } catch (error) {
        sql?.close();
        const mapped = mapSqliteError(error, this.file);
        if (!(mapped instanceof StoreUnavailableError) || performance.now() > giveUp) throw mapped;
        // Synchronous: this runs in a constructor at start, or once when a watch opens.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5 + Math.random() * 20);
      }
    }
  }

  /** Another connection to the same file (a watcher's, so it sees this process's commits too). */
  openSecondConnection(): Sql {
    return this.open();
  }

  /** Runs `fn` and maps SQLite errors. */
  guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw mapSqliteError(error, this.file);
    }
  }

  /** A read with the store's now. */
  async read<T>(fn: (sql: Sql, now: number) => T): Promise<T> {
    return this.guard(() => fn(this.sql, storeNowMs()));
  }

  /** A read-check-write in one `BEGIN IMMEDIATE` transaction, with the store's now taken inside it. */
  async write<T>(fn: (sql: Sql, now: number) => T): Promise<T> {
    return this.guard(() => this.sql.transaction(() => fn(this.sql, storeNowMs())).immediate());
  }

  /**
   * A `write` fenced by the master lease (S3): `fn` runs only while `master` is the live master
   * lease, checked inside the same transaction; "fenced", with nothing written, otherwise.
   */
  async writeAsMaster<T>(master: Lease, fn: (sql: Sql, now: number) => T): Promise<T | "fenced"> {
    return this.write((sql, now) => {
      const fence = sql
        .prepare(`SELECT 1 FROM ${this.p}leases WHERE name = ? AND holder = ? AND epoch = ? AND expires_at > ?`)
        .get(MASTER_LEASE, master.holder, master.epoch, now);
      return fence ? fn(sql, now) : "fenced";
    });
  }

  /**
   * Refuses a schema recorded by a newer SDK before anything is written (its tables may mean
   * something this version does not know). A file without our tables passes.
   */
  private refuseNewerSchema(): void {
    const found = this.recordedVersion() ?? 0;
    if (!(found <= SCHEMA_VERSION)) throw new SchemaTooNewError(`sqlite ${this.file} (tables "${this.p}*")`, found, SCHEMA_VERSION);
  }

  /** The recorded schema version; null without our tables (0 for tables without a version row). */
  recordedVersion(): number | null {
    return this.guard(() => {
      const exists = this.sql.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(`${this.p}meta`);
      if (!exists) return null;
      const row = this.sql.prepare(`SELECT value FROM ${this.p}meta WHERE key = 'schema_version'`).get() as { value: string } | undefined;
      return row ? Number(row.value) : 0;
    });
  }

  /**
   * Creates the schema (refusing a newer one), and after a reboot of this machine forgets every lease expiry and liveness
   * stamp taken on the old boot's monotonic clock (they are all in the past). Epochs are kept.
   */
  async migrate(): Promise<void> {
    const previousBusy = this.busyTimeoutMs;
    this.sql.pragma(`busy_timeout = ${OPEN_BUSY_TIMEOUT_MS}`); // several nodes may start at once; this is one-off
    try {
      this.guard(() => {
        this.refuseNewerSchema();
        this.sql.exec(schemaSql(this.p));
        this.sql
          .transaction(() => {
            // Again inside the write lock: a newer node may have migrated since the first look.
            this.refuseNewerSchema();
            const boot = bootId();
            const row = this.sql.prepare(`SELECT value FROM ${this.p}meta WHERE key = 'boot_id'`).get() as { value: string } | undefined;
            if (row && row.value !== boot) {
              this.sql.prepare(`UPDATE ${this.p}leases SET holder = NULL, expires_at = 0`).run();
              this.sql.prepare(`UPDATE ${this.p}nodes SET seen_at = -1e12`).run();
            }
            const put = this.sql.prepare(
              `INSERT INTO ${this.p}meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
            );
            put.run("boot_id", boot);
            put.run("schema_version", String(SCHEMA_VERSION)); // not newer: checked above, under the lock
          })
          .immediate();
      });
    } finally {
      this.sql.pragma(`busy_timeout = ${previousBusy}`);
    }
  }

  /** See `Store.purge()`: drops every table of the prefix in one transaction. */
  purge(): string[] {
    return this.guard(() =>
      this.sql
        .transaction(() => {
          const all = this.sql.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
          const mine = ownedNames(
            all.map((r) => r.name),
            this.p,
            ["meta", "leases"],
          );
          for (const name of mine) this.sql.exec(`DROP TABLE "${name.replaceAll('"', '""')}"`);
          return mine;
        })
        .immediate(),
    );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sql.close();
  }
}
