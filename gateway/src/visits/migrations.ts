import type { Migration } from '../store/db.js';

/**
 * Tables of the visit engine, the card registry and the outbox. They only reference the ingest's
 * contract tables (readers, reader_client_history, events, reader_seq) by value, never by foreign
 * key, so the ingest can evolve its own schema.
 */
export const visitMigrations: Migration[] = [
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
];
