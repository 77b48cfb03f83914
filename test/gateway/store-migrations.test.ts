import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';

// The schema is ONE ordered list (gateway/src/store/sqlite/migrations.ts) applied once by the
// composition root. Databases created by earlier versions must open: the fixture is the schema an
// earlier gateway (migrations applied from six places) left in a fresh gateway.db.
const fixture = JSON.parse(
  readFileSync(join(import.meta.dirname, 'fixtures', 'gateway-db-pre-issue14.json'), 'utf8'),
) as { ids: string[]; schema: string[] };

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const file = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'vt-mig-'));
  dirs.push(d);
  return join(d, 'gateway.db');
};

/** Builds a database as an earlier version left it: its statements and its recorded migration ids. */
function oldDatabase(path: string, ids: readonly string[], schema: readonly string[]): void {
  const db = new Database(path);
  for (const sql of schema) db.exec(sql);
  const rec = db.prepare('INSERT INTO schema_migrations (id, applied_at_ms) VALUES (?, 1)');
  for (const id of ids) rec.run(id);
  db.close();
}

const schemaOf = (path: string): string[] => {
  const db = new Database(path, { readonly: true });
  try {
    return (
      db
        .prepare(`SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'`)
        .pluck()
        .all() as string[]
    ).sort();
  } finally {
    db.close();
  }
};

describe('the SQLite migration list', () => {
  it('keeps the ids and the order in which earlier versions applied them', () => {
    const ids = sqliteMigrations.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.slice(0, fixture.ids.length)).toEqual(fixture.ids);
  });

  it('the steps an earlier version knew give a fresh database exactly the schema that version created', () => {
    const path = file();
    openDatabase(path, sqliteMigrations.slice(0, fixture.ids.length)).close();
    expect(schemaOf(path)).toEqual([...fixture.schema].sort());
  });

  it('opens a database created by an earlier version without re-applying anything', () => {
    const path = file();
    oldDatabase(path, fixture.ids, fixture.schema);
    const db = openDatabase(path, sqliteMigrations);
    const applied = db.prepare('SELECT id FROM schema_migrations ORDER BY rowid').pluck().all();
    db.close();
    expect(applied).toEqual(sqliteMigrations.map((m) => m.id));
    // the old statements are kept as they were and the appended steps add the same as on a fresh database
    const fresh = file();
    openDatabase(fresh, sqliteMigrations).close();
    expect(schemaOf(path)).toEqual(schemaOf(fresh));
  });

  it('upgrades a database that has only an earlier prefix (ingest and visits tables)', () => {
    // What the visits test helpers and the coordinator CLI child created: ingest-001..003, visits-001.
    const path = file();
    openDatabase(path, sqliteMigrations.slice(0, 4)).close();
    const db = openDatabase(path, sqliteMigrations);
    const applied = db.prepare('SELECT id FROM schema_migrations ORDER BY rowid').pluck().all();
    db.close();
    expect(applied).toEqual(sqliteMigrations.map((m) => m.id));
    expect(applied.slice(0, fixture.ids.length)).toEqual(fixture.ids);
    const fresh = file();
    openDatabase(fresh, sqliteMigrations).close();
    expect(schemaOf(path)).toEqual(schemaOf(fresh));
  });
});
