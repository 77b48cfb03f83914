import type { FleetStore, PushedConfig, ReplacementLinks, ReplacementRecord } from '../ports.js';
import type { Db } from './db.js';
import { statementCache } from './stmt-cache.js';

/** Pushed reader config and reader replacements on SQLite (port: FleetStore in ../ports.ts). */
export class SqliteFleetStore implements FleetStore {
  private readonly q: ReturnType<typeof statementCache>;
  constructor(db: Db) {
    this.q = statementCache(db);
  }

  lastConfig(readerId: string): PushedConfig | undefined {
    const x = this.q('SELECT version, config_json, pushed_at_ms FROM reader_config WHERE reader_id = ?').get(
      readerId,
    ) as { version: number; config_json: string; pushed_at_ms: number } | undefined;
    return x ? { version: x.version, configJson: x.config_json, pushedAtMs: x.pushed_at_ms } : undefined;
  }

  saveConfig(readerId: string, c: PushedConfig): void {
    this.q(
      `INSERT INTO reader_config (reader_id, version, config_json, pushed_at_ms) VALUES (?, ?, ?, ?)
       ON CONFLICT (reader_id) DO UPDATE SET version = excluded.version, config_json = excluded.config_json,
         pushed_at_ms = excluded.pushed_at_ms`,
    ).run(readerId, c.version, c.configJson, c.pushedAtMs);
  }

  links(readerId: string): ReplacementLinks {
    const by = this.q(
      'SELECT new_reader_id, replaced_at_ms FROM reader_replacements WHERE old_reader_id = ?',
    ).get(readerId) as { new_reader_id: string; replaced_at_ms: number } | undefined;
    const of = this.q('SELECT old_reader_id FROM reader_replacements WHERE new_reader_id = ?').get(
      readerId,
    ) as { old_reader_id: string } | undefined;
    return {
      replacedBy: by?.new_reader_id ?? null,
      replaces: of?.old_reader_id ?? null,
      replacedAtMs: by?.replaced_at_ms ?? null,
    };
  }

  recordReplacement(r: ReplacementRecord): void {
    this.q(
      `INSERT INTO reader_replacements (old_reader_id, new_reader_id, client_ref, replaced_at_ms, closed_visits)
       VALUES (?, ?, ?, ?, ?)`,
    ).run(r.oldReaderId, r.newReaderId, r.clientRef, r.replacedAtMs, r.closedVisits);
  }
}
