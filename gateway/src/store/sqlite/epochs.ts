import type { EpochLog, EpochRow } from '../epochs.js';
import type { Db } from './db.js';
import { statementCache } from './stmt-cache.js';

/** Recorded journal epochs on SQLite (port: EpochLog in ../epochs.ts; table reader_epochs). */
export function createSqliteEpochLog(db: Db): EpochLog {
  const q = statementCache(db);
  const list = (readerId: string): EpochRow[] =>
    (
      q(
        'SELECT epoch, epoch_offset, opened_at_ms FROM reader_epochs WHERE reader_id = ? ORDER BY epoch_offset, opened_at_ms',
      ).all(readerId) as Array<{ epoch: string; epoch_offset: number; opened_at_ms: number }>
    ).map((r) => ({ epoch: r.epoch, offset: r.epoch_offset, openedAtMs: r.opened_at_ms }));
  return {
    epochs: list,
    open(readerId, row) {
      q(
        'INSERT OR IGNORE INTO reader_epochs (reader_id, epoch, epoch_offset, opened_at_ms) VALUES (?, ?, ?, ?)',
      ).run(readerId, row.epoch, row.offset, row.openedAtMs);
      return list(readerId);
    },
    storedEvent(readerId, seq) {
      return q('SELECT event_json FROM events WHERE reader_id = ? AND seq = ?').pluck().get(readerId, seq) as
        string | undefined;
    },
  };
}
