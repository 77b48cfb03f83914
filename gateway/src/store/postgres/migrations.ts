/**
 * The PostgreSQL schema: one ordered list, applied once by the composition root (`migrate()` in
 * ./db.ts, under an advisory lock so several instances starting together apply each step once).
 *
 * It mirrors the SQLite schema (store/sqlite/migrations.ts) table for table and column for column, with
 * the same step ids where a step exists on both engines. PostgreSQL started with the schema as it was at
 * issue 14, so SQLite's later additions to a group are folded into the group's first step here
 * (ingest-002/003 into ingest-001, enrollment-002 into enrollment-001); new steps are appended to both
 * lists with the same id from now on. Differences:
 * - epoch milliseconds and sequence numbers are BIGINT (read back as JS numbers: ./db.ts);
 * - SQLite's rowid keys are BIGSERIAL (`events.id`, `outbox.id`, `anomalies.id`, ...). A sequence value
 *   is taken at INSERT, not at COMMIT, so with several writers a smaller id can commit after a larger
 *   one: nothing may use "id > last seen id" as a cursor over rows other instances write (the outbox
 *   claims pending rows by state, not by a cursor);
 * - JSON stays TEXT: the duplicate-conflict check compares the stored text byte for byte (jsonb would
 *   normalise it);
 * - the outbox has a lease (`claimed_by`, `claimed_until_ms`) so several forwarders never send the same
 *   row at the same time (`FOR UPDATE SKIP LOCKED` claims), and `leases` holds named leases for work
 *   that must run on one instance at a time (late/missed timers, alert sweeps);
 * - `events (reader_id, id)` is indexed for the visits turn's per-reader anchor scan (SQLite's engine
 *   scans all rows by id once, one writer; one reader's ids do commit in order, under its lock).
 */
import { pgCareMigrations } from './care-migrations.js';
import { pgCorrectionMigrations } from './corrections-migrations.js';
import type { PgMigration } from './db.js';
import { pgReportMigrations } from './reports.js';
import { pgSecureCardMigrations } from './secure-cards.js';

export type { PgMigration } from './db.js';

