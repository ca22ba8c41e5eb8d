import { performance } from "node:perf_hooks";
import pg from "pg";
import { StoreConfigurationError, StoreUnavailableError } from "../../core/errors.js";
import { closedError, deadlineError, describeTarget, isUnreplicatedCommit, mapPgError, type PgTarget } from "./errors.js";

/** What `PgDb` needs, already validated by `PostgresStore`. */
export interface PgDbSettings {
  /** Where and how to connect, as node-postgres takes it (URL or fields, `ssl`). */
  readonly connection: pg.ClientConfig;
  /** The validated table prefix. */
  readonly prefix: string;
  readonly operationTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly poolSize: number;
  /**
   * Several servers (a primary and its standbys): the pool dials the one that is writable, found
   * before the first call and again after any failed call. Unset: `connection` names the server.
   */
  readonly hosts?: readonly PgHost[];
}

/** One server of a multi-host setting. */
export interface PgHost {
  readonly host: string;
  readonly port: number;
}

/**
 * The `application_name` of this store's connections, so that `pg_stat_activity` tells clusters
 * (and their LISTEN connections) apart for an operator.
 */
export function applicationName(prefix: string, listen = false): string {
  return `multiconnect/${prefix}${listen ? "/listen" : ""}`;
}

/**
 * A connection pool with every timeout set. node-postgres sets none by default, so a blackholed
 * server would stall a lease renewal for minutes; here each call has three bounds:
 * - the server cancels any statement after `operationTimeoutMs` (`statement_timeout`,
 *   `lock_timeout`) and aborts a transaction left idle by a vanished client;
 * - the driver gives up on a silent reply (`query_timeout`) or a hung connect
 *   (`connectionTimeoutMillis`), and TCP keep-alive reaps dead idle sockets;
 * - and because a call may need a connect *and* a query, each call also runs under one client-side
 *   deadline of `operationTimeoutMs` in all, measured on the monotonic clock.
 */
export class PgDb {
  /** The validated table prefix. */
  readonly p: string;
  readonly target: PgTarget;
  readonly operationTimeoutMs: number;
  private config: pg.ClientConfig;
  private pool: pg.Pool;
  private closed = false;
  private readonly poolSize: number;
  private readonly hosts: readonly PgHost[] | null;
  /** Multi-host: the writable server must be found (again) before the next call. */
  private stale = true;
  private finding: Promise<void> | null = null;
  /** The pool whose connections were opened ahead of need (see `warm`). */
  private warmedPool: pg.Pool | null = null;

  constructor(s: PgDbSettings) {
    this.p = s.prefix;
    this.operationTimeoutMs = s.operationTimeoutMs;
    this.poolSize = s.poolSize;
    this.hosts = s.hosts && s.hosts.length > 0 ? s.hosts : null;
    const base = this.hosts ? { ...s.connection, host: this.hosts[0]!.host, port: this.hosts[0]!.port } : s.connection;
    const resolved = resolveTarget(base);
    this.target = this.hosts ? { ...resolved, hosts: this.hosts.map((h) => `${h.host}:${h.port}`).join(",") } : resolved;
    this.config = {
      ...base,
      // Several hosts mean a standby may be promoted: every commit waits for the synchronous
      // standby (the server must name one in synchronous_standby_names; migrate() checks).
      ...(this.hosts ? { options: "-c synchronous_commit=on" } : {}),
      connectionTimeoutMillis: s.connectTimeoutMs,
      query_timeout: s.operationTimeoutMs,
      statement_timeout: s.operationTimeoutMs,
      lock_timeout: s.operationTimeoutMs,
      // Twice the operation timeout: only a client that vanished mid-transaction ever reaches it.
      idle_in_transaction_session_timeout: Math.max(1000, 2 * s.operationTimeoutMs),
      keepAlive: true,
      keepAliveInitialDelayMillis: Math.max(1000, s.operationTimeoutMs),
      application_name: applicationName(s.prefix),
    };
    this.pool = this.makePool();
  }

  /** True when several hosts were given (a primary and standbys). */
  get multiHost(): boolean {
    return this.hosts !== null;
  }

