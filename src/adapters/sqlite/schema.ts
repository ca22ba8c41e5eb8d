/**
 * The SQLite schema, versioned. `prefix` is validated by the factory (letters, digits, `_`).
 * Epoch columns are never reset: a lease's or shard's row is kept after release so the next
 * epoch is always the last one + 1.
 *
 * Version 2 adds the control plane's tables: `cluster` (the one cluster document row, whose pause
 * expiries are on the store clock of the boot named in `boot`) and `history` (AUTOINCREMENT: a
 * sequence number is never reused, also after the newest rows were deleted). Every statement is
 * `IF NOT EXISTS`, so running the DDL on a version-1 file is the migration.
 */
export const SCHEMA_VERSION = 2;

export function schemaSql(p: string): string {
  return `
    CREATE TABLE IF NOT EXISTS ${p}meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS ${p}leases (
      name TEXT PRIMARY KEY,
      holder TEXT,
      epoch INTEGER NOT NULL,
      expires_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS ${p}shards (
      shard INTEGER PRIMARY KEY,
      owner TEXT,
      epoch INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS ${p}nodes (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      role TEXT NOT NULL,
      address TEXT NOT NULL,
      meta TEXT NOT NULL,
      seen_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS ${p}cluster (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      version INTEGER NOT NULL,
      document TEXT NOT NULL,
      boot TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS ${p}history (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      at_ms REAL NOT NULL,
      shard INTEGER,
      body TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS ${p}history_shard ON ${p}history (shard, seq);
  `;
}
