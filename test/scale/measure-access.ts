/**
 * The per-request session look-up (AuthStore.sessionWithUser) and an audit append, SQLite against
 * PostgreSQL, side by side in one run: `npx tsx test/scale/measure-access.ts [lookups] [rounds]`.
 * Starts its own throw-away cluster (test/support/pg-cluster.ts). Prints µs per call, median of rounds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgAuditStore } from '../../gateway/src/store/postgres/audit.js';
import { PgAuthStore } from '../../gateway/src/store/postgres/auth.js';
import { migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import type { AuditStore, AuthStore } from '../../gateway/src/store/ports.js';
import { SqliteAuditStore } from '../../gateway/src/store/sqlite/audit.js';
import { SqliteAuthStore } from '../../gateway/src/store/sqlite/auth.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { startPgCluster } from '../support/pg-cluster.js';

const LOOKUPS = Number(process.argv[2] ?? 2000);
const ROUNDS = Number(process.argv[3] ?? 5);
const APPENDS = Math.max(1, Math.floor(LOOKUPS / 10));

async function seed(s: AuthStore): Promise<string[]> {
  const hashes: string[] = [];
  for (let i = 0; i < 100; i++) {
    await s.insertUser({
      userId: `u${i}`,
      name: `user${i}`,
      displayName: `User ${i}`,
      role: 'coordinator',
      areas: ['north'],
      provider: null,
      staffRef: null,
      passwordHash: 'x',
      oidcSubject: null,
      disabledAt: null,
      createdAtMs: 1,
    });
    const h = `h${i.toString(16).padStart(64, '0')}`;
    await s.insertSession({
      idHash: h,
      userId: `u${i}`,
      csrf: 'c',
      createdAtMs: 1,
      expiresAtMs: 9e12,
      lastSeenMs: 1,
    });
    hashes.push(h);
  }
  return hashes;
}

async function lookups(s: AuthStore, hashes: string[]): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < LOOKUPS; i++)
    if (!(await s.sessionWithUser(hashes[i % hashes.length]!))) throw new Error('miss');
  return ((performance.now() - t0) * 1000) / LOOKUPS;
}

async function appends(a: AuditStore): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < APPENDS; i++) {
    await a.append({
      atMs: i,
      actor: 'user:x',
      action: 'user.update',
      target: 'user:u1',
      before: null,
      after: { i },
      reason: null,
    });
  }
  return ((performance.now() - t0) * 1000) / APPENDS;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), 'vt-measure-access-'));
const pgc = await startPgCluster();
const pool = openPgPool({ url: await pgc.createDatabase(), max: 2 });
try {
  await migrate(pool, postgresMigrations);
  const db = openDatabase(join(dir, 'gateway.db'), sqliteMigrations);
  const engines = [
    { name: 'sqlite', auth: new SqliteAuthStore(db), audit: new SqliteAuditStore(db) as AuditStore },
    { name: 'postgres', auth: new PgAuthStore(pool), audit: new PgAuditStore(pool) as AuditStore },
  ];
  const hashes = new Map<string, string[]>();
  for (const e of engines) hashes.set(e.name, await seed(e.auth));
  const res = new Map(engines.map((e) => [e.name, { lookup: [] as number[], append: [] as number[] }]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const e of r % 2 ? [...engines].reverse() : engines) {
      res.get(e.name)!.lookup.push(await lookups(e.auth, hashes.get(e.name)!));
      res.get(e.name)!.append.push(await appends(e.audit));
    }
  }
  const s = res.get('sqlite')!;
  const p = res.get('postgres')!;
  console.log(
    `load ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}; ${LOOKUPS} look-ups, ${APPENDS} appends, median of ${ROUNDS}`,
  );
  console.log(
    `session look-up: sqlite ${median(s.lookup).toFixed(1)} us, postgres ${median(p.lookup).toFixed(1)} us (${(median(p.lookup) / median(s.lookup)).toFixed(0)}x)`,
  );
  console.log(
    `audit append:    sqlite ${median(s.append).toFixed(1)} us, postgres ${median(p.append).toFixed(1)} us (${(median(p.append) / median(s.append)).toFixed(0)}x)`,
  );
  db.close();
} finally {
  await pool.end();
  await pgc.destroy();
  rmSync(dir, { recursive: true, force: true });
}
