/**
 * The reports' own tables and triggers on SQLite (ids 'reports-002' to 'reports-006'), applied by the
 * composition root (gateway/index.ts) after the care plan's and the corrections' lists: the triggers that
 * keep the report cells current sit on their tables too (cells.ts). 'reports-001' (the visits' start index)
 * is in the gateway's list (../migrations.ts). A database without them (another composition root) simply
 * computes every report on the fly.
 */
import type { Migration } from '../db.js';
import {
  CELL_TABLES_SQL,
  CELL_TRIGGERS_LATE_SQL,
  CONTINUITY_CELL_TABLES_SQL,
  EXEC_SCOPE_SQL,
  recreateTriggersSql,
} from './cells.js';

export const reportMigrations: readonly Migration[] = [
  { id: 'reports-002', up: (db) => db.exec(CELL_TABLES_SQL) },
  { id: 'reports-003', up: (db) => db.exec(CELL_TRIGGERS_LATE_SQL) },
  // the marking triggers again, without INSERT OR IGNORE (an upsert of a visit aborted on them)
  { id: 'reports-004', up: (db) => db.exec(recreateTriggersSql()) },
  // continuity's cells (built by the next refresh: no continuity inputs recorded yet)
  { id: 'reports-005', up: (db) => db.exec(CONTINUITY_CELL_TABLES_SQL) },
  // scoped executed vs planned from the cells: per-client differences, mixed marks (all cells rebuilt)
  { id: 'reports-006', up: (db) => db.exec(EXEC_SCOPE_SQL) },
];
