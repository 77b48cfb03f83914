/**
 * The fleet-key rotation's tables (card_ref_map, fleet_key_rotations) and an instance's erasure mark
 * (erasure_log_applied) are steps of the ONE SQLite migration list (issue 14): before, they were created on
 * first use and every reader checked whether they existed. A fresh file has them; a file of an earlier version
 * that made them on first use (a rotation, an applied erasure) upgrades as it is, its rows kept.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/index.js';
import { CardRegistry } from '../../gateway/src/cards/registry.js';
import { SqliteCardStore } from '../../gateway/src/store/sqlite/cards.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { SqliteKeyRotationStore } from '../../gateway/src/store/sqlite/keys.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { tempDir } from '../gateway/helpers.js';

const NEW_STEPS = ['keys-001', 'erasure-applied-001'];
const OLD_REF = `c1_${'a'.repeat(32)}`;
const NEW_REF = `c1_${'b'.repeat(32)}`;

/** What keys/rotate.ts and retention/pg.ts created on first use before these were steps of the list. */
const FIRST_USE_SQL = `
  CREATE TABLE IF NOT EXISTS card_ref_map (old_ref TEXT PRIMARY KEY, new_ref TEXT NOT NULL, rotated_at_ms INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS card_ref_map_new ON card_ref_map (new_ref);
  CREATE TABLE IF NOT EXISTS fleet_key_rotations (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,
    old_key_id TEXT NOT NULL, new_key_id TEXT NOT NULL, mapped INTEGER NOT NULL, dropped INTEGER NOT NULL, actor TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS erasure_log_applied (one INTEGER PRIMARY KEY CHECK (one = 1), upto INTEGER NOT NULL);`;

describe('tables once created on first use are steps of the SQLite list', () => {
  const tmp = tempDir('vt-schema-steps-');
  afterAll(() => tmp.cleanup());

  it('a fresh file has them: no rotation and no erasure yet reads as empty', () => {
    const db = openDatabase(join(tmp.dir, 'fresh.db'), sqliteMigrations);
    try {
      const keys = new SqliteKeyRotationStore(db);
      expect(keys.retiredKeyIds()).toEqual(new Set());
      expect(keys.lastRotation()).toBeNull();
      expect(db.prepare('SELECT count(*) FROM erasure_log_applied').pluck().get()).toBe(0);
      const reg = new CardRegistry({
        store: new SqliteCardStore({ db, clock: systemClock }),
        clock: systemClock,
      });
      expect(reg.statusAt(OLD_REF, 1).kind).toBe('unknown');
    } finally {
      db.close();
    }
  });

  it('a file of an earlier version that made them on first use upgrades as it is, its rows kept', () => {
    const file = join(tmp.dir, 'old.db');
    const old = openDatabase(
      file,
      sqliteMigrations.filter((m) => !NEW_STEPS.includes(m.id)),
    );
    old.exec(FIRST_USE_SQL);
    old
      .prepare('INSERT INTO card_ref_map (old_ref, new_ref, rotated_at_ms) VALUES (?, ?, 5)')
      .run(OLD_REF, NEW_REF);
    old
      .prepare(
        `INSERT INTO fleet_key_rotations (at_ms, old_key_id, new_key_id, mapped, dropped, actor)
         VALUES (5, 'k-old', 'k-new', 1, 0, 'cli:test')`,
      )
      .run();
    old.prepare('INSERT INTO erasure_log_applied (one, upto) VALUES (1, 42)').run();
    old
      .prepare(
        "INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES (?, 'staff-1', NULL, 1)",
      )
      .run(NEW_REF);
    old.close();

    const db = openDatabase(file, sqliteMigrations);
    try {
      const applied = db.prepare('SELECT id FROM schema_migrations').pluck().all() as string[];
      expect(applied.filter((id) => NEW_STEPS.includes(id)).sort()).toEqual([...NEW_STEPS].sort());
      const keys = new SqliteKeyRotationStore(db);
      expect(keys.retiredKeyIds()).toEqual(new Set(['k-old']));
      expect(keys.lastRotation()).toEqual({ oldKeyId: 'k-old', newKeyId: 'k-new', atMs: 5 });
      expect(db.prepare('SELECT upto FROM erasure_log_applied').pluck().get()).toBe(42);
      // the registry still resolves the old pseudonym to the card it became
      const reg = new CardRegistry({
        store: new SqliteCardStore({ db, clock: systemClock }),
        clock: systemClock,
      });
      expect(reg.statusAt(OLD_REF, 10)).toEqual({ kind: 'known', staffRef: 'staff-1' });
    } finally {
      db.close();
    }
    // and a second open applies nothing
    const again = openDatabase(file, sqliteMigrations);
    const n = again.prepare('SELECT count(*) FROM schema_migrations').pluck().get();
    again.close();
    expect(n).toBe(sqliteMigrations.length);
  });
});
