import { createPool, type Pool, type PoolConnection, type PoolOptions } from "mysql2/promise";
import { closedStore, type ErrorContext, isDeadlock, isFatal, mapMysqlError, timedOut } from "./errors.js";

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
 * - a connection whose statement outlived the deadline is destroyed, never returned to the pool:
 *   its late answer would otherwise be read as the answer to the next caller's statement;
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
      const timer = setTimeout(
        () => {
          settled = true;
          // A statement may be in flight: its answer must never reach the pool's next user.
          if (conn) destroy(conn);
          reject(timedOut(this.ctx, budgetMs));
        },
        Math.max(0, remainingMs),
      );

      const body = async () => {
        const c = await this.pool.getConnection();
        if (settled) {
          // We gave up while waiting for it; nothing was sent on it, so it is still good.
          c.release();
          return;
        }
        conn = c;
        await this.prepare(c);
        const sql: Sql = async <R>(statement: string, values?: readonly unknown[]) =>
          (await c.query(statement, values as unknown[] | undefined))[0] as R;
        const result = await work(sql);
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        c.release();
        resolve(result);
      };
      body().catch((error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (conn) {
          if (isFatal(error)) destroy(conn);
          else conn.release();
        }
        reject(error);
      });
    });
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