  private makePool(): pg.Pool {
    // `min`: idle connections are kept (see `warm`); the idle timeout reaps only any above it.
    const pool = new pg.Pool({ ...this.config, max: this.poolSize, min: this.poolSize, idleTimeoutMillis: 10_000, allowExitOnIdle: true });
    // An idle pooled connection that dies emits 'error' on the pool, which removes it; without a
    // listener Node would treat that as an uncaught exception and end the process.
    pool.on("error", () => {});
    return pool;
  }

  /**
   * Multi-host: asks every host at once whether it is in recovery and moves the pool to the first
   * (in the configured order) that is not. node-postgres has no libpq-style multi-host URL with
   * `target_session_attrs=read-write`, so this is that, done here. Several writable hosts (a
   * promoted standby beside an old primary that came back) cannot be told apart by this check;
   * fencing the old primary is the failover tool's job (docs/configuration.md).
   */
  private findWritable(): Promise<void> {
    this.finding ??= (async () => {
      try {
        const hosts = this.hosts!;
        const writable = await Promise.all(hosts.map((h) => this.isWritable(h)));
        const i = writable.indexOf(true);
        if (i < 0) {
          throw new StoreUnavailableError(
            `${describeTarget(this.target)}: no writable server (each host is down, unreachable or a standby)`,
          );
        }
        const chosen = hosts[i]!;
        if (this.config.host !== chosen.host || this.config.port !== chosen.port) {
          const old = this.pool;
          this.config = { ...this.config, host: chosen.host, port: chosen.port };
          this.pool = this.makePool();
          void old.end().catch(() => {});
        }
        this.stale = false;
      } finally {
        this.finding = null;
      }
    })();
    return this.finding;
  }

  private async isWritable(h: PgHost): Promise<boolean> {
    const client = new pg.Client({ ...this.config, host: h.host, port: h.port });
    client.on("error", () => {});
    try {
      await before(client.connect(), performance.now() + this.operationTimeoutMs, () => new Error("slow connect"));
      const r = await client.query<{ standby: boolean }>("SELECT pg_is_in_recovery() AS standby");
      return r.rows[0]?.standby === false;
    } catch {
      return false;
    } finally {
      destroyClient(client);
    }
  }

  /** A table of this store, quoted: PostgreSQL would fold a prefix's capitals otherwise. */
  t(name: string): string {
    return `"${this.p}${name}"`;
  }

  /** The NOTIFY channel of this store's shard map (namespaced like its tables). */
  get channel(): string {
    return `${this.p}shard_map`;
  }

  /** The NOTIFY channel of this store's lease releases, payload the lease name (namespaced likewise). */
  get releaseChannel(): string {
    return `${this.p}lease_released`;
  }

  /** Runs one statement on a pooled connection under the call's deadline; returns its rows. */
  async query<R extends pg.QueryResultRow>(what: string, text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    return this.withClient(what, (client) => client.query<R>(text, values));
  }

  /**
   * Runs `fn` with a pooled connection, the whole call (checkout, connect, every query) bounded
   * by `budgetMs`. Errors come out mapped (`StoreUnavailableError` / `StoreConfigurationError`).
   */
  async withClient<T>(what: string, fn: (client: pg.PoolClient) => Promise<T>, budgetMs = this.operationTimeoutMs): Promise<T> {
    if (this.closed) throw closedError(this.target, what);
    const until = performance.now() + budgetMs;
    const late = () => deadlineError(this.target, what, budgetMs);
    if (this.hosts && this.stale) await before(this.findWritable(), until, late);
    if (this.warmedPool !== this.pool) this.warm();
    const checkout = this.pool.connect();
    let client: pg.PoolClient;
    try {
      client = await before(checkout, until, late);
    } catch (error) {
      this.stale = true;
      // A connection that opens after our deadline is still good: hand it back for the next call.
      checkout.then(
        (c) => c.release(),
        () => {},
      );
      throw mapPgError(error, this.target);
    }
    // While checked out, the pool does not listen for the connection's errors; one dropped between
    // two queries of this call would otherwise be an unhandled 'error' event.
    let failed = false;
    const onError = () => {
      failed = true;
    };
    let unreplicated = false;
    const onNotice = (notice: { message?: string }) => {
      if (isUnreplicatedCommit(notice)) unreplicated = true;
    };
    client.on("error", onError);
    client.on("notice", onNotice);
    try {
      const result = await before(fn(client), until, late);
      if (unreplicated) {
        throw new StoreUnavailableError(
          `${describeTarget(this.target)}: ${what}: committed locally but not confirmed by the synchronous standby`,
        );
      }
      return result;
    } catch (error) {
      failed = true;
      this.stale = true;
      throw mapPgError(error, this.target);
    } finally {
      client.off("error", onError);
      client.off("notice", onNotice);
      // After any failure the connection may hold a half-read reply or an open transaction: the
      // pool destroys it (pg ends a client with an active query by destroying its socket).
      client.release(failed);
    }
  }

