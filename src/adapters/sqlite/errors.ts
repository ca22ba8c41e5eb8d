import { StoreConfigurationError, StoreUnavailableError } from "../../core/errors.js";

/** Maps better-sqlite3's errors to ours. The one place that looks at SQLite error codes. */
export function mapSqliteError(error: unknown, file: string): Error {
  const code = (error as { code?: unknown }).code;
  if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED" || code === "SQLITE_IOERR") {
    return new StoreUnavailableError(`sqlite: ${file}: database busy or unreadable (${String(code)})`, { cause: error });
  }
  if (code === "SQLITE_CANTOPEN" || code === "SQLITE_READONLY" || code === "SQLITE_PERM" || code === "SQLITE_NOTADB") {
    return new StoreConfigurationError(`sqlite: ${file}: cannot use the database file (${String(code)})`, { cause: error });
  }
  return error instanceof Error ? error : new Error(String(error));
}
