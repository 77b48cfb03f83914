import type { Migration } from './db.js';

/**
 * Contract tables owned by ingest (the store contract in gateway/README.md). The visits engine reads
 * readers, reader_client_history, events and reader_seq; it never writes them.
 */
export const ingestMigrations: Migration[] = [
  {
    id: 'ingest-001',
    up: (db) => {
      db.exec(`
        CREATE TABLE readers (
          reader_id TEXT PRIMARY KEY,
          password_hash TEXT NOT NULL,
          client_ref TEXT,
          label TEXT,
          revoked_at INTEGER,
          created_at INTEGER NOT NULL
        );
        CREATE TABLE reader_client_history (
          reader_id TEXT NOT NULL,
          client_ref TEXT,
          from_ms INTEGER NOT NULL
        );
        CREATE INDEX reader_client_history_by_reader ON reader_client_history (reader_id, from_ms);
        CREATE TABLE events (
          id INTEGER PRIMARY KEY,
          reader_id TEXT NOT NULL,
          seq INTEGER NOT NULL,
          event_json TEXT NOT NULL,
          received_at_ms INTEGER NOT NULL,
          sent_at_json TEXT NOT NULL,
          UNIQUE (reader_id, seq)
        );
        CREATE TABLE reader_seq (
          reader_id TEXT PRIMARY KEY,
          contiguous_upto INTEGER NOT NULL DEFAULT 0,
          max_seen INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE rejects (
          id INTEGER PRIMARY KEY,
          reader_id TEXT,
          reason TEXT NOT NULL,
          detail TEXT NOT NULL,
          at_ms INTEGER NOT NULL
        );
        CREATE INDEX rejects_by_reader ON rejects (reader_id, id);
        CREATE TABLE duplicate_conflicts (
          reader_id TEXT NOT NULL,
          seq INTEGER NOT NULL,
          event_json TEXT NOT NULL,
          at_ms INTEGER NOT NULL
        );
        CREATE TABLE reader_status (
          reader_id TEXT PRIMARY KEY,
          status_json TEXT NOT NULL,
          received_at_ms INTEGER NOT NULL
        );
        CREATE TABLE command_results (
          reader_id TEXT NOT NULL,
          command_id TEXT NOT NULL,
          result_json TEXT NOT NULL,
          received_at_ms INTEGER NOT NULL,
          PRIMARY KEY (reader_id, command_id)
        );
      `);
    },
  },
  {
    id: 'ingest-002',
    up: (db) => {
      // Verified-credential tags (HMAC under a key kept outside the DB): see broker/credentials.ts.
      db.exec('CREATE TABLE reader_auth_cache (reader_id TEXT PRIMARY KEY, tag BLOB NOT NULL)');
    },
  },
  {
    id: 'ingest-003',
    up: (db) => {
      // Events that can never be valid (salvaged batches): held by sequence number, acked as rejected.
      db.exec(`CREATE TABLE rejected_events (
        reader_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (reader_id, seq)
      )`);
    },
  },
];
