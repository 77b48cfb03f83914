import type { Migration } from '../store/db.js';

/** One-time enrollment codes (stored as keyed hashes only). */
export const enrollmentMigrations: Migration[] = [
  {
    id: 'enrollment-001',
    up: (db) => {
      db.exec(`
        CREATE TABLE IF NOT EXISTS enrollments (
          id INTEGER PRIMARY KEY,
          code_hash TEXT NOT NULL UNIQUE,
          reader_id TEXT NOT NULL,
          client_ref TEXT,
          label TEXT,
          created_at INTEGER NOT NULL,
          expires_at INTEGER NOT NULL,
          used_at INTEGER,
          used_from TEXT
        );
        CREATE INDEX IF NOT EXISTS enrollments_reader ON enrollments(reader_id);
      `);
    },
  },
  {
    // A code that provisions a NEW reader id replacing an existing one (readers replace).
    id: 'enrollment-002',
    up: (db) => {
      db.exec('ALTER TABLE enrollments ADD COLUMN replaces_reader_id TEXT');
    },
  },
];
