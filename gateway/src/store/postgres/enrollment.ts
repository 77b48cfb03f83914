import type { EnrollmentRow, EnrollmentStore } from '../ports.js';
import { inTransaction, type PgPool } from './db.js';
import { toEnrollmentRow, type RawEnrollment } from '../rows.js';

const toRow = toEnrollmentRow;
type Raw = RawEnrollment;

/**
 * One-time enrollment codes on PostgreSQL (port: EnrollmentStore). Several instances: `claim` is one
 * conditional UPDATE (`… WHERE used_at IS NULL`); a second instance claiming the same code at the same
 * time waits on the row lock, re-checks the condition on the committed row and gets false, so a code
 * provisions at most one reader.
 */
export class PgEnrollmentStore implements EnrollmentStore {
  constructor(private readonly pool: PgPool) {}

  issue(r: Omit<EnrollmentRow, 'id' | 'usedAtMs' | 'usedFrom'>): Promise<void> {
    return inTransaction(this.pool, async (c) => {
      const now = r.createdAtMs;
      // a code still pending for the same reader is withdrawn: only the newest works
      await c.query(
        'UPDATE enrollments SET expires_at = $1 WHERE reader_id = $2 AND used_at IS NULL AND expires_at > $1',
        [now, r.readerId],
      );
      if (r.replacesReaderId !== null) {
        await c.query(
          'UPDATE enrollments SET expires_at = $1 WHERE replaces_reader_id = $2 AND used_at IS NULL AND expires_at > $1',
          [now, r.replacesReaderId],
        );
      }
      await c.query(
        `INSERT INTO enrollments (code_hash, reader_id, client_ref, label, created_at, expires_at, replaces_reader_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [r.codeHash, r.readerId, r.clientRef, r.label, now, r.expiresAtMs, r.replacesReaderId],
      );
    });
  }

  async list(limit: number): Promise<EnrollmentRow[]> {
    const r = await this.pool.query<Raw>('SELECT * FROM enrollments ORDER BY id DESC LIMIT $1', [limit]);
    return r.rows.map(toRow);
  }

  async byCodeHash(codeHash: string): Promise<EnrollmentRow | undefined> {
    const r = await this.pool.query<Raw>('SELECT * FROM enrollments WHERE code_hash = $1', [codeHash]);
    return r.rows[0] ? toRow(r.rows[0]) : undefined;
  }

  async claim(id: number, atMs: number, from: string): Promise<boolean> {
    const r = await this.pool.query(
      'UPDATE enrollments SET used_at = $1, used_from = $2 WHERE id = $3 AND used_at IS NULL',
      [atMs, from, id],
    );
    return r.rowCount === 1;
  }

  async unclaim(id: number): Promise<void> {
    await this.pool.query('UPDATE enrollments SET used_at = NULL, used_from = NULL WHERE id = $1', [id]);
  }

  async readerIdTaken(readerId: string): Promise<boolean> {
    const r = await this.pool.query('SELECT 1 FROM enrollments WHERE reader_id = $1 LIMIT 1', [readerId]);
    return (r.rowCount ?? 0) > 0;
  }
}
