import { createPool, type Pool, type PoolConnection, type PoolOptions } from "mysql2/promise";
import { closedStore, type ErrorContext, isDeadlock, isFatal, mapMysqlError, timedOut } from "./errors.js";

/** The server's now; constant within one statement, in UTC so no session time zone applies. */
export const NOW = "UTC_TIMESTAMP(6)";

/**
 * How often a fenced write that wrote nothing, and whose explanation read afterwards finds no
 * reason, is tried again. It happens only if the server's clock stepped back between the write and
 * its explanation (a lapsed master lease looked live again).
 */
export const UNEXPLAINED_RETRIES = 2;

/** Where and how to connect; resolved from `MysqlOptions` by the factory. */
export interface MysqlTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string | undefined;
  readonly password: string;
  readonly database: string;
  readonly ssl: PoolOptions["ssl"];
}

/** Timing and sizing; every value validated by the factory. */
export interface MysqlLimits {
  readonly operationTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly poolSize: number;
}

/** Runs one statement on the connection of the current operation and returns its rows or header. */
export type Sql = <R>(statement: string, values?: readonly unknown[]) => Promise<R>;

/** The handful of core-connection members we need beyond the typed promise API. */
interface CoreConnection {
  on(event: "error", listener: (error: unknown) => void): unknown;
  stream?: { destroy?: () => void };
}

/** How many times a statement rolled back by an InnoDB deadlock is run again within its deadline. */
const DEADLOCK_RETRIES = 5;

/**
 * One connection pool to the server plus the rules every call follows:
 * - a client-side deadline (`operationTimeoutMs`) covers waiting for a pooled connection, the
 *   connect handshake, session set-up and every statement of the operation, because mysql2 has no
 *   overall timeout and a blackholed socket would otherwise stall a lease renewal for minutes;
 * - a connection whose statement outlived the deadline stays out of the pool until that statement's
 *   late answer is in (its answer must never be read as the next caller's), then goes back; one still
 *   silent `operationTimeoutMs` after the deadline is destroyed (a cut link). Destroying every late
 *   connection at once, as this adapter first did, turned a slow store link into a reconnection
 *   storm: a new connection costs five round trips (TCP, the server's greeting, authentication, two
 *   session statements), so at a 600 ms round trip no new connection could finish one operation
 *   inside its 2 s deadline, and each timeout destroyed another (docs/reliability.md, store-delay);
 * - each session runs in READ COMMITTED (no gap locks, no stale REPEATABLE READ snapshot; every
 *   statement autocommits anyway) with server lock waits no longer than the client deadline;
 * - an InnoDB deadlock rolls the statement back whole, so the operation is simply run again.
 */
export class MysqlDb {
  /** `host:port` and the password to scrub, for error messages. */
  readonly ctx: ErrorContext;
  private readonly pool: Pool;
  private readonly prepared = new WeakSet<object>();
  private closed = false;
  private warmed = false;

  constructor(
    target: MysqlTarget,
    /** The validated table prefix. */
    readonly p: string,
    private readonly limits: MysqlLimits,
  ) {
    this.ctx = { where: `${target.host}:${target.port}`, password: target.password };
    this.pool = createPool({
      host: target.host,
      port: target.port,
      user: target.user,
      password: target.password,
      database: target.database,
      ssl: target.ssl,
      connectTimeout: limits.connectTimeoutMs,
      connectionLimit: limits.poolSize,
      maxIdle: limits.poolSize,
      enableKeepAlive: true,
      // Epochs stay far below 2^53; ages and remaining times are read as integer microseconds.
      supportBigNumbers: false,
    });
  }

