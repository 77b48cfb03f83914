/**
 * The retention and erasure ports (store-retention.contract.ts) over SQLite (store/sqlite/retention.ts on a
 * file) and PostgreSQL (store/postgres/retention.ts `PgRetentionStore`, a throw-away cluster).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { pgScanForRef, PgRetentionStore } from '../../gateway/src/store/postgres/retention.js';
import { daysOf, RETENTION_CLASSES, type RetentionPeriods } from '../../gateway/src/store/retention.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { createPruner, SqliteErasure } from '../../gateway/src/store/sqlite/retention.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { describeRetentionContract, type RetentionHarness } from './store-retention.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'vt-retention-contract-'));
let cluster: Promise<PgCluster> | undefined;
const pgc = (): Promise<PgCluster> => (cluster ??= startPgCluster());
afterAll(async () => {
  if (cluster) await (await cluster).destroy();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

/** Every class kept but the given ones; two rows per transaction (so a run takes several). */
const periods = (days: Parameters<RetentionHarness['prune']>[0]): RetentionPeriods =>
  Object.assign(
    { batchRows: 2 },
    ...RETENTION_CLASSES.map((c) => ({ [`${c}Days`]: days[c] ?? 'keep' })),
  ) as RetentionPeriods;

let n = 0;
describeRetentionContract('sqlite', () => {
  const db = openDatabase(join(dir, `r${n++}.db`), sqliteMigrations);
  const erasure = new SqliteErasure(db);
  return Promise.resolve({
    prune: (days, nowMs) => Promise.resolve(createPruner(db, periods(days)).runAll(nowMs)),
    erase: (req, visitsDays) => Promise.resolve(erasure.erase(req, visitsDays)),
    scan: (ref) => Promise.resolve(erasure.scanForRef(ref)),
    sql: (text, params = []) => {
      const st = db.prepare(text);
      return Promise.resolve(
        (st.reader ? st.all(...params) : (st.run(...params), [])) as Array<Record<string, unknown>>,
      );
    },
    close: () => {
      db.close();
      return Promise.resolve();
    },
  });
});

describeRetentionContract('postgres', async () => {
  const pool = openPgPool({ url: await (await pgc()).createDatabase(), max: 4 });
  await migrate(pool, postgresMigrations);
  const store = new PgRetentionStore(pool);
  const sql = async (text: string, params: unknown[] = []) => {
    let i = 0;
    return (
      await pool.query(
        text.replace(/\?/g, () => `$${++i}`),
        params,
      )
    ).rows as Array<Record<string, unknown>>;
  };
  return {
    prune: (days, nowMs) => {
      const p = periods(days);
      return store.pruner({ days: (c) => daysOf(p, c), batchRows: p.batchRows }).runAll(nowMs);
    },
    erase: async (req, visitsDays) => {
      const r = await store.erase({ ...req, visitsDays });
      if (!r.ok) return r;
      return { ok: true, pseudonym: r.pseudonym, changed: r.changed, cards: r.cards };
    },
    scan: (ref) => pgScanForRef(pool, ref), // every text column of every table, as the erasure scans
    sql,
    close: () => pool.end(),
  };
});
