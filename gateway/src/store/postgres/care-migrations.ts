/**
 * The care plan's tables on PostgreSQL (step id 'care-001', as on SQLite: store/sqlite/care-migrations.ts),
 * appended to the ordered list in ./migrations.ts. Same tables and columns; epoch ms are BIGINT, the plan
 * version id a BIGSERIAL, planned minutes DOUBLE PRECISION. `care_alerts`' key (planned visit, kind) is the
 * dedupe of alerts across instances: a (plan, kind) is raised at most once, whoever evaluates it.
 */
// (the step shape of ./migrations.ts `PgMigration`, written out: that list imports this one)
export const pgCareMigrations: readonly { id: string; sql: string }[] = [
  {
    id: 'care-001',
    sql: `
      CREATE TABLE care_providers (provider_id TEXT PRIMARY KEY, json TEXT NOT NULL, updated_at_ms BIGINT NOT NULL);
      CREATE TABLE care_areas (area_id TEXT PRIMARY KEY, json TEXT NOT NULL, updated_at_ms BIGINT NOT NULL);
      CREATE TABLE care_teams (team_id TEXT PRIMARY KEY, area_id TEXT NOT NULL, json TEXT NOT NULL, updated_at_ms BIGINT NOT NULL);
      CREATE TABLE care_clients (client_ref TEXT PRIMARY KEY, area_id TEXT NOT NULL, json TEXT NOT NULL, updated_at_ms BIGINT NOT NULL);
      CREATE TABLE care_staff (staff_ref TEXT PRIMARY KEY, area_id TEXT, json TEXT NOT NULL, updated_at_ms BIGINT NOT NULL);
      CREATE TABLE care_service_codes (code TEXT PRIMARY KEY, json TEXT NOT NULL, updated_at_ms BIGINT NOT NULL);
      CREATE TABLE care_plan_versions (
        plan_version_id BIGSERIAL PRIMARY KEY,
        area_id TEXT NOT NULL,
        from_date TEXT NOT NULL,
        to_date TEXT NOT NULL,
        imported_at_ms BIGINT NOT NULL,
        imported_by TEXT NOT NULL,
        source TEXT NOT NULL,
        visit_count INTEGER NOT NULL,
        supersedes_json TEXT NOT NULL
      );
      CREATE TABLE care_planned_visits (
        plan_version_id BIGINT NOT NULL,
        planned_visit_id TEXT NOT NULL,
        area_id TEXT NOT NULL,
        client_ref TEXT NOT NULL,
        local_date TEXT NOT NULL,
        local_start TEXT NOT NULL,
        start_ms BIGINT NOT NULL,
        planned_minutes DOUBLE PRECISION NOT NULL,
        service_codes_json TEXT NOT NULL,
        staff_count INTEGER NOT NULL,
        staff_refs_json TEXT NOT NULL,
        active INTEGER NOT NULL,
        PRIMARY KEY (plan_version_id, planned_visit_id)
      );
      CREATE UNIQUE INDEX care_pv_active_id ON care_planned_visits (planned_visit_id) WHERE active = 1;
      CREATE INDEX care_pv_active_client ON care_planned_visits (client_ref, start_ms) WHERE active = 1;
      CREATE INDEX care_pv_active_area ON care_planned_visits (area_id, local_date) WHERE active = 1;
      CREATE INDEX care_pv_active_start ON care_planned_visits (start_ms) WHERE active = 1;
      CREATE TABLE care_plan_matches (
        planned_visit_id TEXT PRIMARY KEY,
        area_id TEXT NOT NULL,
        client_ref TEXT NOT NULL,
        start_ms BIGINT NOT NULL,
        local_date TEXT NOT NULL,
        staff_count INTEGER NOT NULL,
        window_end_ms BIGINT NOT NULL,
        executed_keys_json TEXT NOT NULL,
        late_minutes INTEGER,
        status TEXT NOT NULL
      );
      CREATE INDEX care_pm_client ON care_plan_matches (client_ref, start_ms);
      CREATE INDEX care_pm_start ON care_plan_matches (start_ms);
      CREATE TABLE care_visit_matches (
        executed_key TEXT PRIMARY KEY,
        client_ref TEXT NOT NULL,
        time_ms BIGINT NOT NULL,
        local_date TEXT NOT NULL,
        planned_visit_id TEXT
      );
      CREATE INDEX care_vm_client ON care_visit_matches (client_ref, time_ms);
      CREATE INDEX care_vm_time ON care_visit_matches (time_ms);
      CREATE TABLE care_reasons (
        planned_visit_id TEXT PRIMARY KEY,
        reason_code TEXT NOT NULL,
        note TEXT NOT NULL,
        set_by TEXT NOT NULL,
        set_at_ms BIGINT NOT NULL
      );
      CREATE TABLE care_alerts (
        planned_visit_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        area_id TEXT NOT NULL,
        client_ref TEXT NOT NULL,
        planned_start_ms BIGINT NOT NULL,
        raised_at_ms BIGINT NOT NULL,
        cleared_at_ms BIGINT,
        cleared_by TEXT,
        reason_code TEXT,
        PRIMARY KEY (planned_visit_id, kind)
      );
      CREATE INDEX care_alerts_open ON care_alerts (raised_at_ms) WHERE cleared_at_ms IS NULL;
      CREATE TABLE care_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS care_visits_client ON visits (client_ref, started_at_ms);
    `,
  },
];
