import { randomUUID } from 'node:crypto';
import { VisitEvent } from '../../../../protocol/index.js';
import type { DeadLetter, OutboxRow, OutboxStats, OutboxStore } from '../ports.js';
import { BLOCKED_ERROR } from '../ports.js';
import { inTransaction, LOCK_NS, type PgClient, type PgPool } from './db.js';

interface RawRow {
  id: number;
  idempotency_key: string;
  visit_id: string | null;
  type: string;
  event_json: string;
  attempts: number;
  created_at_ms: number;
  dead_at_ms: number | null;
  last_status: number | null;
  last_error: string | null;
}

const toRow = (r: RawRow): OutboxRow => ({
  id: r.id,
  idempotencyKey: r.idempotency_key,
  visitId: r.visit_id,
  type: r.type,
  eventJson: r.event_json,
  attempts: r.attempts,
  createdAtMs: r.created_at_ms,
});

/**
 * Queues a visit event inside the caller's transaction (the visits turn's write-back); a key already
 * present is ignored. Returns whether it was new.
 */
export async function enqueueOn(
  c: Pick<PgClient, 'query'>,
  event: VisitEvent,
  nowMs: number,
): Promise<boolean> {
  const p = VisitEvent.parse(event);
  const r = await c.query(
    `INSERT INTO outbox (idempotency_key, visit_id, type, event_json, state, created_at_ms)
     VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (idempotency_key) DO NOTHING`,
    [p.idempotencyKey, p.visitId, p.type, JSON.stringify(p), nowMs],
  );
  return (r.rowCount ?? 0) > 0;
}

/**
 * The outbox on PostgreSQL, forwarded by every gateway instance at once without doubles:
 *
 * - `claim` hands each pending row to one forwarder for a lease (`claimed_by`, `claimed_until_ms`):
 *   rows are picked in id order with `FOR UPDATE SKIP LOCKED`, and a row whose lease has not ended is
 *   not offered to anyone else. A forwarder killed mid-delivery leaves its lease to run out; the row
 *   is then claimed again (at-least-once, the backend dedupes by idempotency key).
 * - A visit's events stay in order across forwarders: a row is not claimed while an earlier pending row
 *   of the same visit is leased to someone (its start must be delivered before its end). Claims are
 *   serialised by a transaction-level advisory lock so that check sees every committed lease: a claim
 *   is one short statement, so this costs little and no instance can slip a visit's end past its start.
 */
export class PgOutbox implements OutboxStore {
  private readonly pool: PgPool;
  readonly holder: string;
  constructor(opts: { pool: PgPool; holder?: string }) {
    this.pool = opts.pool;
    this.holder = opts.holder ?? `gw-${randomUUID().slice(0, 8)}`;
  }

