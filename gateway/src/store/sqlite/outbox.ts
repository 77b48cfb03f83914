import { VisitEvent } from '../../../../protocol/index.js';
import type { DeadLetter, OutboxRow, OutboxStats, OutboxStore } from '../ports.js';
import { BLOCKED_ERROR } from '../ports.js';
import type { Db } from './db.js';
import { statementCache } from './stmt-cache.js';
import { writeWhenFree } from './write-when-free.js';

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

/**
 * The outbox table on SQLite (port: OutboxStore in ../ports.ts): visit events waiting for the planning
 * backend, in id order. Rows are written by the visits turn and by card attribution inside their
 * transactions (`enqueue`, SQLite-side only); the forwarder only changes their state. "delivered" is
 * set only after a 2xx; "dead" rows wait for an operator's re-drive. One forwarder per database, so
 * `claim` needs no lease here.
 */
export class SqliteOutbox implements OutboxStore {
  private readonly db: Db;
  private readonly q: ReturnType<typeof statementCache>;
  constructor(opts: { db: Db }) {
    this.db = opts.db;
    this.q = statementCache(opts.db);
  }

  /** Validates and inserts an event; a key already present is ignored (idempotent re-processing). */
  enqueue(event: VisitEvent, nowMs: number): boolean {
    const parsed = VisitEvent.parse(event);
    const visitId = parsed.visitId;
    const r = this.q(
      `INSERT OR IGNORE INTO outbox (idempotency_key, visit_id, type, event_json, state, created_at_ms)
         VALUES (?, ?, ?, ?, 'pending', ?)`,
    ).run(parsed.idempotencyKey, visitId, parsed.type, JSON.stringify(parsed), nowMs);
    return r.changes > 0;
  }

  /**
   * Moves pending rows behind a dead row of the same visit to the dead letters too, so a visit's end is
   * never delivered before its start. Returns how many rows it moved.
   */
  blockBehindDead(nowMs: number): number {
    if (this.q(`SELECT 1 FROM outbox WHERE state = 'dead' LIMIT 1`).get() === undefined) return 0;
    return this.q(
      `UPDATE outbox SET state = 'dead', dead_at_ms = ?, last_error = ?
         WHERE state = 'pending' AND visit_id IS NOT NULL AND EXISTS (
           SELECT 1 FROM outbox d WHERE d.visit_id = outbox.visit_id AND d.state = 'dead' AND d.id < outbox.id)`,
    ).run(nowMs, BLOCKED_ERROR).changes;
  }

  claim(limit: number, _nowMs?: number, _leaseMs?: number): OutboxRow[] {
    const rows = this.q(`SELECT * FROM outbox WHERE state = 'pending' ORDER BY id LIMIT ?`).all(
      limit,
    ) as RawRow[];
    return rows.map((r) => ({
      id: r.id,
      idempotencyKey: r.idempotency_key,
      visitId: r.visit_id,
      type: r.type,
      eventJson: r.event_json,
      attempts: r.attempts,
      createdAtMs: r.created_at_ms,
    }));
  }

  // The forwarder's writes wait for the write lock off the event loop (write-when-free.ts): with the writer
  // thread, its ingest commits and visits turns hold the lock most of the time under load.
  markDelivered(ids: readonly number[], nowMs: number, status: number): Promise<void> {
    const st = this.q(
      `UPDATE outbox SET state = 'delivered', delivered_at_ms = ?, attempts = attempts + 1, last_status = ?,
       last_error = NULL WHERE id = ? AND state = 'pending'`,
    );
    return writeWhenFree(this.db, () => ids.forEach((id) => st.run(nowMs, status, id)));
  }

  recordFailure(ids: readonly number[], status: number | null, error: string): Promise<void> {
    const st = this.q(
      'UPDATE outbox SET attempts = attempts + 1, last_status = ?, last_error = ? WHERE id = ?',
    );
    return writeWhenFree(this.db, () => ids.forEach((id) => st.run(status, error.slice(0, 500), id)));
  }

  markDead(id: number, nowMs: number, status: number | null, error: string): void {
    this.q(
      `UPDATE outbox SET state = 'dead', dead_at_ms = ?, attempts = attempts + 1, last_status = ?,
         last_error = ? WHERE id = ? AND state = 'pending'`,
    ).run(nowMs, status, error.slice(0, 500), id);
  }

  /** Deletes up to `max` rows delivered before `beforeMs` (keys stay unique among kept rows). */
  pruneDelivered(beforeMs: number, max = 10_000): number {
    return this.q(
      `DELETE FROM outbox WHERE id IN (
         SELECT id FROM outbox WHERE state = 'delivered' AND delivered_at_ms < ? ORDER BY id LIMIT ?)`,
    ).run(beforeMs, max).changes;
  }

  listDead(limit: number): DeadLetter[] {
    const rows = this.q(`SELECT * FROM outbox WHERE state = 'dead' ORDER BY id LIMIT ?`).all(
      limit,
    ) as RawRow[];
    return rows.map((r) => ({
      id: r.id,
      idempotencyKey: r.idempotency_key,
      visitId: r.visit_id,
      type: r.type,
      attempts: r.attempts,
      createdAtMs: r.created_at_ms,
      deadAtMs: r.dead_at_ms,
      lastStatus: r.last_status,
      lastError: r.last_error,
      event: JSON.parse(r.event_json) as unknown,
    }));
  }

  /**
   * Re-drives one dead letter (and the later dead rows of the same visit that it blocked).
   * Returns how many rows went back to pending; 0 when `id` is not a dead letter.
   */
  redrive(id: number): number {
    return this.db.transaction(() => {
      const row = this.q(`SELECT visit_id FROM outbox WHERE id = ? AND state = 'dead'`).get(id) as
        { visit_id: string | null } | undefined;
      if (!row) return 0;
      const reset = `UPDATE outbox SET state = 'pending', dead_at_ms = NULL, attempts = 0 WHERE state = 'dead'`;
      if (row.visit_id === null) return this.q(`${reset} AND id = ?`).run(id).changes;
      return this.q(`${reset} AND visit_id = ? AND id >= ?`).run(row.visit_id, id).changes;
    })();
  }

  redriveAll(): number {
    return this.q(
      `UPDATE outbox SET state = 'pending', dead_at_ms = NULL, attempts = 0 WHERE state = 'dead'`,
    ).run().changes;
  }

  stats(): OutboxStats {
    const count = (state: string): number =>
      (this.q('SELECT COUNT(*) AS n FROM outbox WHERE state = ?').get(state) as { n: number }).n;
    const oldest = this.q(
      `SELECT created_at_ms AS t FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1`,
    ).get() as { t: number } | undefined;
    return { pending: count('pending'), dead: count('dead'), oldestPendingCreatedAtMs: oldest?.t ?? null };
  }
}
