import type { Migration } from './db.js';

/**
 * The corrections tables (ids 'corrections-NNN'), in the instance's ordered list after the base list and the
 * care tables (./migrations.ts `instanceSqliteMigrations`). Append-only: a correction is never changed or removed, a later one
 * supersedes it; `before_json` of a visit's first correction is the visit as the readers recorded it.
 */
export const correctionMigrations: readonly Migration[] = [
  {
    id: 'corrections-001',
    up: (db) => {
      db.exec(`
        CREATE TABLE visit_corrections (
          correction_id INTEGER PRIMARY KEY AUTOINCREMENT,
          reader_id TEXT NOT NULL,
          visit_id TEXT NOT NULL,
          reason_code TEXT NOT NULL,
          note TEXT,
          actor TEXT NOT NULL,
          request_id TEXT,
          at_ms INTEGER NOT NULL,
          before_json TEXT NOT NULL,
          after_json TEXT NOT NULL
        );
        CREATE INDEX visit_corrections_visit ON visit_corrections (reader_id, visit_id, correction_id);
        CREATE UNIQUE INDEX visit_corrections_request ON visit_corrections (actor, request_id)
          WHERE request_id IS NOT NULL;
        CREATE TRIGGER visit_corrections_no_update BEFORE UPDATE ON visit_corrections
          BEGIN SELECT RAISE(ABORT, 'visit_corrections is append-only'); END;
        CREATE TRIGGER visit_corrections_no_delete BEFORE DELETE ON visit_corrections
          BEGIN SELECT RAISE(ABORT, 'visit_corrections is append-only'); END;
      `);
    },
  },
  {
    // issue 13: added visits and withdrawn taps are corrections too (kind); period locks; care staff's flags
    id: 'corrections-002',
    up: (db) => {
      db.exec(`
        ALTER TABLE visit_corrections ADD COLUMN kind TEXT NOT NULL DEFAULT 'times';
        CREATE INDEX visit_corrections_kind ON visit_corrections (kind, reader_id, visit_id);
        CREATE TABLE period_locks (
          area_id TEXT NOT NULL,
          month TEXT NOT NULL,
          locked_by TEXT NOT NULL,
          locked_at_ms INTEGER NOT NULL,
          note TEXT,
          PRIMARY KEY (area_id, month)
        );
        CREATE TABLE visit_flags (
          flag_id INTEGER PRIMARY KEY AUTOINCREMENT,
          staff_ref TEXT NOT NULL,
          actor TEXT NOT NULL,
          reader_id TEXT,
          visit_id TEXT,
          client_ref TEXT,
          date TEXT,
          message TEXT NOT NULL,
          request_id TEXT,
          created_at_ms INTEGER NOT NULL,
          resolved_by TEXT,
          resolved_at_ms INTEGER,
          resolution TEXT,
          resolution_note TEXT
        );
        CREATE INDEX visit_flags_open ON visit_flags (resolved_at_ms, flag_id);
        CREATE INDEX visit_flags_staff ON visit_flags (staff_ref, flag_id);
        CREATE UNIQUE INDEX visit_flags_request ON visit_flags (actor, request_id)
          WHERE request_id IS NOT NULL;
      `);
    },
  },
];