  claim(limit: number, nowMs: number, leaseMs: number): Promise<OutboxRow[]> {
    return inTransaction(this.pool, async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1, 0)', [LOCK_NS.outbox]);
      const r = await c.query<RawRow>(
        `WITH c AS (
           SELECT id FROM outbox o
            WHERE state = 'pending' AND (claimed_until_ms IS NULL OR claimed_until_ms <= $1)
              AND (visit_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM outbox p WHERE p.visit_id = o.visit_id AND p.state = 'pending'
                   AND p.id < o.id AND p.claimed_until_ms > $1))
            ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
         UPDATE outbox SET claimed_by = $3, claimed_until_ms = $4 FROM c WHERE outbox.id = c.id
         RETURNING outbox.*`,
        [nowMs, limit, this.holder, nowMs + leaseMs],
      );
      return r.rows.sort((a, b) => a.id - b.id).map(toRow);
    });
  }

  async blockBehindDead(nowMs: number): Promise<number> {
    const any = await this.pool.query(`SELECT 1 FROM outbox WHERE state = 'dead' LIMIT 1`);
    if (!any.rowCount) return 0;
    const r = await this.pool.query(
      `UPDATE outbox SET state = 'dead', dead_at_ms = $1, last_error = $2
        WHERE state = 'pending' AND visit_id IS NOT NULL AND EXISTS (
          SELECT 1 FROM outbox d WHERE d.visit_id = outbox.visit_id AND d.state = 'dead' AND d.id < outbox.id)`,
      [nowMs, BLOCKED_ERROR],
    );
    return r.rowCount ?? 0;
  }

  async markDelivered(ids: readonly number[], nowMs: number, status: number): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query(
      `UPDATE outbox SET state = 'delivered', delivered_at_ms = $1, attempts = attempts + 1, last_status = $2,
         last_error = NULL, claimed_until_ms = NULL WHERE id = ANY($3::bigint[]) AND state = 'pending'`,
      [nowMs, status, ids],
    );
  }

  async recordFailure(ids: readonly number[], status: number | null, error: string): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query(
      'UPDATE outbox SET attempts = attempts + 1, last_status = $1, last_error = $2 WHERE id = ANY($3::bigint[])',
      [status, error.slice(0, 500), ids],
    );
  }

  async markDead(id: number, nowMs: number, status: number | null, error: string): Promise<void> {
    await this.pool.query(
      `UPDATE outbox SET state = 'dead', dead_at_ms = $1, attempts = attempts + 1, last_status = $2,
         last_error = $3, claimed_until_ms = NULL WHERE id = $4 AND state = 'pending'`,
      [nowMs, status, error.slice(0, 500), id],
    );
  }

  async pruneDelivered(beforeMs: number, max = 10_000): Promise<number> {
    const r = await this.pool.query(
      `DELETE FROM outbox WHERE id IN (
         SELECT id FROM outbox WHERE state = 'delivered' AND delivered_at_ms < $1 ORDER BY id LIMIT $2)`,
      [beforeMs, max],
    );
    return r.rowCount ?? 0;
  }

  async listDead(limit: number): Promise<DeadLetter[]> {
    const r = await this.pool.query<RawRow>(
      `SELECT * FROM outbox WHERE state = 'dead' ORDER BY id LIMIT $1`,
      [limit],
    );
    return r.rows.map((x) => ({
      id: x.id,
      idempotencyKey: x.idempotency_key,
      visitId: x.visit_id,
      type: x.type,
      attempts: x.attempts,
      createdAtMs: x.created_at_ms,
      deadAtMs: x.dead_at_ms,
      lastStatus: x.last_status,
      lastError: x.last_error,
      event: JSON.parse(x.event_json) as unknown,
    }));
  }

  redrive(id: number): Promise<number> {
    return inTransaction(this.pool, async (c) => {
      const row = await c.query<{ visit_id: string | null }>(
        `SELECT visit_id FROM outbox WHERE id = $1 AND state = 'dead' FOR UPDATE`,
        [id],
      );
      const first = row.rows[0];
      if (!first) return 0;
      const reset = `UPDATE outbox SET state = 'pending', dead_at_ms = NULL, attempts = 0, claimed_until_ms = NULL
                      WHERE state = 'dead'`;
      const r =
        first.visit_id === null
          ? await c.query(`${reset} AND id = $1`, [id])
          : await c.query(`${reset} AND visit_id = $1 AND id >= $2`, [first.visit_id, id]);
      return r.rowCount ?? 0;
    });
  }

  async redriveAll(): Promise<number> {
    const r = await this.pool.query(
      `UPDATE outbox SET state = 'pending', dead_at_ms = NULL, attempts = 0, claimed_until_ms = NULL WHERE state = 'dead'`,
    );
    return r.rowCount ?? 0;
  }

  async stats(): Promise<OutboxStats> {
    const r = await this.pool.query<{ pending: number; dead: number; oldest: number | null }>(
      `SELECT COUNT(*) FILTER (WHERE state = 'pending') AS pending,
              COUNT(*) FILTER (WHERE state = 'dead') AS dead,
              (SELECT created_at_ms FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1) AS oldest
         FROM outbox`,
    );
    const x = r.rows[0];
    return { pending: x?.pending ?? 0, dead: x?.dead ?? 0, oldestPendingCreatedAtMs: x?.oldest ?? null };
  }
}
