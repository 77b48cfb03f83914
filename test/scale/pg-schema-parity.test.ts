import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { careMigrations } from '../../gateway/src/store/sqlite/care-migrations.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
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
    // the gateway's list and the care plan's (both served on PostgreSQL)
    const db = openDatabase(join(tmp.dir, 'gateway.db'), [...sqliteMigrations, ...careMigrations]);
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
    expect([...sqlite].filter((x) => !pg.has(x)).sort()).toEqual([]);
    expect([...pg].filter((x) => !sqlite.has(x) && !PG_ONLY.has(x)).sort()).toEqual([]);
  });

  it('uses the SQLite step ids for the steps both engines have', () => {
    const sqliteIds = new Set([...sqliteMigrations, ...careMigrations].map((m) => m.id));
    const pgOnly = postgresMigrations.map((m) => m.id).filter((id) => !sqliteIds.has(id));
    // leases: several instances; anchors-pg-001: an index for the per-reader anchor scan (no column);
    // cards-vault-001: the sealed card UID vault shared by the instances (a file per gateway on SQLite);
    // readers-pg-001: the trigger that tells every instance's reader registry of a change (no column)
    expect(pgOnly).toEqual(['leases-001', 'anchors-pg-001', 'cards-vault-001', 'readers-pg-001']);
  });
});
