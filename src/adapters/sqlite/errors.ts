import { StoreConfigurationError, StoreUnavailableError } from "../../core/errors.js";

/** Maps better-sqlite3's errors to ours. The one place that looks at SQLite error codes. */
export function mapSqliteError(error: unknown, file: string): Error {
  // better-sqlite3 reports extended result codes (SQLITE_BUSY_RECOVERY, SQLITE_IOERR_FSYNC...):
  // judge by the primary code they start with.
  const raw = (error as { code?: unknown } | null)?.code;
  const full = typeof raw === "string" ? raw : "";
  const code = /^SQLITE_[A-Z]+/.exec(full)?.[0];
  if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED" || code === "SQLITE_IOERR") {
    return new StoreUnavailableError(`sqlite: ${file}: database busy or unreadable (${full})`, { cause: error });
  }
  if (code === "SQLITE_CANTOPEN" || code === "SQLITE_READONLY" || code === "SQLITE_PERM" || code === "SQLITE_NOTADB") {
    return new StoreConfigurationError(`sqlite: ${file}: cannot use the database file (${full})`, { cause: error });
  }
  return error instanceof Error ? error : new Error(String(error));
}
