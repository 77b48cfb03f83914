import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgAuditStore } from '../../gateway/src/store/postgres/audit.js';
import { PgAuthStore } from '../../gateway/src/store/postgres/auth.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { SqliteAuditStore } from '../../gateway/src/store/sqlite/audit.js';
import { SqliteAuthStore } from '../../gateway/src/store/sqlite/auth.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { describeAuditStoreContract } from './store-audit.contract.js';
import { describeAuthStoreContract } from './store-auth.contract.js';

// The access ports (accounts/sessions/tokens, audit log) over both adapters: the SQLite file with the
// real migration list, and a throw-away PostgreSQL cluster (one fresh database per case).
function tempDb() {
  const dir = mkdtempSync(join(tmpdir(), 'vt-access-'));
  const db = openDatabase(join(dir, 'gateway.db'), sqliteMigrations);
  return {
    db,
    close: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  };
}

describeAuthStoreContract('sqlite', () => {
  const { db, close } = tempDb();
  return Promise.resolve({ store: new SqliteAuthStore(db), close });
});

describeAuditStoreContract('sqlite', () => {
  const { db, close } = tempDb();
  return Promise.resolve({
    store: new SqliteAuditStore(db),
    sql: (text, params = []) => Promise.resolve().then(() => db.prepare(text).run(...params)),
    close,
  });
});

let cluster: Promise<PgCluster> | undefined;
const pgc = (): Promise<PgCluster> => (cluster ??= startPgCluster());
afterAll(async () => {
  if (cluster) await (await cluster).destroy();
}, 120_000);

async function freshPool() {
  const pool = openPgPool({ url: await (await pgc()).createDatabase(), max: 4 });
  await migrate(pool, postgresMigrations);
  return pool;
}

describeAuthStoreContract('postgres', async () => {
  const pool = await freshPool();
  return { store: new PgAuthStore(pool), close: () => pool.end() };
});

describeAuditStoreContract('postgres', async () => {
  const pool = await freshPool();
  return {
    store: new PgAuditStore(pool),
    sql: (text, params = []) => {
      let i = 0;
      return pool.query(
        text.replace(/\?/g, () => `$${++i}`),
        [...params],
      );
    },
    close: () => pool.end(),
  };
});
