/**
 * The SQLite schema, versioned. `prefix` is validated by the factory (letters, digits, `_`).
 * Epoch columns are never reset: a lease's or shard's row is kept after release so the next
 * epoch is always the last one + 1.
 */
export const SCHEMA_VERSION = 1;

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
  `;
}
