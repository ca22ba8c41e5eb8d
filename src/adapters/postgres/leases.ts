import type { AcquireResult, Lease, LeaseStore } from "../../core/ports/leases.js";
import type { PgDb } from "./db.js";
import type { PgListener } from "./listener.js";

/** `ttlMs` (a bind parameter) as an interval, added to the server's clock only. */
const TTL = (param: string) => `clock_timestamp() + ${param}::float8 * interval '1 millisecond'`;

/**
 * Lease rows (`name, holder, epoch, expires_at`), one single-statement compare-and-set per call.
 *
 * Every statement runs in autocommit under READ COMMITTED, which is enough: an `UPDATE … WHERE`
 * and the `DO UPDATE … WHERE` of `INSERT … ON CONFLICT` both wait for a concurrent writer of the
 * row and then re-check their condition against the row as that writer committed it, never against
 * a stale snapshot. So of many concurrent `acquire()` calls exactly one finds the lease free and
 * takes it; the others see it held. Expiry is `clock_timestamp()` (the time the statement runs,
 * not `now()`, the transaction's start); the caller's wall clock is never sent.
 *
 * Rows are kept after release (holder NULL) so the next tenure's epoch is the last one + 1.
 */
export class PostgresLeaseStore implements LeaseStore {
  constructor(
    private readonly db: PgDb,
    private readonly listener: PgListener,
  ) {}

  async acquire(name: string, holder: string, ttlMs: number): Promise<AcquireResult> {
    const t = this.db.t("leases");
    return this.db.withClient("acquire", async (client) => {
      // Free (never seen, released or expired): take it with the next epoch. Held live by the same
      // holder: extend, same epoch. Held live by another: the WHERE fails and nothing is returned.
      const won = await client.query<{ epoch: string }>(
        `INSERT INTO ${t} AS l (name, holder, epoch, expires_at) VALUES ($1, $2, 1, ${TTL("$3")})
         ON CONFLICT (name) DO UPDATE SET
           epoch = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp()
                        THEN l.epoch ELSE l.epoch + 1 END,
           holder = EXCLUDED.holder,
           expires_at = ${TTL("$3")}
         WHERE l.holder IS NULL OR l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
         RETURNING epoch`,
        [name, holder, ttlMs],
      );
      const row = won.rows[0];
      if (row) return { acquired: true, lease: { name, holder, epoch: Number(row.epoch) } };

      // Lost. A fresh statement sees the winner's commit (the first one's snapshot may predate it).
      // The lease may have lapsed in between: then there is no live holder to name.
      const seen = await client.query<{ holder: string | null; epoch: string; live: boolean; expires_in_ms: number }>(
        `SELECT holder, epoch, holder IS NOT NULL AND expires_at > clock_timestamp() AS live,
                GREATEST(0, EXTRACT(EPOCH FROM expires_at - clock_timestamp()) * 1000)::float8 AS expires_in_ms
           FROM ${t} WHERE name = $1`,
        [name],
      );
      const now = seen.rows[0];
      if (!now) return { acquired: false, holder: null, epoch: 0, expiresInMs: 0 };
      return {
        acquired: false,
        holder: now.live ? now.holder : null,
        epoch: Number(now.epoch),
        expiresInMs: now.live ? now.expires_in_ms : 0,
      };
    });
  }

  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    const r = await this.db.query(
      "renew",
      `UPDATE ${this.db.t("leases")} SET expires_at = ${TTL("$4")}
        WHERE name = $1 AND holder = $2 AND epoch = $3::bigint AND expires_at > clock_timestamp()`,
      [lease.name, lease.holder, lease.epoch, ttlMs],
    );
    return r.rowCount === 1;
  }

  async release(lease: Lease): Promise<void> {
    // Keeps the row and its epoch; the next acquire() sees holder NULL and takes epoch + 1. The
    // NOTIFY is sent for the rows this UPDATE freed, by the same statement (see `watchRelease`).
    await this.db.query(
      "release",
      `WITH freed AS (
         UPDATE ${this.db.t("leases")} SET holder = NULL, expires_at = clock_timestamp()
          WHERE name = $1 AND holder = $2 AND epoch = $3::bigint RETURNING name
       )
       SELECT pg_notify($4, name) FROM freed`,
      [lease.name, lease.holder, lease.epoch, this.db.releaseChannel],
    );
  }

  async current(name: string): Promise<Lease | null> {
    const r = await this.db.query<{ holder: string; epoch: string }>(
      "current",
      `SELECT holder, epoch FROM ${this.db.t("leases")}
        WHERE name = $1 AND holder IS NOT NULL AND expires_at > clock_timestamp()`,
      [name],
    );
    const row = r.rows[0];
    return row ? { name, holder: row.holder, epoch: Number(row.epoch) } : null;
  }

  /**
   * A release NOTIFYs the store's release channel with the lease's name, from the statement that
   * frees the row: NOTIFY is transactional, so it is delivered when that release commits and
   * never for one that did not happen (a stale holder or epoch frees no row and sends nothing).
   * LISTEN is active once this resolves, so a read made after that misses no release.
   *
   * A lease that merely expires sends nothing: no statement runs when `clock_timestamp()` passes
   * `expires_at`, and sending one would need a sweeper. A contender polls beside this watch and
   * never waits past the expiry it was told (`expiresInMs`), so an expiry costs at most one poll.
   *
   * Every watch of the store shares its one LISTEN connection (`PgListener`): a contender that
   * already watches the shard map starts this watch with one round trip.
   */
  watchRelease(name: string, onChange: () => void, onLost: (error: unknown) => void): Promise<() => Promise<void>> {
    return this.listener.listen(
      this.db.releaseChannel,
      (released) => {
        if (released === name) onChange();
      },
      onLost,
    );
  }
}
