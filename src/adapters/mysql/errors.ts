import { MulticonnectError, StoreConfigurationError, StoreUnavailableError } from "../../core/errors.js";

/**
 * The one place that looks at mysql2's and the server's error codes.
 *
 * mysql2 errors carry `code` (a server symbol such as `ER_ACCESS_DENIED_ERROR`, a Node socket code
 * such as `ECONNREFUSED`, or a driver code such as `PROTOCOL_CONNECTION_LOST`), `errno`,
 * `sqlMessage` and `fatal` (the connection is unusable). Our messages name the backend and
 * `host:port`; they may quote the server's own message (which names a user, never a password), and
 * the configured password is scrubbed from anything we build as a last line of defence.
 */

/** What a message may mention about the store, and what it must never contain. */
export interface ErrorContext {
  /** `host:port` of the server. */
  readonly where: string;
  /** The configured password, so it can be scrubbed from messages; empty when there is none. */
  readonly password: string;
}

interface DriverError {
  code?: unknown;
  errno?: unknown;
  sqlMessage?: unknown;
  message?: unknown;
  fatal?: unknown;
}

/** Socket and driver codes: the server is down, unreachable, or the connection broke mid-call. */
const UNREACHABLE: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ECONNABORTED: "connection aborted",
  ETIMEDOUT: "connect timed out",
  EPIPE: "connection broken",
  EHOSTUNREACH: "host unreachable",
  EHOSTDOWN: "host down",
  ENETUNREACH: "network unreachable",
  ENETDOWN: "network down",
  // A name that does not resolve may be a typo, but also a DNS outage: retrying is the safe default.
  ENOTFOUND: "cannot resolve the host name",
  EAI_AGAIN: "cannot resolve the host name (temporary)",
  PROTOCOL_CONNECTION_LOST: "connection lost",
  PROTOCOL_SEQUENCE_TIMEOUT: "query timed out",
  PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR: "connection already failed",
  PROTOCOL_ENQUEUE_AFTER_QUIT: "connection already closed",
  PROTOCOL_ENQUEUE_HANDSHAKE_TWICE: "connection handshake failed",
};

/** Server codes that a later attempt may not see: overload, shutdown, a read-only failover target. */
const TRANSIENT = new Set([
  "ER_CON_COUNT_ERROR",
  "ER_TOO_MANY_USER_CONNECTIONS",
  "ER_SERVER_SHUTDOWN",
  "ER_NORMAL_SHUTDOWN",
  "ER_CONNECTION_KILLED",
  "ER_QUERY_INTERRUPTED",
  "ER_STATEMENT_TIMEOUT",
  "ER_LOCK_WAIT_TIMEOUT",
  "ER_LOCK_DEADLOCK",
  "ER_OPTION_PREVENTS_STATEMENT", // read_only / super_read_only: we reached a replica
  "ER_READ_ONLY_MODE",
  "ER_HOST_IS_BLOCKED",
  "ER_NET_READ_INTERRUPTED",
  "ER_NET_WRITE_INTERRUPTED",
  "ER_NET_READ_ERROR",
  "ER_NET_ERROR_ON_WRITE",
  "ER_CLIENT_INTERACTION_TIMEOUT",
]);

/** Server codes that retrying will not fix: credentials, privileges, database or schema missing. */
const MISCONFIGURED: Readonly<Record<string, string>> = {
  ER_ACCESS_DENIED_ERROR: "access denied",
  ER_ACCESS_DENIED_NO_PASSWORD_ERROR: "access denied",
  ER_DBACCESS_DENIED_ERROR: "access to the database denied",
  ER_TABLEACCESS_DENIED_ERROR: "access to a table denied",
  ER_SPECIFIC_ACCESS_DENIED_ERROR: "missing privilege",
  ER_BAD_DB_ERROR: "unknown database",
  ER_NO_SUCH_TABLE: "table missing (run migrate())",
  ER_NOT_SUPPORTED_AUTH_MODE: "authentication method not supported by the client",
  ER_MUST_CHANGE_PASSWORD_LOGIN: "the account's password has expired",
  ER_ACCOUNT_HAS_BEEN_LOCKED: "the account is locked",
  HANDSHAKE_NO_SSL_SUPPORT: "the server does not support TLS",
  AUTH_SWITCH_PLUGIN_ERROR: "authentication plugin failed",
};

