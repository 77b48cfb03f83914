import type { EpochLog, EpochRow } from '../epochs.js';
import type { PgPool } from './db.js';

/**
 * Recorded journal epochs on PostgreSQL (port: EpochLog in ../epochs.ts; table reader_epochs).
 * Two instances may see a reader's new epoch at once: the first INSERT wins (ON CONFLICT DO NOTHING) and
 * both read the recorded offset back.
 */
export class PgEpochLog implements EpochLog {
  constructor(private readonly pool: PgPool) {}

  async epochs(readerId: string): Promise<EpochRow[]> {
    const r = await this.pool.query<{ epoch: string; epoch_offset: number; opened_at_ms: number }>(
      'SELECT epoch, epoch_offset, opened_at_ms FROM reader_epochs WHERE reader_id = $1 ORDER BY epoch_offset, opened_at_ms',
      [readerId],
    );
    return r.rows.map((x) => ({ epoch: x.epoch, offset: x.epoch_offset, openedAtMs: x.opened_at_ms }));
  }

  async open(readerId: string, row: EpochRow): Promise<EpochRow[]> {
    await this.pool.query(
      `INSERT INTO reader_epochs (reader_id, epoch, epoch_offset, opened_at_ms) VALUES ($1, $2, $3, $4)
       ON CONFLICT (reader_id, epoch) DO NOTHING`,
      [readerId, row.epoch, row.offset, row.openedAtMs],
    );
    return this.epochs(readerId);
  }

  async storedEvent(readerId: string, seq: number): Promise<string | undefined> {
    const r = await this.pool.query<{ event_json: string }>(
      'SELECT event_json FROM events WHERE reader_id = $1 AND seq = $2',
      [readerId, seq],
    );
    return r.rows[0]?.event_json;
  }
}
