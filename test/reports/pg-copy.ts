/**
 * Copies the rows reports read between a gateway SQLite file and a PostgreSQL database, table by table and
 * column by column (the schemas mirror each other: test/scale/pg-schema-parity.test.ts), so both engines
 * hold exactly the same facts. For the tests that compare a report on PostgreSQL with the SQLite one.
 */
import type { PgPool } from '../../gateway/src/store/postgres/db.js';
import { inTransaction } from '../../gateway/src/store/postgres/db.js';
import type { Db } from '../../gateway/src/store/sqlite/db.js';

export const REPORT_TABLES = [
  'visits',
  'events',
  'visit_audit',
  'visit_corrections',
  'care_providers',
  'care_areas',
  'care_teams',
  'care_clients',
  'care_staff',
  'care_service_codes',
  'care_planned_visits',
  'care_plan_matches',
  'care_visit_matches',
  'care_reasons',
] as const;

/** The SQLite file's rows of the report tables inserted into PostgreSQL (empty tables there). */
export async function sqliteToPg(db: Db, pool: PgPool): Promise<void> {
  await inTransaction(pool, async (c) => {
    for (const t of REPORT_TABLES) {
      const rows = db.prepare(`SELECT * FROM ${t}`).all() as Array<Record<string, unknown>>;
      if (rows.length === 0) continue;
      const cols = Object.keys(rows[0]!);
      for (let i = 0; i < rows.length; i += 500) {
        const values: unknown[] = [];
        const tuples = rows
          .slice(i, i + 500)
          .map((r) => `(${cols.map((col) => `$${values.push(r[col])}`).join(', ')})`);
        await c.query(`INSERT INTO ${t} (${cols.join(', ')}) VALUES ${tuples.join(', ')}`, values);
      }
    }
    // serial columns continue after the copied ids
    for (const [t, col] of [
      ['events', 'id'],
      ['visit_audit', 'id'],
      ['visit_corrections', 'correction_id'],
    ] as const) {
      await c.query(
        `SELECT setval(pg_get_serial_sequence('${t}', '${col}'), GREATEST((SELECT max(${col}) FROM ${t}), 1))`,
      );
    }
  });
}

/** PostgreSQL's rows of the report tables inserted into an empty gateway SQLite file. */
export async function pgToSqlite(pool: PgPool, db: Db): Promise<void> {
  const all: Array<[string, Array<Record<string, unknown>>]> = [];
  for (const t of REPORT_TABLES)
    all.push([t, (await pool.query<Record<string, unknown>>(`SELECT * FROM ${t}`)).rows]);
  db.transaction(() => {
    for (const [t, rows] of all) {
      if (rows.length === 0) continue;
      const cols = Object.keys(rows[0]!);
      const st = db.prepare(
        `INSERT INTO ${t} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
      );
      for (const r of rows) st.run(...cols.map((c) => r[c]));
    }
  })();
}
