import type { AcquireResult, Lease, LeaseStore } from "../../core/ports/leases.js";
import { NOW, type MysqlDb, type Sql } from "./db.js";

/** A lease row is live when it has a holder and its expiry is after the server's now. */
const LIVE = `(holder IS NOT NULL AND expires_at > ${NOW})`;

/** Released rows keep their epoch; this expiry is simply "long past". */
const LONG_AGO = "'1000-01-01 00:00:00'";

interface LeaseRow {
  /** 1 when the row's holder is the caller (compared byte for byte by the server). */
  mine: number;
  holder: string | null;
  epoch: number;
  live: number;
  /** Microseconds of server time until expiry; negative once expired. */
  remaining_us: number;
}

/** Milliseconds as whole microseconds for `INTERVAL … MICROSECOND` (never negative). */
function micros(ms: number): number {
  return Math.max(0, Math.round(ms * 1000));
}

/**
 * Lease rows, one per name. Every decision is a single autocommitted statement evaluated by the
 * server against its own clock, so no row lock is ever held across a round trip: a client paused
 * or cut off mid-call can never block the other contenders.
 */
export class MysqlLeaseStore implements LeaseStore {
  constructor(private readonly db: MysqlDb) {}

  /**
   * One upsert decides, under the row's lock: insert a never-seen name at epoch 1; or, if the row is
   * not live, take it with epoch + 1; or, if the caller holds it live, extend it; or change nothing.
   * `ON DUPLICATE KEY UPDATE` assigns left to right and each expression sees the columns assigned
   * before it, hence the order: `epoch` and `holder` read the old holder and expiry, and `expires_at`
   * reads the new holder (the caller's exactly when it took or already held the lease). Concurrent
   * upserts on one row serialise on its lock, so exactly one contender can find it free. A read of
   * the row then reports the outcome; the decision itself was already made atomically.
   */
  async acquire(name: string, holder: string, ttlMs: number): Promise<AcquireResult> {
    const p = this.db.p;
    const ttlUs = micros(ttlMs);
    const row = await this.db.run(async (sql) => {
      await sql(
        `INSERT INTO ${p}leases (name, holder, epoch, expires_at)
         VALUES (?, ?, 1, ${NOW} + INTERVAL ? MICROSECOND)
         ON DUPLICATE KEY UPDATE
           epoch = IF(${LIVE}, epoch, epoch + 1),
           holder = IF(${LIVE}, holder, ?),
           expires_at = IF(holder = ?, ${NOW} + INTERVAL ? MICROSECOND, expires_at)`,
        [name, holder, ttlUs, holder, holder, ttlUs],
      );
      return this.read(sql, name, holder);
    });
    if (!row) {
      // Unreachable: the upsert above created the row and rows are never deleted.
      return { acquired: false, holder: null, epoch: 0, expiresInMs: 0 };
    }
    if (row.live && row.mine) return { acquired: true, lease: { name, holder, epoch: Number(row.epoch) } };
    if (!row.live) {
      // Freed or lapsed between our upsert and our read (a very short ttl, a release): nobody to name.
      return { acquired: false, holder: null, epoch: Number(row.epoch), expiresInMs: 0 };
    }
    return {
      acquired: false,
      holder: row.holder,
      epoch: Number(row.epoch),
      expiresInMs: Math.max(0, Number(row.remaining_us) / 1000),
    };
  }

  /** Extends only a live row with the same holder and epoch; the matched-row count says whether it did. */
  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    const p = this.db.p;
    return this.db.run(async (sql) => {
      // mysql2 sets CLIENT_FOUND_ROWS, so affectedRows counts matched rows even if nothing changed.
      const r = await sql<{ affectedRows: number }>(
        `UPDATE ${p}leases SET expires_at = ${NOW} + INTERVAL ? MICROSECOND
         WHERE name = ? AND holder = ? AND epoch = ? AND expires_at > ${NOW}`,
        [micros(ttlMs), lease.name, lease.holder, lease.epoch],
      );
      return r.affectedRows === 1;
    });
  }

  /** Clears the holder but keeps the row and its epoch, so the next tenure gets epoch + 1. */
  async release(lease: Lease): Promise<void> {
    const p = this.db.p;
    await this.db.run((sql) =>
      sql(`UPDATE ${p}leases SET holder = NULL, expires_at = ${LONG_AGO} WHERE name = ? AND holder = ? AND epoch = ?`, [
        lease.name,
        lease.holder,
        lease.epoch,
      ]),
    );
  }

  async current(name: string): Promise<Lease | null> {
    const p = this.db.p;
    const rows = await this.db.run((sql) =>
      sql<{ holder: string; epoch: number }[]>(
        `SELECT CONVERT(holder USING utf8mb4) AS holder, epoch FROM ${p}leases WHERE name = ? AND ${LIVE}`,
        [name],
      ),
    );
    const row = rows[0];
    return row ? { name, holder: row.holder, epoch: Number(row.epoch) } : null;
  }

  /** The row as the server sees it now, with liveness and ownership judged by the server. */
  private async read(sql: Sql, name: string, holder: string): Promise<LeaseRow | undefined> {
    const p = this.db.p;
    const rows = await sql<LeaseRow[]>(
      `SELECT (holder <=> ?) AS mine, CONVERT(holder USING utf8mb4) AS holder, epoch, ${LIVE} AS live,
              TIMESTAMPDIFF(MICROSECOND, ${NOW}, expires_at) AS remaining_us
       FROM ${p}leases WHERE name = ?`,
      [holder, name],
    );
    return rows[0];
  }
}
