import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgGateway, type PgGateway } from '../../gateway/pg-instance.js';
import { createAccess, Role } from '../../gateway/src/auth/index.js';
import { PgAuthStore } from '../../gateway/src/store/postgres/auth.js';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { sqliteAccessStores } from '../../gateway/src/store/sqlite/access.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { silent, tempDir, testConfig } from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

const PASSWORD = 'an-old-local-password';

/**
 * An instance switched to store.engine postgres with accounts in its SQLite file (made before accounts
 * moved to PostgreSQL, issue 14): at start they and their API tokens are copied into PostgreSQL, so the
 * old admin still logs in and the old token still works; an account whose name PostgreSQL already has
 * is not copied over it.
 */
describe('accounts from an instance SQLite file reach PostgreSQL at start', () => {
  let pgc: PgCluster;
  let pool: PgPool;
  let gw: PgGateway | null = null;
  const tmp = tempDir('vt-pg-upgrade-');
  beforeAll(async () => {
    pgc = await startPgCluster();
  }, 120_000);
  afterAll(async () => {
    await gw?.stop().catch(() => undefined);
    await pool?.end();
    await pgc?.destroy();
    tmp.cleanup();
  }, 120_000);

  it(
    'copies local accounts and tokens once; PostgreSQL wins on a name clash',
    { timeout: 120_000 },
    async () => {
      const url = await pgc.createDatabase();
      const dataDir = join(tmp.dir, 'gw');
      const config = testConfig(dataDir, { store: { engine: 'postgres', url, poolMax: 3 } });
      // the instance's file as an earlier version left it: two accounts and an API token
      mkdirSync(dataDir, { recursive: true });
      const db = openDatabase(join(dataDir, 'gateway.db'), sqliteMigrations);
      const local = createAccess({
        stores: sqliteAccessStores(db, (r) => Role.parse(r)),
        now: () => 1_000,
        session: { hashCost: { logN: 10, r: 8, p: 1 } },
      });
      await local.service.createUser('cli:root', {
        name: 'old.admin',
        displayName: 'Old',
        role: 'admin',
        password: PASSWORD,
      });
      await local.service.createUser('cli:root', {
        name: 'taken',
        displayName: 'local one',
        role: 'admin',
        password: PASSWORD,
      });
      const { token } = await local.service.createToken('cli:root', {
        name: 'old-token',
        role: 'technician',
      });
      db.close();
      // PostgreSQL already has an account named 'taken'
      pool = openPgPool({ url, max: 2 });
      await migrate(pool, postgresMigrations);
      await new PgAuthStore(pool).insertUser({
        userId: 'u_pg',
        name: 'taken',
        displayName: 'postgres one',
        role: 'technician',
        areas: [],
        provider: null,
        staffRef: null,
        passwordHash: null,
        oidcSubject: null,
        disabledAt: null,
        createdAtMs: 1,
      });

      gw = createPgGateway({ config, logger: silent });
      await gw.start();
      const api = (path: string, init: RequestInit = {}) =>
        fetch(`http://127.0.0.1:${gw?.adminPort}${path}`, init);
      const login = await api('/api/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'old.admin', password: PASSWORD }),
      });
      expect(login.status).toBe(200);
      expect((await api('/api/auth/me', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      const rows = await pool.query<{ name: string; display_name: string }>(
        'SELECT name, display_name FROM auth_users ORDER BY name',
      );
      expect(rows.rows).toEqual([
        { name: 'old.admin', display_name: 'Old' },
        { name: 'taken', display_name: 'postgres one' },
      ]);
      // a second start copies nothing again
      await gw.stop();
      gw = createPgGateway({ config, logger: silent });
      await gw.start();
      expect((await pool.query('SELECT count(*)::int AS n FROM auth_users')).rows[0]).toEqual({ n: 2 });
      expect((await pool.query('SELECT count(*)::int AS n FROM auth_tokens')).rows[0]).toEqual({ n: 1 });
    },
  );
});
