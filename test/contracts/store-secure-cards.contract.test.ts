/**
 * The secure-card port (store-secure-cards.contract.ts) over SQLite (store/sqlite/secure-cards.ts on a
 * real file) and over PostgreSQL (store/postgres/secure-cards.ts on a throw-away cluster, the ordered
 * list applied to a fresh database per case).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { createSqliteSecureCardStore } from '../../gateway/src/store/sqlite/secure-cards.js';
import { migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgSecureCardStore } from '../../gateway/src/store/postgres/secure-cards.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { describeSecureCardStoreContract } from './store-secure-cards.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'vt-secure-contract-'));
let cluster: Promise<PgCluster> | undefined;
const pgc = (): Promise<PgCluster> => (cluster ??= startPgCluster());
afterAll(async () => {
  if (cluster) await (await cluster).destroy();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

let n = 0;
describeSecureCardStoreContract('sqlite', () => {
  const db = openDatabase(join(dir, `s${n++}.db`), sqliteMigrations);
  return Promise.resolve({
    store: createSqliteSecureCardStore(db),
    close: () => {
      db.close();
      return Promise.resolve();
    },
  });
});

describeSecureCardStoreContract('postgres', async () => {
  const pool = openPgPool({ url: await (await pgc()).createDatabase(), max: 2 });
  await migrate(pool, postgresMigrations);
  return { store: new PgSecureCardStore(pool), close: () => pool.end() };
});
