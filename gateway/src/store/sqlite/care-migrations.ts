import type { Migration } from './db.js';

/**
 * The care plan's tables (ids 'care-001'…, applied after the ingest and visits migrations). They reference
 * the visits engine's tables by value only. 'care-001' also adds one index to `visits` (client, start) so
 * a client's executed visits are found without a scan; it changes no column.
 */
export const careMigrations: Migration[] = [
  {
    id: 'care-001',
    up: (db) => {
      db.exec(`
        CREATE TABLE care_providers (provider_id TEXT PRIMARY KEY, json TEXT NOT NULL, updated_at_ms INTEGER NOT NULL);
        CREATE TABLE care_areas (area_id TEXT PRIMARY KEY, json TEXT NOT NULL, updated_at_ms INTEGER NOT NULL);
        CREATE TABLE care_teams (team_id TEXT PRIMARY KEY, area_id TEXT NOT NULL, json TEXT NOT NULL, updated_at_ms INTEGER NOT NULL);
        CREATE TABLE care_clients (client_ref TEXT PRIMARY KEY, area_id TEXT NOT NULL, json TEXT NOT NULL, updated_at_ms INTEGER NOT NULL);
        CREATE TABLE care_staff (staff_ref TEXT PRIMARY KEY, area_id TEXT, json TEXT NOT NULL, updated_at_ms INTEGER NOT NULL);
        CREATE TABLE care_service_codes (code TEXT PRIMARY KEY, json TEXT NOT NULL, updated_at_ms INTEGER NOT NULL);
        CREATE TABLE care_plan_versions (
          plan_version_id INTEGER PRIMARY KEY,
          area_id TEXT NOT NULL,
          from_date TEXT NOT NULL,
          to_date TEXT NOT NULL,
          imported_at_ms INTEGER NOT NULL,
          imported_by TEXT NOT NULL,
          source TEXT NOT NULL,
          visit_count INTEGER NOT NULL,
          supersedes_json TEXT NOT NULL
        );
        CREATE TABLE care_planned_visits (
          plan_version_id INTEGER NOT NULL,
          planned_visit_id TEXT NOT NULL,
          area_id TEXT NOT NULL,
          client_ref TEXT NOT NULL,
          local_date TEXT NOT NULL,
          local_start TEXT NOT NULL,
          start_ms INTEGER NOT NULL,
          planned_minutes REAL NOT NULL,
          service_codes_json TEXT NOT NULL,
          staff_count INTEGER NOT NULL,
          staff_refs_json TEXT NOT NULL,
          active INTEGER NOT NULL,
          PRIMARY KEY (plan_version_id, planned_visit_id)
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX care_pv_active_id ON care_planned_visits (planned_visit_id) WHERE active = 1;
        CREATE INDEX care_pv_active_client ON care_planned_visits (client_ref, start_ms) WHERE active = 1;
        CREATE INDEX care_pv_active_area ON care_planned_visits (area_id, local_date) WHERE active = 1;
        CREATE INDEX care_pv_active_start ON care_planned_visits (start_ms) WHERE active = 1;
        CREATE TABLE care_plan_matches (
          planned_visit_id TEXT PRIMARY KEY,
          area_id TEXT NOT NULL,
          client_ref TEXT NOT NULL,
          start_ms INTEGER NOT NULL,
          local_date TEXT NOT NULL,
          staff_count INTEGER NOT NULL,
          window_end_ms INTEGER NOT NULL,
          executed_keys_json TEXT NOT NULL,
          late_minutes INTEGER,
          status TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX care_pm_client ON care_plan_matches (client_ref, start_ms);
        CREATE INDEX care_pm_start ON care_plan_matches (start_ms);
        CREATE TABLE care_visit_matches (
          executed_key TEXT PRIMARY KEY,
          client_ref TEXT NOT NULL,
          time_ms INTEGER NOT NULL,
          local_date TEXT NOT NULL,
          planned_visit_id TEXT
        ) WITHOUT ROWID;
        CREATE INDEX care_vm_client ON care_visit_matches (client_ref, time_ms);
        CREATE INDEX care_vm_time ON care_visit_matches (time_ms);
        CREATE TABLE care_reasons (
          planned_visit_id TEXT PRIMARY KEY,
          reason_code TEXT NOT NULL,
          note TEXT NOT NULL,
          set_by TEXT NOT NULL,
          set_at_ms INTEGER NOT NULL
        );
        CREATE TABLE care_alerts (
          planned_visit_id TEXT NOT NULL,
          kind TEXT NOT NULL,
          area_id TEXT NOT NULL,
          client_ref TEXT NOT NULL,
          planned_start_ms INTEGER NOT NULL,
          raised_at_ms INTEGER NOT NULL,
          cleared_at_ms INTEGER,
          cleared_by TEXT,
          reason_code TEXT,
          PRIMARY KEY (planned_visit_id, kind)
        );
        CREATE INDEX care_alerts_open ON care_alerts (raised_at_ms) WHERE cleared_at_ms IS NULL;
        CREATE TABLE care_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS care_visits_client ON visits (client_ref, started_at_ms);
      `);
    },
  },
];
