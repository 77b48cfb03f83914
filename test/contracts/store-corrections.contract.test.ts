/**
 * The corrections' port (store-corrections.contract.ts) over SQLite (the embedded gateway's service on its
 * file) and over PostgreSQL (corrections/pg.ts on store/postgres/corrections.ts, a throw-away cluster).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PgVisitCorrections } from '../../gateway/src/corrections/pg.js';
import { VisitCorrections } from '../../gateway/src/corrections/service.js';
import { PgCareScopeReader } from '../../gateway/src/store/postgres/care.js';
import { pgCorrectionMigrations } from '../../gateway/src/store/postgres/corrections-migrations.js';
import {
  PgCorrectionStore,
  PgFlagStore,
  PgPeriodLockStore,
} from '../../gateway/src/store/postgres/corrections.js';
import { migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { pgReportMigrations } from '../../gateway/src/store/postgres/reports.js';
import { SqliteAuditStore } from '../../gateway/src/store/sqlite/audit.js';
import { sqliteCorrectionPorts } from '../../gateway/src/store/sqlite/corrections.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import { SqliteScopeReader } from '../../gateway/src/store/sqlite/scope.js';
import { careMigrations } from '../../gateway/src/store/sqlite/care-migrations.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { SqliteOutbox } from '../../gateway/src/store/sqlite/outbox.js';
import { VisitRepo } from '../../gateway/src/visits/repo.js';
import { SqliteVisitStore } from '../../gateway/src/store/sqlite/visits.js';
import { systemClock } from '../../protocol/index.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { describeCorrectionsContract, T0 } from './store-corrections.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'vt-corrections-contract-'));
let cluster: Promise<PgCluster> | undefined;
const pgc = (): Promise<PgCluster> => (cluster ??= startPgCluster());
afterAll(async () => {
  if (cluster) await (await cluster).destroy();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

/** The PostgreSQL steps the corrections need, whether or not the ordered list has them yet. */
export const PG_STEPS = (() => {
  const have = new Set(postgresMigrations.map((m) => m.id));
  return [
    ...postgresMigrations,
    ...[...pgCorrectionMigrations, ...pgReportMigrations].filter((m) => !have.has(m.id)),
  ];
})();

let n = 0;
describeCorrectionsContract('sqlite', () => {
  const db = openDatabase(join(dir, `c${n++}.db`), [
    ...sqliteMigrations,
    ...careMigrations,
    ...correctionMigrations,
  ]);
  let now = T0;
  const clock = { ...systemClock, now: () => now };
  const outbox = new SqliteOutbox({ db });
  const audit = new SqliteAuditStore(db);
  const api = new VisitCorrections({
    ...sqliteCorrectionPorts(db, {
      visits: new VisitRepo({ store: new SqliteVisitStore(db), clock }),
      enqueue: (e, nowMs) => outbox.enqueue(e, nowMs),
      appendAudit: (e) => audit.append(e),
    }),
    scopes: new SqliteScopeReader(db),
    clock,
  });
  return Promise.resolve({
    api,
    sql: (text, params = []) => {
      const st = db.prepare(text);
      return Promise.resolve(
        (st.reader ? st.all(...params) : (st.run(...params), [])) as Array<Record<string, unknown>>,
      );
    },
    setNow: (ms) => {
      now = ms;
    },
    close: () => {
      db.close();
      return Promise.resolve();
    },
  });
});

describeCorrectionsContract('postgres', async () => {
  const pool = openPgPool({ url: await (await pgc()).createDatabase(), max: 4 });
  await migrate(pool, PG_STEPS);
  let now = T0;
  const clock = { ...systemClock, now: () => now };
  const scopes = new PgCareScopeReader(pool);
  const api = new PgVisitCorrections({
    store: new PgCorrectionStore(pool),
    locks: new PgPeriodLockStore(pool),
    flags: new PgFlagStore(pool),
    scopes: {
      clients: (s) => scopes.clients(s),
      staffInScope: async (s, staffRef) =>
        (
          await pool.query('SELECT 1 FROM care_staff WHERE staff_ref = $1 AND area_id = ANY($2::text[])', [
            staffRef,
            [...s.areas],
          ])
        ).rowCount! > 0,
    },
    clock,
    timeZone: 'Europe/Stockholm',
  });
  return {
    api,
    sql: async (text, params = []) => {
      let i = 0;
      return (
        await pool.query(
          text.replace(/\?/g, () => `$${++i}`),
          params,
        )
      ).rows as Array<Record<string, unknown>>;
    },
    setNow: (ms) => {
      now = ms;
    },
    close: () => pool.end(),
  };
});

describe('PostgreSQL: two instances correcting at once', () => {
  it('eight withdrawals of one visit through two pools at once: one is made, one event queued; the rules ran again when they missed reads', async () => {
    const url = await (await pgc()).createDatabase();
    const pools = [openPgPool({ url, max: 4 }), openPgPool({ url, max: 4 })];
    try {
      await migrate(pools[0]!, PG_STEPS);
      const clock = { ...systemClock, now: () => T0 + 3_600_000 };
      const apis = pools.map((pool) => {
        const scopes = new PgCareScopeReader(pool);
        const store = new PgCorrectionStore(pool);
        return {
          store,
          api: new PgVisitCorrections({
            store,
            locks: new PgPeriodLockStore(pool),
            flags: new PgFlagStore(pool),
            scopes: { clients: (s) => scopes.clients(s), staffInScope: () => Promise.resolve(false) },
            clock,
            timeZone: 'Europe/Stockholm',
          }),
        };
      });
      await pools[0]!.query(
        `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms,
           start_seq, ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq, updated_at_ms)
         VALUES ('r1', 'v1', 'c1', $1, 's1', NULL, 'closed', $2, 1, $3, 2, 'tap', 'synced', '[]', NULL, $2)`,
        [`c1_${'a'.repeat(32)}`, T0, T0 + 600_000],
      );
      // every connection open first, so the withdrawals' statements interleave round by round
      await Promise.all(
        pools.flatMap((p) => Array.from({ length: 4 }, () => p.query('SELECT pg_sleep(0.05)'))),
      );
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          apis[i % 2]!.api.withdraw({
            visitId: 'v1',
            reasonCode: 'tap-by-mistake',
            note: null,
            actor: `u${i}`,
            visible: () => true,
          }),
        ),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.filter((r) => !r.ok && r.status === 409)).toHaveLength(7);
      const q = await pools[1]!.query(`SELECT type FROM outbox`);
      expect(q.rows.map((r: { type: string }) => r.type)).toEqual(['visit.withdrawn']);
      expect(
        (await pools[1]!.query<{ n: number }>(`SELECT count(*) AS n FROM visit_corrections`)).rows[0]!.n,
      ).toBe(1);
      expect(Math.max(...apis.map((a) => a.store.lastRuns))).toBeGreaterThan(1);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  }, 60_000);
});
