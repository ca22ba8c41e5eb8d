import { SchemaTooNewError, StoreConfigurationError } from "../../core/errors.js";
import { ownedNames } from "../prefix-owned.js";
import type { MysqlDb } from "./db.js";

/**
 * The MySQL/MariaDB schema, versioned.
 *
 * Choices that matter for safety:
 * - InnoDB is named explicitly: a MyISAM default would make every compare-and-set non-atomic.
 * - Names, holders, owners and node ids are `VARBINARY`: compared byte for byte. A `VARCHAR` with
 *   the server's default collation would find "Node1" equal to "node1 " (case-insensitive and
 *   PAD SPACE), so two nodes could pass for one lease holder.
 * - Times are `DATETIME(6)` written and compared only with the server's `UTC_TIMESTAMP(6)`, so no
 *   client clock and no session time zone (and no daylight-saving repeat) is ever involved.
 * - Lease and shard rows are never deleted: the epoch of the next tenure is always the last + 1.
 */

/** The SQL of each version, in order; `MIGRATIONS[i]` upgrades version i to i + 1. */
const MIGRATIONS: ReadonlyArray<(p: string) => readonly string[]> = [
  (p) => [
    `CREATE TABLE IF NOT EXISTS ${p}leases (
       name VARBINARY(255) NOT NULL PRIMARY KEY,
       holder VARBINARY(255) NULL,
       epoch BIGINT UNSIGNED NOT NULL,
       expires_at DATETIME(6) NOT NULL
     ) ENGINE = InnoDB`,
    // A row with epoch 0 is a placeholder written by assign() so that its compare-and-set is one
    // UPDATE of an existing row; read() skips it and callers see "never written".
    `CREATE TABLE IF NOT EXISTS ${p}shards (
       shard INT UNSIGNED NOT NULL PRIMARY KEY,
       owner VARBINARY(255) NULL,
       epoch BIGINT UNSIGNED NOT NULL
     ) ENGINE = InnoDB`,
    `CREATE TABLE IF NOT EXISTS ${p}nodes (
       id VARBINARY(255) NOT NULL PRIMARY KEY,
       name VARCHAR(255) CHARACTER SET utf8mb4 NOT NULL,
       role VARCHAR(16) CHARACTER SET ascii NOT NULL,
       address VARCHAR(255) CHARACTER SET utf8mb4 NOT NULL,
       meta MEDIUMTEXT CHARACTER SET utf8mb4 NOT NULL,
       seen_at DATETIME(6) NOT NULL
     ) ENGINE = InnoDB`,
  ],
  // Version 2: the control plane. `cluster` holds the one cluster document (id 1; version 0 is a
  // placeholder, as for shards); its pauses' expiries are relative to `written_at`, which the
  // writing statement stamps with the server's clock. `history` sequence numbers come from
  // AUTO_INCREMENT, persisted by InnoDB, and the newest rows are always kept.
  (p) => [
    `CREATE TABLE IF NOT EXISTS ${p}cluster (
       id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
       version BIGINT UNSIGNED NOT NULL,
       document MEDIUMTEXT CHARACTER SET utf8mb4 NOT NULL,
       written_at DATETIME(6) NOT NULL
     ) ENGINE = InnoDB`,
    `CREATE TABLE IF NOT EXISTS ${p}history (
       seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       at DATETIME(6) NOT NULL,
       shard INT UNSIGNED NULL,
       body MEDIUMTEXT CHARACTER SET utf8mb4 NOT NULL,
       KEY shard_seq (shard, seq)
     ) ENGINE = InnoDB`,
  ],
];

/** The schema version this SDK writes and expects. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** DDL may wait for metadata locks held by other nodes' statements: give it more than one operation. */
const MIGRATE_TIMEOUT_FLOOR_MS = 10_000;

/**
 * Creates or upgrades the tables under the db's prefix.
 *
 * Safe when several processes run it at once without any lock (`GET_LOCK` is session-scoped and
 * refused on Galera): every statement of every version is idempotent on its own (`IF NOT EXISTS`;
 * future `ALTER`s must be written the same way), so two processes applying the same step both
 * succeed, and the recorded version only ever moves forward. A schema newer than this SDK is
 * refused, so an old node never writes rows whose meaning it does not know.
 */
export async function migrate(db: MysqlDb, operationTimeoutMs: number): Promise<void> {
  const p = db.p;
  await db.run(
    async (sql) => {
      await sql(
        `CREATE TABLE IF NOT EXISTS ${p}meta (
           k VARCHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
           v VARCHAR(255) CHARACTER SET utf8mb4 NOT NULL
         ) ENGINE = InnoDB`,
      );
      const rows = await sql<{ v: string }[]>(`SELECT v FROM ${p}meta WHERE k = 'schema_version'`);
      const current = rows[0] ? Number(rows[0].v) : 0;
      if (!Number.isInteger(current)) {
        throw new StoreConfigurationError(`mysql: ${db.ctx.where}: tables "${p}*" record an unreadable schema version`);
      }
      if (current > SCHEMA_VERSION) throw new SchemaTooNewError(`mysql ${db.ctx.where} (tables "${p}*")`, current, SCHEMA_VERSION);
      for (let version = current; version < SCHEMA_VERSION; version++) {
        for (const statement of MIGRATIONS[version]!(p)) await sql(statement);
      }
      // Forward only: a slower process that applied fewer steps must not lower the recorded version.
      await sql(
        `INSERT INTO ${p}meta (k, v) VALUES ('schema_version', ?)
         ON DUPLICATE KEY UPDATE v = IF(CAST(v AS UNSIGNED) < ?, ?, v)`,
        [String(SCHEMA_VERSION), SCHEMA_VERSION, String(SCHEMA_VERSION)],
      );
    },
    Math.max(MIGRATE_TIMEOUT_FLOOR_MS, operationTimeoutMs * 5),
  );
}

/** See `Store.recordedSchemaVersion()`. */
export async function recordedVersion(db: MysqlDb): Promise<number | null> {
  return db.run(async (sql) => {
    const present = await sql<{ n: number }[]>(
      "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND BINARY table_name = BINARY ?",
      [`${db.p}meta`],
    );
    if (Number(present[0]?.n ?? 0) === 0) return null;
    const rows = await sql<{ v: string }[]>(`SELECT v FROM ${db.p}meta WHERE k = 'schema_version'`);
    return rows[0] ? Number(rows[0].v) : 0;
  });
}

/** See `Store.purge()`: drops every table of the prefix in the connection's database. */
export async function purge(db: MysqlDb, operationTimeoutMs: number): Promise<string[]> {
  const p = db.p;
  return db.run(
    async (sql) => {
      // BINARY: the default collation would match "MC_" for "mc_".
      const rows = await sql<{ name: string }[]>(
        `SELECT table_name AS name FROM information_schema.tables
         WHERE table_schema = DATABASE() AND BINARY LEFT(table_name, CHAR_LENGTH(?)) = BINARY ?`,
        [p, p],
      );
      const mine = ownedNames(
        rows.map((r) => String(r.name)),
        p,
        ["meta", "leases"],
      );
      if (mine.length > 0) await sql(`DROP TABLE IF EXISTS ${mine.map((n) => `\`${n.replaceAll("`", "``")}\``).join(", ")}`);
      return mine;
    },
    Math.max(MIGRATE_TIMEOUT_FLOOR_MS, operationTimeoutMs * 5),
  );
}

/** Every table of one prefix, for tests and tooling that clean up a namespace they own. */
export function tableNames(p: string): string[] {
  return ["meta", "leases", "shards", "nodes", "cluster", "history"].map((t) => `${p}${t}`);
}