  /**
   * Opens the pool's `poolSize` connections in the background, once per pool, on its first call.
   * At quiet times one connection serves every call, so without this the others would be opened
   * only when calls start to overlap — which is when the store link is slow, and a new connection
   * costs two round trips before its first statement (docs/reliability.md, store-delay). The cost
   * is `poolSize` server connections per node, held open (docs/configuration.md).
   */
  private warm(): void {
    const pool = (this.warmedPool = this.pool);
    for (let i = 0; i < this.poolSize; i++) {
      pool.connect().then(
        (c) => c.release(),
        () => {}, // the call that needs a connection reports the failure
      );
    }
  }

  /**
   * Runs `fn` inside BEGIN … COMMIT under one deadline. On any failure the connection is
   * destroyed rather than rolled back, so the server rolls back when it sees the socket close
   * (or after `idle_in_transaction_session_timeout` if the network swallowed the close).
   */
  async transaction<T>(what: string, fn: (client: pg.PoolClient) => Promise<T>, budgetMs?: number): Promise<T> {
    return this.withClient(
      what,
      async (client) => {
        await client.query("BEGIN");
        const result = await fn(client);
        await client.query("COMMIT");
        return result;
      },
      budgetMs,
    );
  }

  /**
   * Opens a dedicated connection outside the pool (LISTEN belongs to one session, and a pooled
   * connection is handed to other calls and closed when idle). Same timeouts as the pool.
   */
  async connectListener(): Promise<pg.Client> {
    if (this.closed) throw closedError(this.target, "listen");
    const client = new pg.Client({ ...this.config, application_name: applicationName(this.p, true) });
    // The subscriber adds its own handler; this one keeps a late error from crashing the process.
    client.on("error", () => {});
    try {
      await before(client.connect(), performance.now() + this.operationTimeoutMs, () =>
        deadlineError(this.target, "listen connect", this.operationTimeoutMs),
      );
      return client;
    } catch (error) {
      destroyClient(client);
      this.stale = true;
      throw mapPgError(error, this.target);
    }
  }

  /** Ends a dedicated connection politely, and forcibly if the server does not answer in time. */
  async endClient(client: pg.Client): Promise<void> {
    await before(client.end(), performance.now() + this.operationTimeoutMs, () => new Error("slow end")).catch(() => destroyClient(client));
  }

  /** Closes the pool. Idempotent; never waits longer than the operation timeout. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await before(this.pool.end(), performance.now() + this.operationTimeoutMs, () => new Error("slow close")).catch(() => {});
  }
}

/**
 * Settles like `work`, or rejects with `late()` once monotonic time `until` (ms, `performance.now()`
 * scale) has passed. A settlement of `work` after that is ignored; the caller cleans up.
 */
export function before<T>(work: Promise<T>, until: number, late: () => Error): Promise<T> {
  work.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(late()), Math.max(0, until - performance.now()));
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * Ends a client at once, also when the peer is blackholed: `end()` alone half-closes the socket and
 * waits for a server that will never answer. Reaches into the driver's socket, as pg-pool itself does.
 */
function destroyClient(client: pg.Client): void {
  client.end().catch(() => {});
  (client as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream?.destroy?.();
}

/** Resolves host, port and database the way node-postgres will (URL, fields, PG* variables). */
function resolveTarget(connection: pg.ClientConfig): PgTarget {
  let probe: pg.Client;
  try {
    probe = new pg.Client(connection);
  } catch {
    // No cause attached: the parser's error could quote the URL, and with it the password.
    throw new StoreConfigurationError("postgres: the connection settings cannot be parsed (check store.url)");
  }
  const password = typeof probe.password === "string" && probe.password.length > 0 ? probe.password : undefined;
  return {
    host: probe.host,
    port: probe.port,
    database: probe.database ?? probe.user ?? "",
    ...(password === undefined ? {} : { secret: password }),
  };
}