/**
 * Codes of a failed TLS handshake (mysql2 reports most as HANDSHAKE_SSL_ERROR, the rest keep
 * Node's): a wrong CA, host name or an expired certificate, a refused client certificate. Only new
 * certificates or a new CA fix them.
 */
const TLS_CODES =
  /^(HANDSHAKE_SSL_ERROR$|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_|ERR_TLS_CERT_ALTNAME_INVALID$|ERR_SSL_)/;

/** True for an InnoDB deadlock: the statement was rolled back whole and may simply run again. */
export function isDeadlock(error: unknown): boolean {
  return (error as DriverError | null)?.code === "ER_LOCK_DEADLOCK";
}

/** True when the connection that raised `error` must not be reused. */
export function isFatal(error: unknown): boolean {
  const e = error as DriverError | null;
  return e?.fatal === true || (typeof e?.code === "string" && e.code in UNREACHABLE);
}

/** The error for an operation that got no answer within its deadline. */
export function timedOut(ctx: ErrorContext, ms: number): StoreUnavailableError {
  return new StoreUnavailableError(`mysql: ${ctx.where}: no answer within ${ms} ms`);
}

/** The error for a call on a store that was closed. */
export function closedStore(ctx: ErrorContext): StoreUnavailableError {
  return new StoreUnavailableError(`mysql: ${ctx.where}: store is closed`);
}

/**
 * Maps a mysql2 error to ours. Unknown errors (a bug in our SQL, a constraint violation) are passed
 * through unchanged unless the driver marked them fatal, so they surface instead of being retried.
 */
export function mapMysqlError(error: unknown, ctx: ErrorContext): Error {
  if (error instanceof MulticonnectError) return error;
  const e = (error ?? {}) as DriverError;
  const code = typeof e.code === "string" ? e.code : "";
  const serverSays = typeof e.sqlMessage === "string" ? `: ${scrub(e.sqlMessage, ctx)}` : "";
  const misconfigured = MISCONFIGURED[code];
  if (misconfigured) {
    return new StoreConfigurationError(`mysql: ${ctx.where}: ${misconfigured} (${code})${serverSays}`, { cause: error });
  }
  if (TLS_CODES.test(code)) {
    const what = typeof e.message === "string" ? `: ${scrub(e.message, ctx)}` : "";
    return new StoreConfigurationError(`mysql: ${ctx.where}: TLS handshake refused (${code})${what}`, { cause: error });
  }
  const unreachable = UNREACHABLE[code];
  if (unreachable) return new StoreUnavailableError(`mysql: ${ctx.where}: ${unreachable} (${code})`, { cause: error });
  if (TRANSIENT.has(code)) {
    return new StoreUnavailableError(`mysql: ${ctx.where}: server busy or unavailable (${code})${serverSays}`, { cause: error });
  }
  if (e.fatal === true) {
    const what = typeof e.message === "string" ? scrub(e.message, ctx) : "connection failed";
    return new StoreUnavailableError(`mysql: ${ctx.where}: ${what}${code ? ` (${code})` : ""}`, { cause: error });
  }
  if (e.message === "Pool is closed.") return closedStore(ctx);
  return error instanceof Error ? error : new Error(String(error));
}

/** Removes the password from a message; empty passwords cannot leak and are left alone. */
function scrub(message: string, ctx: ErrorContext): string {
  return ctx.password ? message.split(ctx.password).join("***") : message;
}
