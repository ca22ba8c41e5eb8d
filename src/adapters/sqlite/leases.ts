import type { AcquireResult, Lease, LeaseStore } from "../../core/ports/leases.js";
import type { SqliteDb } from "./db.js";

interface LeaseRow {
  holder: string | null;
  epoch: number;
  expires_at: number;
}

/** Lease rows; every read-check-write runs in one `BEGIN IMMEDIATE` transaction. */
export class SqliteLeaseStore implements LeaseStore {
  constructor(private readonly db: SqliteDb) {}

  async acquire(name: string, holder: string, ttlMs: number): Promise<AcquireResult> {
    return this.db.write((sql, now) => {
      const row = sql.prepare(`SELECT holder, epoch, expires_at FROM ${this.db.p}leases WHERE name = ?`).get(name) as LeaseRow | undefined;
      const live = row && row.holder !== null && row.expires_at > now;
      if (live && row.holder !== holder) {
        return { acquired: false, holder: row.holder, epoch: row.epoch, expiresInMs: row.expires_at - now };
      }
      const epoch = live ? row.epoch : (row?.epoch ?? 0) + 1;
      sql
        .prepare(
          `INSERT INTO ${this.db.p}leases (name, holder, epoch, expires_at) VALUES (?, ?, ?, ?)
           ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, epoch = excluded.epoch, expires_at = excluded.expires_at`,
        )
        .run(name, holder, epoch, now + ttlMs);
      return { acquired: true, lease: { name, holder, epoch } };
    });
  }

  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    return this.db.write((sql, now) => {
      const r = sql
        .prepare(`UPDATE ${this.db.p}leases SET expires_at = ? WHERE name = ? AND holder = ? AND epoch = ? AND expires_at > ?`)
        .run(now + ttlMs, lease.name, lease.holder, lease.epoch, now);
      return r.changes === 1;
    });
  }

  async release(lease: Lease): Promise<void> {
    await this.db.write((sql) => {
      sql
        .prepare(`UPDATE ${this.db.p}leases SET holder = NULL, expires_at = 0 WHERE name = ? AND holder = ? AND epoch = ?`)
        .run(lease.name, lease.holder, lease.epoch);
    });
  }

  async current(name: string): Promise<Lease | null> {
    return this.db.read((sql, now) => {
      const row = sql
        .prepare(`SELECT holder, epoch FROM ${this.db.p}leases WHERE name = ? AND holder IS NOT NULL AND expires_at > ?`)
        .get(name, now) as { holder: string; epoch: number } | undefined;
      return row ? { name, holder: row.holder, epoch: row.epoch } : null;
    });
  }
}
