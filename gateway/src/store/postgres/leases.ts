import type { PgPool } from './db.js';

/**
 * Named leases for work that must run on ONE gateway instance at a time: the late/missed visit timers,
 * alert sweeps, outbox pruning. An instance runs such a job only while it holds the job's lease; it
 * takes or renews it before each run (`until = now + ttl`), and when it dies the lease runs out and
 * another instance takes over on its next tick. So a timer fires on one instance; the job itself must
 * still be idempotent (its effects keyed, as alerts and outbox rows are), because a holder that stalls
 * past its ttl can overlap the next holder by one run.
 *
 * One statement, atomic under concurrency: the upsert takes the row lock, and the WHERE lets it through
 * only when the lease is free, expired, or already ours.
 */
export async function tryLease(
  pool: PgPool,
  name: string,
  holder: string,
  nowMs: number,
  ttlMs: number,
): Promise<boolean> {
  const r = await pool.query(
    `INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
       WHERE leases.until_ms <= $4 OR leases.holder = excluded.holder
     RETURNING holder`,
    [name, holder, nowMs + ttlMs, nowMs],
  );
  return (r.rowCount ?? 0) > 0;
}

/** Gives a lease up (clean shutdown), so another instance need not wait for it to run out. */
export async function releaseLease(pool: PgPool, name: string, holder: string): Promise<void> {
  await pool.query('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, holder]);
}
