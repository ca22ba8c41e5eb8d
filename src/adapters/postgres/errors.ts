import { StoreConfigurationError, StoreUnavailableError } from "../../core/errors.js";

/**
 * The one place that looks at node-postgres and PostgreSQL error codes. Everything else in the
 * adapter throws what `mapPgError` returns, so callers only ever see `StoreUnavailableError`
 * (retry later), `StoreConfigurationError` (fix the settings) or, for a bug in our own SQL, the
 * driver's error as it is.
 *
 * Messages name the backend, host, port and database. They never contain the password or the
 * connection URL (which may embed it): we build them from the resolved target, and scrub the
 * password out of any text we copy from the driver, in case a future driver version echoes it.
 */

/** Where a store points, as shown in messages and logs. Holds no secret except for scrubbing. */
export interface PgTarget {
  /** With several hosts (`hosts` option): "host:port,host:port", shown instead of host and port. */
  readonly hosts?: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  /** Only used to scrub messages; never printed. */
  readonly secret?: string;
}

/** "postgres 127.0.0.1:5432/test": how every message of this adapter starts. */
export function describeTarget(t: PgTarget): string {
  return `postgres ${t.hosts ?? `${t.host}:${t.port}`}${t.database ? `/${t.database}` : ""}`;
}

/** Socket-level failures: the server is down, unreachable or went away. All are worth retrying. */
const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ECONNABORTED: "connection aborted",
  EPIPE: "connection broken",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EHOSTDOWN: "host down",
  EAI_AGAIN: "name lookup failed (temporary)",
  ENOTFOUND: "host name not found",
};

/**
 * SQLSTATE classes and codes that mean "not now": connection exceptions (08), insufficient
 * resources such as too many connections (53), operator intervention such as a server shutdown,
 * `pg_terminate_backend` or a statement timeout (57), and transaction rollbacks such as a
 * deadlock or serialization failure (40). Lock and idle-in-transaction timeouts are listed singly.
 */
const RETRYABLE_CLASSES = new Set(["08", "40", "53", "57"]);
const RETRYABLE_CODES = new Set(["55P03", "25P03", "25006"]); // 25006: a read-only server (a standby, or a demoted primary)

/**
 * True for the warning PostgreSQL sends when a COMMIT's wait for the synchronous standby was
 * cancelled (statement_timeout, a cancel request): the transaction "has already committed locally,
 * but might not have been replicated to the standby", and COMMIT still reports success. A standby
 * promoted later may lack it, so the adapter treats such a call as failed.
 */
export function isUnreplicatedCommit(notice: { message?: string }): boolean {
  return /synchronous replication/i.test(notice.message ?? "");
}

/**
 * SQLSTATEs that retrying will not fix: bad credentials or a role without login (class 28), an
 * unknown database (3D000), missing privileges (42501), our tables missing (42P01: migrate() was
 * never run on this prefix).
 */
const CONFIG_CODES: Record<string, string> = {
  "3D000": "database does not exist",
  "42501": "permission denied",
  "42P01": "tables missing: run migrate() first",
};

/**
 * Driver messages (not codes) that mean the connection is gone or timed out. node-postgres raises
 * these as plain `Error`s without a code, so matching the text is the only way; it happens here only.
 */
const DRIVER_UNAVAILABLE = [
  /timeout/i,
  /Connection terminated/i,
  /not queryable/i,
  /Client was closed/i,
  /Cannot use a pool after calling end/i,
  /socket hang up/i,
];
const DRIVER_CONFIG = [/SSL/i, /certificate/i, /SASL/i, /password must be a string/i, /self[- ]signed/i];

/** Maps any error raised while talking to PostgreSQL to ours (see the module doc). */
export function mapPgError(error: unknown, target: PgTarget): Error {
  if (error instanceof StoreUnavailableError || error instanceof StoreConfigurationError) return error;
  const where = describeTarget(target);
  const scrub = (text: string) => (target.secret ? text.split(target.secret).join("***") : text);
  const e = error as { code?: unknown; message?: unknown; errors?: unknown };
  const code = typeof e.code === "string" ? e.code : undefined;
  const message = scrub(typeof e.message === "string" ? e.message : String(error));

  // Node's happy-eyeballs connect reports an AggregateError whose parts carry the socket codes.
  const socketCode = code ?? firstNestedCode(e.errors);
  if (socketCode && socketCode in NETWORK_CODES) {
    return new StoreUnavailableError(`${where}: ${NETWORK_CODES[socketCode]} (${socketCode})`, { cause: error });
  }
  if (code && /^[0-9A-Z]{5}$/.test(code)) {
    if (code.startsWith("28")) {
      return new StoreConfigurationError(`${where}: authentication rejected: ${message} (${code})`, { cause: error });
    }
    const config = CONFIG_CODES[code];
    if (config) return new StoreConfigurationError(`${where}: ${config}: ${message} (${code})`, { cause: error });
    if (RETRYABLE_CLASSES.has(code.slice(0, 2)) || RETRYABLE_CODES.has(code)) {
      return new StoreUnavailableError(`${where}: ${message} (${code})`, { cause: error });
    }
    // Any other SQLSTATE is a bug in our SQL or schema drift; keep the driver's error intact.
    return error instanceof Error ? error : new Error(message);
  }
  if (DRIVER_UNAVAILABLE.some((re) => re.test(message))) {
    return new StoreUnavailableError(`${where}: ${message}`, { cause: error });
  }
  if (DRIVER_CONFIG.some((re) => re.test(message))) {
    return new StoreConfigurationError(`${where}: ${message}`, { cause: error });
  }
  return error instanceof Error ? error : new Error(message);
}

/** The error of a call that hit this adapter's own client-side deadline. */
export function deadlineError(target: PgTarget, what: string, budgetMs: number): StoreUnavailableError {
  return new StoreUnavailableError(`${describeTarget(target)}: no answer within ${budgetMs} ms (${what})`);
}

/** The error of a call made after `close()`. Retryable in the sense that another store may serve it. */
export function closedError(target: PgTarget, what: string): StoreUnavailableError {
  return new StoreUnavailableError(`${describeTarget(target)}: store is closed (${what})`);
}

function firstNestedCode(errors: unknown): string | undefined {
  if (!Array.isArray(errors)) return undefined;
  for (const inner of errors) {
    const code = (inner as { code?: unknown } | null)?.code;
    if (typeof code === "string") return code;
  }
  return undefined;
}
