import type { FleetStore, PushedConfig, ReplacementLinks, ReplacementRecord } from '../ports.js';
import type { PgPool } from './db.js';

/** Pushed reader config and reader replacements on PostgreSQL (port: FleetStore). */
export class PgFleetStore implements FleetStore {
  constructor(private readonly pool: PgPool) {}

  async lastConfig(readerId: string): Promise<PushedConfig | undefined> {
    const r = await this.pool.query<{ version: number; config_json: string; pushed_at_ms: number }>(
      'SELECT version, config_json, pushed_at_ms FROM reader_config WHERE reader_id = $1',
      [readerId],
    );
    const x = r.rows[0];
    return x ? { version: x.version, configJson: x.config_json, pushedAtMs: x.pushed_at_ms } : undefined;
  }

  async saveConfig(readerId: string, c: PushedConfig): Promise<void> {
    await this.pool.query(
      `INSERT INTO reader_config (reader_id, version, config_json, pushed_at_ms) VALUES ($1, $2, $3, $4)
       ON CONFLICT (reader_id) DO UPDATE SET version = excluded.version, config_json = excluded.config_json,
         pushed_at_ms = excluded.pushed_at_ms`,
      [readerId, c.version, c.configJson, c.pushedAtMs],
    );
  }

  async links(readerId: string): Promise<ReplacementLinks> {
    const r = await this.pool.query<{
      replaced_by: string | null;
      replaced_at_ms: number | null;
      replaces: string | null;
    }>(
      `SELECT (SELECT new_reader_id FROM reader_replacements WHERE old_reader_id = $1) AS replaced_by,
              (SELECT replaced_at_ms FROM reader_replacements WHERE old_reader_id = $1) AS replaced_at_ms,
              (SELECT old_reader_id FROM reader_replacements WHERE new_reader_id = $1) AS replaces`,
      [readerId],
    );
    const x = r.rows[0];
    return {
      replacedBy: x?.replaced_by ?? null,
      replaces: x?.replaces ?? null,
      replacedAtMs: x?.replaced_at_ms ?? null,
    };
  }

  async recordReplacement(r: ReplacementRecord): Promise<void> {
    await this.pool.query(
      `INSERT INTO reader_replacements (old_reader_id, new_reader_id, client_ref, replaced_at_ms, closed_visits)
       VALUES ($1, $2, $3, $4, $5)`,
      [r.oldReaderId, r.newReaderId, r.clientRef, r.replacedAtMs, r.closedVisits],
    );
  }
}
