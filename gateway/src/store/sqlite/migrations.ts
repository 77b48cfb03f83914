import { auditSqliteMigrations } from './audit.js';
import { authFailureMigrations, authSqliteMigrations } from './auth.js';
import { careMigrations } from './care-migrations.js';
import { correctionMigrations } from './corrections-migrations.js';
import type { Migration } from './db.js';

/**
 * THE ordered schema of the gateway on SQLite: one list, applied once by the composition root
 * (`openSqliteStore`), each step in its own transaction, recorded by id in `schema_migrations`.
 *
 * Rules (see ../README.md "Migrations"):
 *  - ids never change and entries are never edited or reordered once released: a database created by
 *    an earlier version has some prefix of these ids applied (the order below is the order in which
 *    earlier versions applied them on a fresh database) and gets only the missing ones;
 *  - a new table group appends its steps at the end, with its own id prefix;
 *  - the PostgreSQL list (store/postgres/) has the same ids where a step exists on both engines.
 *
 * Contract tables owned by ingest (readers, reader_client_history, events, reader_seq): the visits
 * engine reads them and never writes them. The visit tables reference them by value, never by
 * foreign key, so the ingest schema can evolve on its own.
 */
export const sqliteMigrations: readonly Migration[] = [
  // ---- ingest: readers, events, per-reader sequence state, rejects, status, command results

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
  // ---- visits: visit engine, card registry, outbox (delivered in id order: a start precedes its end)

  {
    id: 'visits-001',
    up: (db) => {
      db.exec(`
        CREATE TABLE cards (
          card_ref TEXT PRIMARY KEY,
          staff_ref TEXT NOT NULL,
          revoked_at INTEGER,
          created_at INTEGER NOT NULL
        );
        -- Per reader: every event with seq <= processed_upto has been turned into visits/outbox rows.
        CREATE TABLE visit_cursor (
          reader_id TEXT PRIMARY KEY,
          processed_upto INTEGER NOT NULL
        );
        -- Per reader and boot: device wall = monotonic + offset_ms. exact=1 from a synced clock,
        -- 0 from a batch sentAt + gateway receive time (an upper bound: the smallest one wins).
        CREATE TABLE time_anchors (
          reader_id TEXT NOT NULL,
          boot_id TEXT NOT NULL,
          offset_ms INTEGER NOT NULL,
          exact INTEGER NOT NULL,
          PRIMARY KEY (reader_id, boot_id)
        );
        CREATE TABLE visit_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE visits (
          reader_id TEXT NOT NULL,
          visit_id TEXT NOT NULL,
          client_ref TEXT,
          card_ref TEXT NOT NULL,
          staff_ref TEXT,
          group_id TEXT,
          state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
          started_at_ms INTEGER,
          start_seq INTEGER,
          ended_at_ms INTEGER,
          end_seq INTEGER,
          end_reason TEXT,
          time_quality TEXT NOT NULL,
          anomalies_json TEXT NOT NULL DEFAULT '[]',
          late_end_seq INTEGER,
          updated_at_ms INTEGER NOT NULL,
          PRIMARY KEY (reader_id, visit_id)
        );
        CREATE INDEX visits_open ON visits (state, reader_id);
        CREATE INDEX visits_staff ON visits (staff_ref, started_at_ms);
        CREATE INDEX visits_card ON visits (card_ref, started_at_ms);
        CREATE INDEX visits_visit_id ON visits (visit_id);
        CREATE INDEX visits_updated ON visits (updated_at_ms);
        CREATE TABLE anomalies (
          id INTEGER PRIMARY KEY,
          idempotency_key TEXT NOT NULL UNIQUE,
          kind TEXT NOT NULL,
          reader_id TEXT NOT NULL,
          visit_id TEXT,
          card_ref TEXT,
          staff_ref TEXT,
          client_ref TEXT,
          at_ms INTEGER NOT NULL,
          seq INTEGER,
          detail TEXT NOT NULL,
          created_at_ms INTEGER NOT NULL
        );
        CREATE INDEX anomalies_kind ON anomalies (kind, id);
        CREATE TABLE visit_audit (
          id INTEGER PRIMARY KEY,
          reader_id TEXT NOT NULL,
          visit_id TEXT NOT NULL,
          action TEXT NOT NULL,
          actor TEXT NOT NULL,
          reason TEXT NOT NULL,
          at_ms INTEGER NOT NULL
        );
        -- The outbox: one row per visit event, delivered in id order (so a visit's start precedes its end).
        CREATE TABLE outbox (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          idempotency_key TEXT NOT NULL UNIQUE,
          visit_id TEXT,
          type TEXT NOT NULL,
          event_json TEXT NOT NULL,
          state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
          attempts INTEGER NOT NULL DEFAULT 0,
          created_at_ms INTEGER NOT NULL,
          delivered_at_ms INTEGER,
          dead_at_ms INTEGER,
          last_status INTEGER,
          last_error TEXT
        );
        CREATE INDEX outbox_state ON outbox (state, id);
        CREATE INDEX outbox_visit ON outbox (visit_id, id);
      `);
    },
  },
  // ---- card attribution: resolving an unknown card's earlier taps once it is assigned

  {
    id: 'attribution-001',
    up: (db) => {
      db.exec(`
        ALTER TABLE anomalies ADD COLUMN resolved_at_ms INTEGER;
        ALTER TABLE anomalies ADD COLUMN resolved_by TEXT;
        ALTER TABLE anomalies ADD COLUMN resolution TEXT;
        ALTER TABLE anomalies ADD COLUMN resolved_staff_ref TEXT;
        CREATE INDEX anomalies_unknown_card_open ON anomalies (card_ref)
          WHERE kind = 'unknown-card' AND staff_ref IS NULL AND resolved_at_ms IS NULL;
        CREATE INDEX visits_unattributed ON visits (card_ref) WHERE staff_ref IS NULL;
      `);
    },
  },
  // ---- enrollment: one-time codes, stored as keyed hashes only

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
  // ---- fleet: reader replacements (who replaced whom) and pushed reader config

  {
    id: 'fleet-replace-001',
    up: (db) => {
      db.exec(`CREATE TABLE IF NOT EXISTS reader_replacements (
        old_reader_id TEXT PRIMARY KEY,
        new_reader_id TEXT NOT NULL UNIQUE,
        client_ref TEXT,
        replaced_at_ms INTEGER NOT NULL,
        closed_visits INTEGER NOT NULL
      )`);
    },
  },

  {
    id: 'fleet-001',
    up: (db) => {
      db.exec(`CREATE TABLE IF NOT EXISTS reader_config (
        reader_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        config_json TEXT NOT NULL,
        pushed_at_ms INTEGER NOT NULL
      )`);
    },
  },
  // ---- card lifecycle (issue 16): validity dates and lost-card replacement links

  {
    id: 'cards-002',
    up: (db) => {
      db.exec(`
        ALTER TABLE cards ADD COLUMN valid_from_ms INTEGER;
        ALTER TABLE cards ADD COLUMN valid_to_ms INTEGER;
        ALTER TABLE cards ADD COLUMN replaced_by TEXT;
      `);
    },
  },
  // ---- reports (issue 12): visits by start time (a report reads one window of visits, not the table)

  {
    id: 'reports-001',
    up: (db) => {
      db.exec('CREATE INDEX IF NOT EXISTS visits_started ON visits (started_at_ms)');
    },
  },
  // ---- ingest (issue 16): journal epochs, each placed at an offset in the reader's gateway seq space

  {
    id: 'ingest-epochs-001',
    up: (db) => {
      db.exec(`CREATE TABLE IF NOT EXISTS reader_epochs (
        reader_id TEXT NOT NULL,
        epoch TEXT NOT NULL,
        epoch_offset INTEGER NOT NULL,
        opened_at_ms INTEGER NOT NULL,
        PRIMARY KEY (reader_id, epoch)
      )`);
    },
  },
  // ---- access (issue 14): accounts, sessions, API tokens and the audit log, applied by their adapters
  // before (a database from then has these ids recorded already)
  ...authSqliteMigrations,
  ...auditSqliteMigrations,
  ...authFailureMigrations,
  // ---- fleet-key rotation (issue 16, keys/rotate.ts): old pseudonym -> new, and the rotations made. Before
  // issue 14 these were created on the first rotation (IF NOT EXISTS: such a file upgrades as it is).
  // SQLite only: a rotation on PostgreSQL is refused.
  {
    id: 'keys-001',
    up: (db) => {
      db.exec(`
        CREATE TABLE IF NOT EXISTS card_ref_map (
          old_ref TEXT PRIMARY KEY,
          new_ref TEXT NOT NULL,
          rotated_at_ms INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS card_ref_map_new ON card_ref_map (new_ref);
        CREATE TABLE IF NOT EXISTS fleet_key_rotations (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          at_ms INTEGER NOT NULL,
          old_key_id TEXT NOT NULL,
          new_key_id TEXT NOT NULL,
          mapped INTEGER NOT NULL,
          dropped INTEGER NOT NULL,
          actor TEXT NOT NULL
        );`);
    },
  },
  // ---- erasure on PostgreSQL (issue 16, retention/pg.ts): this instance's mark in PostgreSQL's erasure_log.
  // SQLite only (each instance's own file); created on first use before issue 14 (IF NOT EXISTS).
  {
    id: 'erasure-applied-001',
    up: (db) => {
      db.exec(`CREATE TABLE IF NOT EXISTS erasure_log_applied (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        upto INTEGER NOT NULL
      )`);
    },
  },
];

/**
 * Every step of an instance's SQLite file, in the order a fresh file gets them: the list above, then the care
 * plan's (`care-NNN`) and the visit corrections' (`corrections-NNN`) steps, which earlier versions applied after
 * it (so a file of theirs has a prefix of these ids). What the composition root applies (gateway/wiring.ts
 * `openInstance`); the embedded gateway adds the reports' steps after it (their triggers sit on these tables).
 */
export const instanceSqliteMigrations: readonly Migration[] = [
  ...sqliteMigrations,
  ...careMigrations,
  ...correctionMigrations,
];