  /**
   * Runs `work` on one pooled connection within `timeoutMs` (default: the operation timeout),
   * retrying it on deadlock. Driver errors are mapped; a missed deadline is a `StoreUnavailableError`.
   */
  async run<T>(work: (sql: Sql) => Promise<T>, timeoutMs = this.limits.operationTimeoutMs): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    this.warm();
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw closedStore(this.ctx);
      try {
        return await this.attempt(work, deadline - performance.now(), timeoutMs);
      } catch (error) {
        const backoffMs = 2 + Math.random() * 8 * (attempt + 1);
        if (isDeadlock(error) && attempt < DEADLOCK_RETRIES && performance.now() + backoffMs < deadline) {
          await new Promise((r) => setTimeout(r, backoffMs));
          continue;
        }
        throw mapMysqlError(error, this.ctx);
      }
    }
  }

  private attempt<T>(work: (sql: Sql) => Promise<T>, remainingMs: number, budgetMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let conn: PoolConnection | undefined;
      /** Set once the deadline passed with a statement in flight: the connection waits for its late answer. */
      let quarantine: NodeJS.Timeout | undefined;
      let cutOff = false;
      const timer = setTimeout(
        () => {
          settled = true;
          reject(timedOut(this.ctx, budgetMs));
          // A statement may be in flight: keep the connection out of the pool until its answer is in.
          const c = conn;
          if (c)
            quarantine = setTimeout(() => {
              cutOff = true;
              destroy(c);
            }, this.limits.operationTimeoutMs);
        },
        Math.max(0, remainingMs),
      );
      /** The operation's work on `conn` is over (nothing in flight): back to the pool, or closed if broken. */
      const done = (c: PoolConnection, error?: unknown) => {
        clearTimeout(quarantine);
        if (cutOff) return;
        if (error && isFatal(error)) destroy(c);
        else c.release();
      };

      const body = async () => {
        const c = await this.pool.getConnection();
        if (settled) {
          // We gave up while waiting for it; nothing was sent on it, so it is still good.
          c.release();
          return;
        }
        conn = c;
        await this.prepare(c);
        const sql: Sql = async <R>(statement: string, values?: readonly unknown[]) => {
          // The caller has given up: start nothing more on its behalf.
          if (settled) throw timedOut(this.ctx, budgetMs);
          return (await c.query(statement, values as unknown[] | undefined))[0] as R;
        };
        const result = await work(sql);
        done(c);
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      body().catch((error: unknown) => {
        if (conn) done(conn, error);
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  /**
   * Opens and prepares the pool's `poolSize` connections in the background, once, on the first
   * operation; the pool keeps them (its idle limit is its size). At quiet times one connection
   * serves every operation, so without this the others would be opened only when operations start
   * to overlap — which is when the store link is slow, and a new connection costs five round trips:
   * on the multi-host bed's 600 ms link the first renewal that needed one missed the lease's
   * confirmation deadline (docs/reliability.md, store-delay). The cost is `poolSize` server
   * connections per node, held open (docs/configuration.md).
   */
  private warm(): void {
    if (this.warmed) return;
    this.warmed = true;
    for (let i = 0; i < this.limits.poolSize; i++) {
      void this.pool.getConnection().then(
        (c) =>
          this.prepare(c).then(
            () => c.release(),
            () => destroy(c),
          ),
        () => {}, // the operation that needs a connection reports the failure
      );
    }
  }

  /** Session settings, once per physical connection, before its first statement. */
  private async prepare(c: PoolConnection): Promise<void> {
    const core = c.connection as unknown as CoreConnection;
    if (this.prepared.has(core)) return;
    // mysql2 emits a connection's later failures as events; without a listener one would crash the process.
    core.on("error", () => {});
    const lockWaitS = Math.max(1, Math.ceil(this.limits.operationTimeoutMs / 1000));
    await c.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
    await c.query(
      `SET SESSION innodb_lock_wait_timeout = ${lockWaitS}, lock_wait_timeout = ${lockWaitS},
         sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'`,
    );
    this.prepared.add(core);
  }

  /**
   * Closes the pool. A connection stuck in its handshake ends only at its connect timeout, so the
   * wait is bounded by that and whatever remains is cut off.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.pool.end().catch(() => {}),
      new Promise<void>((r) => {
        timer = setTimeout(r, this.limits.connectTimeoutMs + 100);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }
}

/** Takes a connection out of the pool and closes its socket at once (mysql2's destroy() only half-closes). */
function destroy(c: PoolConnection): void {
  c.destroy();
  (c.connection as unknown as CoreConnection).stream?.destroy?.();
}
