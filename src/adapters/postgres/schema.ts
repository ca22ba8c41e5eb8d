import { SchemaTooNewError } from "../../core/errors.js";
import type { PgDb } from "./db.js";
import { describeTarget } from "./errors.js";
import { ownedNames } from "../prefix-owned.js";

/**
 * The PostgreSQL schema, versioned. `prefix` is validated by the factory (letters, digits, `_`)
 * and every name is quoted, so a prefix keeps its capitals.
 *
 * Epoch columns are never reset: a lease's or shard's row is kept after release so the next epoch
 * is always the last one + 1, and PostgreSQL's durability keeps them across server restarts.
 * Times are `timestamptz` written only from the server's `clock_timestamp()`.
 *
 * Version 2 adds the control plane's tables: `cluster` (the one cluster document row; its pause
 * expiries are ms since the Unix epoch by `clock_timestamp()`) and `history` (an identity column:
 * a sequence never goes back, also after rows are deleted or a transaction rolls back). The DDL is
 * `IF NOT EXISTS` throughout, so running it on a version-1 database is the migration.
 */
export const SCHEMA_VERSION = 2;

/** The quoted names of every table of one prefix (the tests drop exactly these). */
export function schemaTables(p: string): Record<"meta" | "leases" | "shards" | "nodes" | "cluster" | "history", string> {
  return {
    meta: `"${p}meta"`,
    leases: `"${p}leases"`,
    shards: `"${p}shards"`,
    nodes: `"${p}nodes"`,
    cluster: `"${p}cluster"`,
    history: `"${p}history"`,
  };
}

/** See `Store.recordedSchemaVersion()`. */
export async function recordedVersion(db: PgDb): Promise<number | null> {
  return db.withClient("read schema version", async (client) => {
    const present = await client.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [schemaTables(db.p).meta]);
    if (!present.rows[0]?.ok) return null;
    const r = await client.query<{ value: string }>(`SELECT value FROM ${schemaTables(db.p).meta} WHERE key = 'schema_version'`);
    return Number(r.rows[0]?.value ?? 0);
  });
}

/** See `Store.purge()`: drops every table of the prefix in the current schema, in one transaction. */
export async function purge(db: PgDb): Promise<string[]> {
  return db.transaction("purge", async (client) => {
    await client.query("SELECT pg_advisory_xact_lock(hashtext('multiconnect'), hashtext($1))", [db.p]);
    const r = await client.query<{ name: string }>(
      "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() AND starts_with(tablename, $1)",
      [db.p],
    );
    const mine = ownedNames(
      r.rows.map((row) => row.name),
      db.p,
      ["meta", "leases"],
    );
    if (mine.length > 0) await client.query(`DROP TABLE ${mine.map((n) => `"${n.replaceAll('"', '""')}"`).join(", ")}`);
    return mine;
  });
}

/** The DDL of version `SCHEMA_VERSION`; every statement is idempotent. */
export function schemaSql(p: string): string {
  const t = schemaTables(p);
  return `
    CREATE TABLE IF NOT EXISTS ${t.meta} (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE IF NOT EXISTS ${t.leases} (
      name text PRIMARY KEY,
      holder text,
      epoch bigint NOT NULL CHECK (epoch > 0),
      expires_at timestamptz NOT NULL
    );
    CREATE TABLE IF NOT EXISTS ${t.shards} (
      shard integer PRIMARY KEY CHECK (shard >= 0),
      owner text,
      epoch bigint NOT NULL CHECK (epoch > 0)
    );
    CREATE TABLE IF NOT EXISTS ${t.nodes} (
      id text PRIMARY KEY,
      name text NOT NULL,
      role text NOT NULL,
      address text NOT NULL,
      meta jsonb NOT NULL,
      seen_at timestamptz NOT NULL
    );
    CREATE TABLE IF NOT EXISTS ${t.cluster} (
      id smallint PRIMARY KEY CHECK (id = 1),
      version bigint NOT NULL CHECK (version > 0),
      document text NOT NULL
    );
    CREATE TABLE IF NOT EXISTS ${t.history} (
      seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      at timestamptz NOT NULL,
      shard integer,
      body text NOT NULL
    );
    CREATE INDEX IF NOT EXISTS "${p}history_shard" ON ${t.history} (shard, seq);
  `;
}

/**
 * Creates or upgrades the schema. Safe when several nodes run it at once: two concurrent
 * `CREATE TABLE IF NOT EXISTS` of one name can both pass the existence check and one then fails on
 * the catalog's unique index, so the DDL runs under a transaction-scoped advisory lock keyed by the
 * prefix (released at COMMIT or when the connection drops; a session lock could outlive a pooled
 * connection's use). A schema recorded by a newer SDK is refused before anything is written
 * (`SchemaTooNewError`), and the recorded version only ever goes up.
 */
export async function migrate(db: PgDb): Promise<void> {
  const t = schemaTables(db.p);
  // DDL and a wait behind another node's migrate: a little more time than one operation.
  await db.transaction(
    "migrate",
    async (client) => {
      await client.query("SELECT pg_advisory_xact_lock(hashtext('multiconnect'), hashtext($1))", [db.p]);
      const present = await client.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [t.meta]);
      if (present.rows[0]?.ok) {
        const r = await client.query<{ value: string }>(`SELECT value FROM ${t.meta} WHERE key = 'schema_version'`);
        const found = Number(r.rows[0]?.value ?? 0);
        if (!(found <= SCHEMA_VERSION)) {
          throw new SchemaTooNewError(`${describeTarget(db.target)} (tables "${db.p}*")`, found, SCHEMA_VERSION);
        }
      }
      await client.query(schemaSql(db.p));
      await client.query(
        `INSERT INTO ${t.meta} AS m (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE m.value::int < EXCLUDED.value::int`,
        [String(SCHEMA_VERSION)],
      );
    },
    3 * db.operationTimeoutMs,
  );
}
