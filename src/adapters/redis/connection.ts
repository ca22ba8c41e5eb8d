import type { ConnectionOptions } from "node:tls";
import { Redis } from "ioredis";
import { MulticonnectError } from "../../core/errors.js";
import { isNoScript, mapRedisError, storeClosed, unavailable, type RedisWhere } from "./errors.js";
import type { LuaScript } from "./scripts.js";

/** A Sentinel's address. */
export interface SentinelAddress {
  readonly host: string;
  readonly port: number;
}

/** Validated connection settings (see `RedisOptions` for what each means). */
export interface RedisSettings extends RedisWhere {
  readonly host: string;
  readonly port: number;
  /** Sentinel mode: the Sentinels to ask for the primary of `sentinelName` (host and port then unused). */
  readonly sentinels?: readonly SentinelAddress[];
  readonly sentinelName?: string;
  readonly sentinelUsername?: string;
  readonly sentinelPassword?: string;
  readonly sentinelTls?: ConnectionOptions;
  /** Replicas that must acknowledge (WAIT) each script's writes before the call succeeds; 0: none. */
  readonly waitReplicas: number;
  readonly username?: string;
  readonly db: number;
  readonly tls?: ConnectionOptions;
  readonly operationTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

type Arg = string | number;

/**
 * One ioredis connection, configured so that no command is ever sent late.
 *
 * ioredis's defaults queue commands while disconnected and resend them after reconnecting, so a
 * renewal or an assignment could reach the server long after its caller gave up and acted on that.
 * Here: no offline queue (a command is only written to a ready connection), no resend of
 * unanswered commands after a reconnect, no retries per request; `commandTimeout` bounds the wait
 * for an answer, our own wait bounds the wait for a connection, and `socketTimeout` tears down a
 * socket that stopped answering so that the next call gets a fresh one. A call therefore fails
 * with `StoreUnavailableError` within about 2 × `operationTimeoutMs` (connect, then answer; 3 ×
 * when a restarted server has lost its script cache and the script is sent again).
 *
 * The main connection reconnects by itself in the background; a subscriber connection does not
 * (its owner is told it was lost and opens a new one, then re-reads: pub/sub has no replay).
 */
export class RedisConnection {
  private readonly client: Redis;
  private lastError: unknown = null;
  private readiness: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly s: RedisSettings,
    /** The CLIENT SETNAME of this connection, to find it in CLIENT LIST. */
    readonly name: string,
    private readonly reconnect: boolean,
  ) {
    // Sentinel mode: ioredis asks the Sentinels for the primary on every (re)connect and checks its
    // role; `failoverDetector` drops the connection when a Sentinel announces a new primary, and a
    // READONLY reply (the server was demoted under us) drops it too, without resending the command.
    const where = s.sentinels
      ? {
          sentinels: s.sentinels.map((x) => ({ host: x.host, port: x.port })),
          name: s.sentinelName,
          sentinelUsername: s.sentinelUsername,
          sentinelPassword: s.sentinelPassword,
          sentinelTLS: s.sentinelTls,
          enableTLSForSentinelMode: s.tls !== undefined,
          role: "master" as const,
          failoverDetector: true,
          sentinelCommandTimeout: s.operationTimeoutMs,
          sentinelRetryStrategy: reconnect ? (times: number) => Math.min(times * 50, 500) : () => null,
          reconnectOnError: (error: Error) => (error.message.startsWith("READONLY") ? 1 : false),
        }
      : { host: s.host, port: s.port };
    this.client = new Redis({
      ...where,
      username: s.username,
      password: s.password,
      db: s.db,
      tls: s.tls,
      connectionName: name,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      commandTimeout: s.operationTimeoutMs,
      socketTimeout: 2 * s.operationTimeoutMs,
      connectTimeout: s.connectTimeoutMs,
      // A short, capped backoff: the next call after the server returns should not wait long.
      retryStrategy: reconnect ? (times) => Math.min(times * 50, 500) : () => null,
      // RESP2 works with every Redis and proxy; nothing here needs RESP3.
      protocol: 2,
      disableClientInfo: true,
    });
    // Without a listener ioredis prints every connection error; we report them from calls instead.
    this.client.on("error", (error: unknown) => {
      this.lastError = error;
    });
  }

  /** Runs `op` on a ready connection; every failure comes out mapped to our errors. */
  async run<T>(op: (client: Redis) => Promise<T>): Promise<T> {
    try {
      await this.ready(this.s.operationTimeoutMs);
      return await op(this.client);
    } catch (error) {
      throw mapRedisError(error, this.s);
    }
  }

