import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { applyRecordedErasures, erasureDigest } from '../../gateway/src/retention/pg.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { SqliteErasure } from '../../gateway/src/store/sqlite/retention.js';
import { PgRetentionStore } from '../../gateway/src/store/postgres/retention.js';
import { careMigrations } from '../../gateway/src/store/sqlite/care-migrations.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { secureCardMigrations } from '../../gateway/src/store/sqlite/secure-cards.js';
import { tempDir } from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

/** Columns that exist only on PostgreSQL, with the reason (see store/postgres/migrations.ts). */
const PG_ONLY = new Set([
  'outbox.claimed_by', // outbox lease: several forwarders
  'outbox.claimed_until_ms',
  'leases.name', // named leases: timers and sweeps on one instance at a time
  'leases.holder',
  'leases.until_ms',
  'card_uid_vault.card_ref', // the sealed card UID vault shared by the instances (a file per gateway on SQLite)
  'card_uid_vault.sealed',
  'card_uid_vault.created_at_ms',
  'erasure_log.id', // erased references as keyed digests, for every instance to apply to its own file
  'erasure_log.ref_digest',
  'erasure_log.pseudonym',
  'erasure_log.at_ms',
]);

/** Tables that exist only on SQLite, with the reason. */
const SQLITE_ONLY = new Set([
  'card_ref_map', // fleet-key rotation: SQLite only (refused on PostgreSQL)
  'fleet_key_rotations',
  'erasure_log_applied', // an instance's mark in PostgreSQL's erasure_log, kept in its own file
]);

describe('the PostgreSQL schema mirrors the SQLite one', () => {
  let pgc: PgCluster;
  let pool: PgPool;
  beforeAll(async () => {
    pgc = await startPgCluster();
    pool = openPgPool({ url: await pgc.createDatabase() });
    await migrate(pool, postgresMigrations);
  });
  afterAll(async () => {
    await pool?.end();
    await pgc?.destroy();
  });

  it('every table and column of the SQLite list exists on PostgreSQL, and nothing else but the documented extras', async () => {
    const tmp = tempDir('vt-parity-');
    // the gateway's list, the care plan's, the corrections' and the secure cards' (all served on PostgreSQL)
    const db = openDatabase(join(tmp.dir, 'gateway.db'), [
      ...sqliteMigrations,
      ...careMigrations,
      ...correctionMigrations,
      ...secureCardMigrations,
    ]);
    const sqlite = new Set<string>();
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .pluck()
      .all() as string[];
    for (const t of tables) {
      for (const c of db.prepare(`PRAGMA table_info(${t})`).all() as Array<{ name: string }>) {
        sqlite.add(`${t}.${c.name}`);
      }
    }
    db.close();
    tmp.cleanup();
    const r = await pool.query<{ t: string; c: string }>(
      `SELECT table_name AS t, column_name AS c FROM information_schema.columns WHERE table_schema = 'public'`,
    );
    const pg = new Set(r.rows.map((x) => `${x.t}.${x.c}`));
    expect([...sqlite].filter((x) => !pg.has(x) && !SQLITE_ONLY.has(x.split('.')[0]!)).sort()).toEqual([]);
    expect([...pg].filter((x) => !sqlite.has(x) && !PG_ONLY.has(x)).sort()).toEqual([]);
  });

  it('uses the SQLite step ids for the steps both engines have', () => {
    const sqliteIds = new Set(
      [...sqliteMigrations, ...careMigrations, ...correctionMigrations, ...secureCardMigrations].map(
        (m) => m.id,
      ),
    );
    const pgOnly = postgresMigrations.map((m) => m.id).filter((id) => !sqliteIds.has(id));
    // leases: several instances; anchors-pg-001: an index for the per-reader anchor scan (no column);
    // cards-vault-001: the sealed card UID vault shared by the instances (a file per gateway on SQLite);
    // readers-pg-001: the trigger that tells every instance's reader registry of a change (no column);
    // erasure-log-001: the erasures every instance applies to its own file
    expect(pgOnly).toEqual([
      'leases-001',
      'anchors-pg-001',
      'cards-vault-001',
      'readers-pg-001',
      'erasure-log-001',
    ]);
    const pgIds = new Set(postgresMigrations.map((m) => m.id));
    const sqliteOnly = [
      ...sqliteMigrations,
      ...careMigrations,
      ...correctionMigrations,
      ...secureCardMigrations,
    ]
      .map((m) => m.id)
      .filter((id) => !pgIds.has(id));
    // ingest-002/003, enrollment-002: folded into the PostgreSQL list's first steps (it was written after them); keys-001: fleet-key rotation (SQLite only); erasure-applied-001: an instance's mark in erasure_log
    expect(sqliteOnly).toEqual([
      'ingest-002',
      'ingest-003',
      'enrollment-002',
      'keys-001',
      'erasure-applied-001',
    ]);
  });

  it('a database of an earlier version that made erasure_log on first use upgrades as it is', async () => {
    const old = openPgPool({ url: await pgc.createDatabase() });
    try {
      await migrate(
        old,
        postgresMigrations.filter((m) => m.id !== 'erasure-log-001'),
      );
      // what retention/pg.ts ran before the table was a step of the list
      await old.query(`CREATE TABLE IF NOT EXISTS erasure_log (
        id BIGSERIAL PRIMARY KEY, ref_digest TEXT NOT NULL, pseudonym TEXT NOT NULL, at_ms BIGINT NOT NULL)`);
      await old.query("INSERT INTO erasure_log (ref_digest, pseudonym, at_ms) VALUES ('d1', 'erased-1', 5)");
      expect(await migrate(old, postgresMigrations)).toEqual(['erasure-log-001']);
      expect((await old.query('SELECT ref_digest, pseudonym FROM erasure_log')).rows).toEqual([
        { ref_digest: 'd1', pseudonym: 'erased-1' },
      ]);
      expect(await migrate(old, postgresMigrations)).toEqual([]);
    } finally {
      await old.end();
    }
  });

  it('a fresh database has erasure_log and a fresh file its mark: applying erasures creates nothing', async () => {
    const fresh = openPgPool({ url: await pgc.createDatabase() });
    const tmp = tempDir('vt-parity-erasure-');
    const db = openDatabase(join(tmp.dir, 'gateway.db'), sqliteMigrations);
    try {
      await migrate(fresh, postgresMigrations);
      const digest = erasureDigest('parity-fleet-key-0123456789');
      await fresh.query('INSERT INTO erasure_log (ref_digest, pseudonym, at_ms) VALUES ($1, $2, 1)', [
        digest('nobody-here'),
        'erased-x',
      ]);
      expect(await applyRecordedErasures(new PgRetentionStore(fresh), new SqliteErasure(db), digest)).toBe(0);
      expect(db.prepare('SELECT upto FROM erasure_log_applied').pluck().get()).toBe(1);
    } finally {
      db.close();
      tmp.cleanup();
      await fresh.end();
    }
  });
});
