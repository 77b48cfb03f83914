import type { EnrollmentRow, EnrollmentStore } from '../ports.js';
import type { Db } from './db.js';
import { statementCache } from './stmt-cache.js';
import { toEnrollmentRow, type RawEnrollment } from '../rows.js';

const toRow = toEnrollmentRow;
type Raw = RawEnrollment;

/**
 * One-time enrollment codes on SQLite (port: EnrollmentStore in ../ports.ts). Codes are stored as
 * keyed hashes only (the caller hashes). One process owns the file, so `claim`'s conditional UPDATE is
 * enough to make a code provision at most one reader.
 */
export class SqliteEnrollmentStore implements EnrollmentStore {
  private readonly q: ReturnType<typeof statementCache>;
  constructor(private readonly db: Db) {
    this.q = statementCache(db);
  }

  issue(r: Omit<EnrollmentRow, 'id' | 'usedAtMs' | 'usedFrom'>): void {
    this.db.transaction(() => {
      const now = r.createdAtMs;
      // a code still pending for the same reader is withdrawn: only the newest works
      this.q(
        'UPDATE enrollments SET expires_at = ? WHERE reader_id = ? AND used_at IS NULL AND expires_at > ?',
      ).run(now, r.readerId, now);
      if (r.replacesReaderId !== null) {
        // likewise a pending replacement code for the same old reader: one replacement at a time
        this.q(
          'UPDATE enrollments SET expires_at = ? WHERE replaces_reader_id = ? AND used_at IS NULL AND expires_at > ?',
        ).run(now, r.replacesReaderId, now);
      }
      this.q(
        `INSERT INTO enrollments (code_hash, reader_id, client_ref, label, created_at, expires_at, replaces_reader_id)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(r.codeHash, r.readerId, r.clientRef, r.label, now, r.expiresAtMs, r.replacesReaderId);
    })();
  }

  list(limit: number): EnrollmentRow[] {
    return (this.q('SELECT * FROM enrollments ORDER BY id DESC LIMIT ?').all(limit) as Raw[]).map(toRow);
  }

  byCodeHash(codeHash: string): EnrollmentRow | undefined {
    const r = this.q('SELECT * FROM enrollments WHERE code_hash = ?').get(codeHash) as Raw | undefined;
    return r ? toRow(r) : undefined;
  }

  claim(id: number, atMs: number, from: string): boolean {
    return (
      this.q('UPDATE enrollments SET used_at = ?, used_from = ? WHERE id = ? AND used_at IS NULL').run(
        atMs,
        from,
        id,
      ).changes === 1
    );
  }

  unclaim(id: number): void {
    this.q('UPDATE enrollments SET used_at = NULL, used_from = NULL WHERE id = ?').run(id);
  }

  readerIdTaken(readerId: string): boolean {
    return this.q('SELECT 1 FROM enrollments WHERE reader_id = ? LIMIT 1').get(readerId) !== undefined;
  }
}