  /**
   * Runs a Lua script by SHA, loading it with EVAL when the server does not have it (after a
   * restart). With `waitReplicas` > 0 the call then sends `WAIT` and succeeds only once that many
   * replicas hold everything this connection wrote: replication is asynchronous, and a replica that
   * Sentinel promotes must not lack a lease grant, a renewal or an epoch that a caller acted on. A
   * write that is not acknowledged in time throws `StoreUnavailableError`, and the caller treats it
   * as not done (a renewal not counted, a lease not acquired), which is the safe side: the write may
   * still exist on this primary, where the same holder finds it again.
   */
  eval(script: LuaScript, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    return this.run(async (client) => {
      let reply: unknown;
      try {
        reply = await client.evalsha(script.sha, keys.length, ...keys, ...args);
      } catch (error) {
        if (!isNoScript(error)) throw error;
        reply = await client.eval(script.lua, keys.length, ...keys, ...args);
      }
      const wanted = this.s.waitReplicas;
      if (wanted > 0) {
        // Half the operation timeout: the WAIT reply must still arrive within the command timeout.
        const waitMs = Math.max(1, Math.floor(this.s.operationTimeoutMs / 2));
        const acked = Number(await client.wait(wanted, waitMs));
        if (acked < wanted) {
          throw unavailable(
            this.s,
            `write acknowledged by ${acked} of the ${wanted} replica(s) store.wait_replicas requires within ${waitMs} ms`,
          );
        }
      }
      return reply;
    });
  }

  /**
   * Makes this a dedicated subscriber connection: `onMessage` runs on each message of any channel
   * it subscribes to, and `onLost` once if the connection breaks before `close()`. Call once.
   */
  receive(onMessage: (channel: string, message: string) => void, onLost: (error: unknown) => void): void {
    let lost = false;
    this.client.on("message", onMessage);
    this.client.on("close", () => {
      if (this.closed || lost) return;
      lost = true;
      const last = this.lastError instanceof Error ? ` (${this.lastError.message})` : "";
      onLost(unavailable(this.s, `notification connection lost${last}`));
    });
  }

  /** SUBSCRIBEs to `channel`; resolves once the server has confirmed it. */
  async subscribe(channel: string): Promise<void> {
    await this.run((client) => client.subscribe(channel));
  }

  /** UNSUBSCRIBEs from `channel`; later commands of this connection are sent after it. */
  async unsubscribe(channel: string): Promise<void> {
    await this.run((client) => client.unsubscribe(channel));
  }

  /** Closes the connection at once; calls still waiting fail. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.disconnect();
  }

  /**
   * Waits until the connection is ready, at most `budgetMs`. Fails at once on a connection error
   * reported meanwhile (refused, bad credentials) instead of waiting out the budget.
   */
  private async ready(budgetMs: number): Promise<void> {
    const client = this.client;
    if (client.status === "ready") return;
    if (this.closed) throw storeClosed(this.s);
    if (client.status === "end" && !this.reconnect) throw unavailable(this.s, "connection closed");
    if (client.status === "wait" || client.status === "end") client.connect().catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // A server that accepted the socket but never answers the handshake keeps ioredis in
        // "connect" forever: drop that socket so the next call starts a fresh attempt.
        if (client.status === "connect") client.disconnect(this.reconnect);
        const last = this.lastError instanceof Error ? `; last error: ${this.lastError.message}` : "";
        reject(unavailable(this.s, `no ready connection within ${budgetMs} ms${last}`));
      }, budgetMs);
    });
    try {
      await Promise.race([this.nextReadiness(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The outcome of the current connection attempt, shared by every waiting call (one pair of
   * listeners however many calls wait, so a burst during a reconnect does not pile them up).
   */
  private nextReadiness(): Promise<void> {
    this.readiness ??= new Promise<void>((resolve, reject) => {
      const client = this.client;
      const settle = (error?: Error) => {
        client.off("ready", onReady);
        client.off("error", onError);
        this.readiness = null;
        if (error) reject(error);
        else resolve();
      };
      const onReady = () => settle();
      const onError = (error: unknown) => {
        const mapped = mapRedisError(error, this.s);
        if (mapped instanceof MulticonnectError) settle(mapped);
      };
      client.on("ready", onReady);
      client.on("error", onError);
    });
    // Callers that timed out meanwhile no longer listen; the outcome is not an unhandled rejection.
    this.readiness.catch(() => {});
    return this.readiness;
  }
}