export const postgresMigrations: readonly PgMigration[] = [
  {
    id: 'ingest-001',
    sql: `
      CREATE TABLE readers (
        reader_id TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        client_ref TEXT,
        label TEXT,
        revoked_at BIGINT,
        created_at BIGINT NOT NULL
      );
      CREATE TABLE reader_client_history (
        reader_id TEXT NOT NULL,
        client_ref TEXT,
        from_ms BIGINT NOT NULL
      );
      CREATE INDEX reader_client_history_by_reader ON reader_client_history (reader_id, from_ms);
      CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        reader_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        event_json TEXT NOT NULL,
        received_at_ms BIGINT NOT NULL,
        sent_at_json TEXT NOT NULL,
        UNIQUE (reader_id, seq)
      );
      CREATE TABLE reader_seq (
        reader_id TEXT PRIMARY KEY,
        contiguous_upto BIGINT NOT NULL DEFAULT 0,
        max_seen BIGINT NOT NULL DEFAULT 0
      );
      CREATE TABLE rejects (
        id BIGSERIAL PRIMARY KEY,
        reader_id TEXT,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        at_ms BIGINT NOT NULL
      );
      CREATE INDEX rejects_by_reader ON rejects (reader_id, id);
      CREATE TABLE duplicate_conflicts (
        reader_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        event_json TEXT NOT NULL,
        at_ms BIGINT NOT NULL
      );
      CREATE TABLE reader_status (
        reader_id TEXT PRIMARY KEY,
        status_json TEXT NOT NULL,
        received_at_ms BIGINT NOT NULL
      );
      CREATE TABLE command_results (
        reader_id TEXT NOT NULL,
        command_id TEXT NOT NULL,
        result_json TEXT NOT NULL,
        received_at_ms BIGINT NOT NULL,
        PRIMARY KEY (reader_id, command_id)
      );
      CREATE TABLE reader_auth_cache (reader_id TEXT PRIMARY KEY, tag BYTEA NOT NULL);
      CREATE TABLE rejected_events (
        reader_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (reader_id, seq)
      );
    `,
  },
  {
    id: 'visits-001',
    sql: `
      CREATE TABLE cards (
        card_ref TEXT PRIMARY KEY,
        staff_ref TEXT NOT NULL,
        revoked_at BIGINT,
        created_at BIGINT NOT NULL
      );
      CREATE TABLE visit_cursor (
        reader_id TEXT PRIMARY KEY,
        processed_upto BIGINT NOT NULL
      );
      CREATE TABLE time_anchors (
        reader_id TEXT NOT NULL,
        boot_id TEXT NOT NULL,
        offset_ms BIGINT NOT NULL,
        exact INTEGER NOT NULL,
        PRIMARY KEY (reader_id, boot_id)
      );
      CREATE TABLE visit_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
      CREATE TABLE visits (
        reader_id TEXT NOT NULL,
        visit_id TEXT NOT NULL,
        client_ref TEXT,
        card_ref TEXT NOT NULL,
        staff_ref TEXT,
        group_id TEXT,
        state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
        started_at_ms BIGINT,
        start_seq BIGINT,
        ended_at_ms BIGINT,
        end_seq BIGINT,
        end_reason TEXT,
        time_quality TEXT NOT NULL,
        anomalies_json TEXT NOT NULL DEFAULT '[]',
        late_end_seq BIGINT,
        updated_at_ms BIGINT NOT NULL,
        PRIMARY KEY (reader_id, visit_id)
      );
      CREATE INDEX visits_open ON visits (state, reader_id);
      CREATE INDEX visits_staff ON visits (staff_ref, started_at_ms);
      CREATE INDEX visits_card ON visits (card_ref, started_at_ms);
      CREATE INDEX visits_visit_id ON visits (visit_id);
      CREATE INDEX visits_updated ON visits (updated_at_ms);
      CREATE TABLE anomalies (
        id BIGSERIAL PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        reader_id TEXT NOT NULL,
        visit_id TEXT,
        card_ref TEXT,
        staff_ref TEXT,
        client_ref TEXT,
        at_ms BIGINT NOT NULL,
        seq BIGINT,
        detail TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL
      );
      CREATE INDEX anomalies_kind ON anomalies (kind, id);
      CREATE TABLE visit_audit (
        id BIGSERIAL PRIMARY KEY,
        reader_id TEXT NOT NULL,
        visit_id TEXT NOT NULL,
        action TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        at_ms BIGINT NOT NULL
      );
      CREATE TABLE outbox (
        id BIGSERIAL PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        visit_id TEXT,
        type TEXT NOT NULL,
        event_json TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at_ms BIGINT NOT NULL,
        delivered_at_ms BIGINT,
        dead_at_ms BIGINT,
        last_status INTEGER,
        last_error TEXT,
        claimed_by TEXT,
        claimed_until_ms BIGINT
      );
      CREATE INDEX outbox_state ON outbox (state, id);
      CREATE INDEX outbox_visit ON outbox (visit_id, id);
    `,
  },
  {
    id: 'attribution-001',
    sql: `
      ALTER TABLE anomalies ADD COLUMN resolved_at_ms BIGINT;
      ALTER TABLE anomalies ADD COLUMN resolved_by TEXT;
      ALTER TABLE anomalies ADD COLUMN resolution TEXT;
      ALTER TABLE anomalies ADD COLUMN resolved_staff_ref TEXT;
      CREATE INDEX anomalies_unknown_card_open ON anomalies (card_ref)
        WHERE kind = 'unknown-card' AND staff_ref IS NULL AND resolved_at_ms IS NULL;
      CREATE INDEX visits_unattributed ON visits (card_ref) WHERE staff_ref IS NULL;
    `,
  },
  {
    id: 'enrollment-001',
    sql: `
      CREATE TABLE enrollments (
        id BIGSERIAL PRIMARY KEY,
        code_hash TEXT NOT NULL UNIQUE,
        reader_id TEXT NOT NULL,
        client_ref TEXT,
        label TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        used_from TEXT,
        replaces_reader_id TEXT
      );
      CREATE INDEX enrollments_reader ON enrollments (reader_id);
    `,
  },
  {
    id: 'fleet-replace-001',
    sql: `
      CREATE TABLE reader_replacements (
        old_reader_id TEXT PRIMARY KEY,
        new_reader_id TEXT NOT NULL UNIQUE,
        client_ref TEXT,
        replaced_at_ms BIGINT NOT NULL,
        closed_visits INTEGER NOT NULL
      );
    `,
  },
  {
    id: 'fleet-001',
    sql: `
      CREATE TABLE reader_config (
        reader_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        config_json TEXT NOT NULL,
        pushed_at_ms BIGINT NOT NULL
      );
    `,
  },
  {
    id: 'leases-001',
    sql: `
      -- Named leases: work that must run on one instance at a time (timers, sweeps).
      CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until_ms BIGINT NOT NULL
      );
    `,
  },
  {
    id: 'cards-002',
    sql: `
      -- Card lifecycle (issue 16): validity dates and lost-card replacement links.
      ALTER TABLE cards ADD COLUMN valid_from_ms BIGINT;
      ALTER TABLE cards ADD COLUMN valid_to_ms BIGINT;
      ALTER TABLE cards ADD COLUMN replaced_by TEXT;
    `,
  },
  {
    id: 'anchors-pg-001',
    sql: `
      -- The visits turn's per-reader anchor scan (VisitTx.anchorRows): one reader's rows past its mark.
      CREATE INDEX events_reader_id_idx ON events (reader_id, id);
    `,
  },
  {
    id: 'ingest-epochs-001',
    sql: `
      -- Journal epochs (issue 16): each placed at an offset in the reader's gateway seq space.
      CREATE TABLE reader_epochs (
        reader_id TEXT NOT NULL,
        epoch TEXT NOT NULL,
        epoch_offset BIGINT NOT NULL,
        opened_at_ms BIGINT NOT NULL,
        PRIMARY KEY (reader_id, epoch)
      );
    `,
  },
  {
    id: 'cards-vault-001',
    sql: `
      -- The sealed card UID vault shared by the instances (issue 16, cards/pg-uid-vault.ts): each card's UID
      -- sealed to the gateway's own key, keyed by its fleet pseudonym; never a raw UID. PostgreSQL only
      -- (the embedded gateway keeps the same seals in dataDir/card-uids.jsonl).
      CREATE TABLE card_uid_vault (
        card_ref TEXT PRIMARY KEY,
        sealed TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL
      );
    `,
  },
  {
    id: 'readers-pg-001',
    sql: `
      -- The reader registry shared by every instance (store/postgres/reader-directory.ts): each change of
      -- a reader row notifies the instances after commit, with the reader id as payload.
      CREATE FUNCTION visittag_readers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('visittag_readers', NEW.reader_id);
        RETURN NULL;
      END $$;
      CREATE TRIGGER readers_notify AFTER INSERT OR UPDATE ON readers
        FOR EACH ROW EXECUTE FUNCTION visittag_readers_notify();
    `,
  },
  // ---- access (issue 14): accounts, sessions, API tokens and the audit log, shared by every instance
  {
    id: 'auth-001',
    sql: `
      CREATE TABLE auth_users (
        user_id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        role TEXT NOT NULL,
        areas_json TEXT NOT NULL,
        provider TEXT,
        password_hash TEXT,
        oidc_subject TEXT UNIQUE,
        disabled_at BIGINT,
        created_at_ms BIGINT NOT NULL
      );
      CREATE TABLE auth_sessions (
        id_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        last_seen_ms BIGINT NOT NULL
      );
      CREATE INDEX auth_sessions_user ON auth_sessions (user_id);
      CREATE INDEX auth_sessions_expires ON auth_sessions (expires_at_ms);
      CREATE TABLE auth_tokens (
        token_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        areas_json TEXT NOT NULL,
        provider TEXT,
        secret_hash TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT,
        revoked_at_ms BIGINT
      );
    `,
  },
  {
    id: 'auth-002',
    sql: 'ALTER TABLE auth_users ADD COLUMN staff_ref TEXT',
  },
  {
    // Append-only as on SQLite, with one way around it: a transaction that sets
    // visittag.audit_maintenance = 'on' (SET LOCAL; only retention and erasure do) may delete or rewrite.
    id: 'audit-001',
    sql: `
      CREATE TABLE audit_log (
        seq BIGSERIAL PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        before_json TEXT,
        after_json TEXT,
        reason TEXT
      );
      CREATE INDEX audit_log_action ON audit_log (action, seq);
      CREATE FUNCTION visittag_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF current_setting('visittag.audit_maintenance', true) = 'on' THEN
          IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
          RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit_log is append-only';
      END $$;
      CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION visittag_audit_append_only();
      CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION visittag_audit_append_only();
    `,
  },
  // the care plan (issue 11): its tables, as on SQLite (care-migrations.ts)
  ...pgCareMigrations,
  // ---- access (issue 14): failed logins counted by every instance together
  {
    id: 'auth-003',
    sql: `
      CREATE TABLE auth_login_failures (
        name_key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        since_ms BIGINT NOT NULL
      );
      CREATE INDEX auth_login_failures_since ON auth_login_failures (since_ms);
    `,
  },
  // ---- erasure (issue 16, retention/pg.ts): the erased references as keyed digests, for every instance to apply
  // to its own SQLite file. PostgreSQL only. Created on first use before issue 14 (IF NOT EXISTS: such a
  // database upgrades as it is).
  {
    id: 'erasure-log-001',
    sql: `
      CREATE TABLE IF NOT EXISTS erasure_log (
        id BIGSERIAL PRIMARY KEY,
        ref_digest TEXT NOT NULL,
        pseudonym TEXT NOT NULL,
        at_ms BIGINT NOT NULL
      );
    `,
  },
  // visit corrections (issue 13) and the reports' visits index, served on PostgreSQL (issue 14, pgreports)
  ...pgCorrectionMigrations,
  ...pgReportMigrations,
  // secure cards (issue 18) served on PostgreSQL (issue 14): the same steps as SQLite's (secure-cards.ts)
  ...pgSecureCardMigrations,
];
