/**
 * The visit corrections' tables on PostgreSQL (step ids 'corrections-001' and 'corrections-002', as on
 * SQLite: ../sqlite/corrections-migrations.ts), to be appended to the ordered list in ./migrations.ts.
 * Same tables and columns; epoch ms are BIGINT, the row ids BIGSERIAL. `visit_corrections` is append-only
 * by trigger, with the audit log's exception (a transaction that sets `visittag.audit_maintenance`:
 * retention and erasure only, as on SQLite where they drop the trigger inside their transaction).
 */
// (the step shape of ./migrations.ts `PgMigration`, written out: that list imports this one)
export const pgCorrectionMigrations: readonly { id: string; sql: string }[] = [
  {
    id: 'corrections-001',
    sql: `
      CREATE TABLE visit_corrections (
        correction_id BIGSERIAL PRIMARY KEY,
        reader_id TEXT NOT NULL,
        visit_id TEXT NOT NULL,
        reason_code TEXT NOT NULL,
        note TEXT,
        actor TEXT NOT NULL,
        request_id TEXT,
        at_ms BIGINT NOT NULL,
        before_json TEXT NOT NULL,
        after_json TEXT NOT NULL
      );
      CREATE INDEX visit_corrections_visit ON visit_corrections (reader_id, visit_id, correction_id);
      CREATE UNIQUE INDEX visit_corrections_request ON visit_corrections (actor, request_id)
        WHERE request_id IS NOT NULL;
      CREATE FUNCTION visittag_corrections_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF current_setting('visittag.audit_maintenance', true) = 'on' THEN
          IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
          RETURN NEW;
        END IF;
        RAISE EXCEPTION 'visit_corrections is append-only';
      END $$;
      CREATE TRIGGER visit_corrections_append_only BEFORE UPDATE OR DELETE ON visit_corrections
        FOR EACH ROW EXECUTE FUNCTION visittag_corrections_append_only();
    `,
  },
  {
    id: 'corrections-002',
    sql: `
      ALTER TABLE visit_corrections ADD COLUMN kind TEXT NOT NULL DEFAULT 'times';
      CREATE INDEX visit_corrections_kind ON visit_corrections (kind, reader_id, visit_id);
      CREATE TABLE period_locks (
        area_id TEXT NOT NULL,
        month TEXT NOT NULL,
        locked_by TEXT NOT NULL,
        locked_at_ms BIGINT NOT NULL,
        note TEXT,
        PRIMARY KEY (area_id, month)
      );
      CREATE TABLE visit_flags (
        flag_id BIGSERIAL PRIMARY KEY,
        staff_ref TEXT NOT NULL,
        actor TEXT NOT NULL,
        reader_id TEXT,
        visit_id TEXT,
        client_ref TEXT,
        date TEXT,
        message TEXT NOT NULL,
        request_id TEXT,
        created_at_ms BIGINT NOT NULL,
        resolved_by TEXT,
        resolved_at_ms BIGINT,
        resolution TEXT,
        resolution_note TEXT
      );
      CREATE INDEX visit_flags_open ON visit_flags (resolved_at_ms, flag_id);
      CREATE INDEX visit_flags_staff ON visit_flags (staff_ref, flag_id);
      CREATE UNIQUE INDEX visit_flags_request ON visit_flags (actor, request_id)
        WHERE request_id IS NOT NULL;
      CREATE INDEX visit_corrections_by_visit_id ON visit_corrections (visit_id, correction_id);
    `,
  },
];
