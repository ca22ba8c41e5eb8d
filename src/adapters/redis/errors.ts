import { MulticonnectError, StoreConfigurationError, StoreUnavailableError } from "../../core/errors.js";

/**
 * The one place that looks at ioredis and Redis error codes and messages.
 *
 * Every error that leaves the Redis adapter is one of ours: `StoreUnavailableError` (retryable:
 * the server is unreachable, not answering within the operation timeout, loading, busy or a replica
 * after a failover), `StoreConfigurationError` (credentials, ACL permissions, database index, TLS
 * trust, scripting disabled: retrying will not help), or the original error for anything we did
 * not foresee (a bug, not a store condition).
 *
 * Messages name "redis" and `host:port`, never the password. ioredis attaches the failed command
 * to its errors (`error.command.args` of a failed `AUTH` IS the password), so the `cause` we attach
 * is a scrubbed copy carrying only the name, code and message.
 */

/** Socket-level failures: the server is down, unreachable or the connection broke. */
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/** ioredis's own messages for a command that never got an answer. */
const UNAVAILABLE_MESSAGE =
  /^(Command timed out|Connection is closed|Stream isn't writeable|Socket timeout|connect ETIMEDOUT|Reached the max retries)/;

/**
 * Server replies that say "not now": still loading its data, blocked by a long script, a replica
 * that was a primary before a failover (READONLY), a cluster in transition, out of memory.
 */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|NOREPLICAS|OOM)\b/;

/** Server replies that no retry will fix. */
const CONFIG_REPLY: [RegExp, string][] = [
  [/^WRONGPASS\b/, "wrong username or password (WRONGPASS)"],
  [/^NOAUTH\b/, "the server requires a password and none was configured (NOAUTH)"],
  [/^NOPERM\b/, "the ACL user may not run a command this adapter needs (NOPERM)"],
  [/called without any password configured/, "a password was configured but the server has none"],
  [/(invalid DB index|DB index is out of range)/i, "the configured database index does not exist"],
  [/^(MOVED|ASK)\b/, "a Redis Cluster node that does not own this namespace's hash slot (cluster clients are not supported)"],
  [/^ERR unknown command/, "the server lacks a command this adapter needs (EVAL/EVALSHA disabled or renamed?)"],
];

/** TLS failures: a wrong CA, host name or an expired certificate, a refused client certificate or a server that does not speak TLS: all configuration. */
const TLS_CODES = /^(CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_|ERR_TLS_CERT_ALTNAME_INVALID|ERR_SSL_)/;

/** Where the adapter talks to, for messages: `host:port`, and the secret to scrub. */
export interface RedisWhere {
  readonly address: string;
  readonly password?: string;
}

/** Maps an error from ioredis (or Redis) to ours. Errors that are already ours pass unchanged. */
export function mapRedisError(error: unknown, where: RedisWhere): Error {
  if (error instanceof MulticonnectError) return error;
  const message = scrub(error instanceof Error ? error.message : String(error), where);
  const raw = (error as { code?: unknown } | null)?.code;
  const code = typeof raw === "string" ? raw : "";
  const name = error instanceof Error ? error.name : "";
  const cause = scrubbed(error, message);

  for (const [pattern, problem] of CONFIG_REPLY) {
    if (pattern.test(message)) return new StoreConfigurationError(`redis ${where.address}: ${problem}`, { cause });
  }
  if (TLS_CODES.test(code)) {
    return new StoreConfigurationError(`redis ${where.address}: TLS handshake refused (${code})`, { cause });
  }
  if (
    UNAVAILABLE_CODES.has(code) ||
    UNAVAILABLE_MESSAGE.test(message) ||
    UNAVAILABLE_REPLY.test(message) ||
    name === "MaxRetriesPerRequestError"
  ) {
    return unavailable(where, message, cause);
  }
  return error instanceof Error ? error : new Error(message);
}

/** A `StoreUnavailableError` naming the server and what went wrong. */
export function unavailable(where: RedisWhere, detail: string, cause?: unknown): StoreUnavailableError {
  return new StoreUnavailableError(`redis ${where.address}: unreachable or not answering (${scrub(detail, where)})`, {
    cause,
  });
}

/** The error of a call made after the store was closed. */
export function storeClosed(where: RedisWhere): MulticonnectError {
  return new MulticonnectError("store_closed", `redis ${where.address}: the store was closed`);
}

/** True for an error event that makes waiting for the connection pointless (bad credentials, TLS trust). */
export function isConfigurationError(error: unknown, where: RedisWhere): boolean {
  return mapRedisError(error, where) instanceof StoreConfigurationError;
}

/** True when EVALSHA failed because the server does not have the script cached (after a restart). */
export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("NOSCRIPT");
}

/** Removes the password from a text, whatever put it there. */
function scrub(text: string, where: RedisWhere): string {
  return where.password ? text.split(where.password).join("***") : text;
}

/** A copy of `error` with its name, code and (scrubbed) message only: no `command.args`. */
function scrubbed(error: unknown, message: string): Error {
  const copy = new Error(message);
  copy.name = error instanceof Error ? error.name : "Error";
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") (copy as Error & { code?: string }).code = code;
  return copy;
}
