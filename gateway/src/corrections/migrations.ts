import type { Migration } from '../store/sqlite/db.js';

/**
 * The corrections table (ids 'corrections-NNN'), applied by the composition root after the gateway's
 * own list (like the care tables). Append-only: a correction is never changed or removed, a later one
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
];
