/**
 * The reports' read port on both engines (store-reports.contract.ts), and every report computed on
 * PostgreSQL equal to the same report on SQLite for the same visits, byte for byte (same digest): the SQLite
 * source from its kept cells and SQL aggregations, the PostgreSQL one from the facts in memory
 * (gateway/src/store/postgres/reports.ts). The PostgreSQL database is filled by copying the SQLite file's
 * rows table by table, so both engines hold exactly the same facts.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { careMigrations } from '../../gateway/src/store/sqlite/care-migrations.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import { applyCorrections } from '../../gateway/src/reports/memory-source.js';
import { reportMigrations } from '../../gateway/src/store/sqlite/reports/migrations.js';
import { runCall, type ReportCall } from '../../gateway/src/reports/runner.js';
import { scopedSource } from '../../gateway/src/reports/scoped-source.js';
import type { ReportSource } from '../../gateway/src/reports/source.js';
import { SqliteReportSource } from '../../gateway/src/store/sqlite/reports/source.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import { pgCorrectionMigrations } from '../../gateway/src/store/postgres/corrections-migrations.js';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { pgReportMigrations, PgReportSource } from '../../gateway/src/store/postgres/reports.js';
import { openDatabase, type Db } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { secureCardMigrations } from '../../gateway/src/store/sqlite/secure-cards.js';
import { runQuality } from '../../gateway/src/reports/run.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { buildFixture } from '../reports/fixture.js';
import { sqliteToPg } from '../reports/pg-copy.js';
import { continuityMunicipality, writeCare, writeVisits } from '../reports/sqlite-fixture.js';
import { describeReportSourceContract, MONDAY, TO, type ReportFactsInput } from './store-reports.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'vt-pg-reports-'));
let cluster: Promise<PgCluster> | undefined;
const pgc = (): Promise<PgCluster> => (cluster ??= startPgCluster());
afterAll(async () => {
  if (cluster) await (await cluster).destroy();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

/** The PostgreSQL steps the reports and corrections need, whether or not the ordered list has them yet. */
const PG_STEPS = (() => {
  const have = new Set(postgresMigrations.map((m) => m.id));
  return [
    ...postgresMigrations,
    ...[...pgReportMigrations, ...pgCorrectionMigrations].filter((m) => !have.has(m.id)),
  ];
})();

const SQLITE_STEPS = [...sqliteMigrations, ...careMigrations, ...correctionMigrations, ...reportMigrations];
let n = 0;

/** A gateway SQLite file holding the facts (as the fixture writers put them). */
function sqliteWith(
  facts: ReportFactsInput | { visitsOnly: ReportFactsInput['visits'] },
  clock: ReportClock,
): Db {
  const db = openDatabase(join(dir, `r${n++}.db`), SQLITE_STEPS);
  if ('visitsOnly' in facts) writeVisits(db, facts.visitsOnly);
  else {
    writeVisits(db, facts.visits);
    writeCare(db, facts, facts.visits, clock);
  }
  return db;
}

/** A fresh PostgreSQL database with the SQLite file's rows of the tables reports read, copied as they are. */
async function pgCopyOf(db: Db): Promise<PgPool> {
  const pool = openPgPool({ url: await (await pgc()).createDatabase(), max: 4 });
  await migrate(pool, PG_STEPS);
  await sqliteToPg(db, pool);
  return pool;
}

describeReportSourceContract('sqlite', (facts, clock) => {
  const db = sqliteWith(facts, clock);
  return Promise.resolve({
    source: new SqliteReportSource(db, { chunk: 7 }),
    close: () => {
      db.close();
      return Promise.resolve();
    },
  });
});

describeReportSourceContract('postgres', async (facts, clock) => {
  const db = sqliteWith(facts, clock);
  const pool = await pgCopyOf(db);
  db.close();
  return { source: new PgReportSource(pool, { chunk: 7 }), close: () => pool.end() };
});

const digest = (x: unknown) => createHash('sha256').update(JSON.stringify(x)).digest('hex').slice(0, 16);

/** Every report kind over a period, as the HTTP API calls them. */
const calls = (from: string, to: string, month: string): ReportCall[] => [
  { kind: 'executed', params: { fromDate: from, toDate: to, period: 'week', groupBy: ['area'] } },
  {
    kind: 'executed',
    params: { fromDate: from, toDate: to, period: 'day', groupBy: ['client', 'serviceCode'] },
  },
  {
    kind: 'executed',
    params: {
      fromDate: from,
      toDate: to,
      period: 'month',
      groupBy: ['provider', 'team'],
      lateDeliveryHours: 2,
    },
  },
  { kind: 'continuity', params: { fromDate: from } },
  { kind: 'continuity', params: { fromDate: from, days: 7, lateDeliveryHours: 12 } },
  { kind: 'monthly', params: { fromMonth: month, toMonth: month } },
  { kind: 'staffing', params: { fromDate: from, toDate: to } },
  { kind: 'quality', params: { fromDate: from, toDate: to } },
];

async function sameReports(
  sqlite: ReportSource,
  pg: ReportSource,
  cs: ReportCall[],
  clock: ReportClock,
): Promise<string[]> {
  const out: string[] = [];
  for (const c of cs) {
    const a = await runCall(sqlite, c, clock);
    const b = await runCall(pg, c, clock);
    expect(JSON.stringify(b), `${c.kind} ${JSON.stringify(c.params)}`).toBe(JSON.stringify(a));
    out.push(digest(b));
  }
  return out;
}

describe('every report on PostgreSQL equals the report on SQLite for the same visits (same digest)', () => {
  const clock = new ReportClock();

  it('the fixture municipality: corrections, withdrawn taps, the DST week, double staffing; scoped to one area', async () => {
    const f = buildFixture(MONDAY);
    const visits = applyCorrections(f.visits, f.corrections);
    const db = sqliteWith({ ...f, visits }, clock);
    const pool = await pgCopyOf(db);
    try {
      const sqlite = new SqliteReportSource(db);
      const pg = new PgReportSource(pool);
      const d = await sameReports(sqlite, pg, calls(MONDAY, TO, '2026-03'), clock);
      expect(new Set(d).size).toBe(d.length);
      // the SQLite side used its speed-up (the kept cells) for the default executed report
      await runCall(sqlite, calls(MONDAY, TO, '2026-03')[0]!, clock);
      expect(sqlite.lastExecutedFrom).toBe('kept cells');
      const scope = { areas: [f.registries.areas[0]!.areaId], provider: null };
      await sameReports(
        scopedSource(sqlite, scope),
        scopedSource(pg, scope),
        calls(MONDAY, TO, '2026-03'),
        clock,
      );
    } finally {
      db.close();
      await pool.end();
    }
  });

  it('tap assurance recorded by the secure-card verifier (secure_taps): the same on both; none recorded: null on both', async () => {
    const f = buildFixture(MONDAY);
    const visits = applyCorrections(f.visits, f.corrections);
    const db = sqliteWith({ ...f, visits }, clock);
    for (const m of secureCardMigrations) m.up(db);
    const pool = await pgCopyOf(db);
    try {
      // none recorded yet: PostgreSQL (whose table always exists) answers as SQLite without the table
      expect(await new PgReportSource(pool).tapAssurance(clock.window(MONDAY, TO))).toBeNull();
      const readers = [...new Set(visits.map((v) => v.readerId))].sort().slice(0, 3);
      const t0 = clock.window(MONDAY, TO).fromMs;
      const rows: unknown[][] = [];
      readers.forEach((readerId, i) => {
        for (let k = 0; k < 6 + i; k++) {
          rows.push([
            readerId,
            `ev-${i}-${k}`,
            k + 1,
            `c1_${'0'.repeat(31)}${i}`,
            k % 3 === 0 ? 'uid-only' : 'secure',
            k === 4 ? 'refused' : k === 5 ? 'flagged' : 'accepted',
            k === 4 ? 'replay' : 'ok',
            k,
            '',
            // one tap of each reader before the window
            k === 0 ? t0 - 60_000 : t0 + k * 3_600_000 + i * 60_000,
          ]);
        }
      });
      const cols = 'reader_id, event_id, seq, card_ref, assurance, verdict, code, counter, detail, at_ms';
      const ins = db.prepare(`INSERT INTO secure_taps (${cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
      for (const r of rows) {
        ins.run(...r);
        await pool.query(
          `INSERT INTO secure_taps (${cols}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
          r,
        );
      }
      const sqlite = new SqliteReportSource(db);
      const pg = new PgReportSource(pool);
      const q = await runQuality(pg, { fromDate: MONDAY, toDate: TO }, clock);
      expect(q.quality.assurance.recorded).toBe(true);
      expect(q.quality.assurance.byReader.length).toBeGreaterThan(0);
      expect(q.quality.assurance.total.secure).toBeGreaterThan(0);
      await sameReports(sqlite, pg, calls(MONDAY, TO, '2026-03'), clock);
      const scope = { areas: [f.registries.areas[0]!.areaId], provider: null };
      await sameReports(
        scopedSource(sqlite, scope),
        scopedSource(pg, scope),
        calls(MONDAY, TO, '2026-03'),
        clock,
      );
    } finally {
      db.close();
      await pool.end();
    }
  });

  it('a seeded municipality of 40 clients over six weeks across the DST change', async () => {
    const m = continuityMunicipality();
    const db = sqliteWith(
      { registries: m.registries, planned: m.planned, matches: m.matches, visits: m.visits },
      clock,
    );
    const pool = await pgCopyOf(db);
    try {
      await sameReports(
        new SqliteReportSource(db),
        new PgReportSource(pool),
        calls('2026-03-09', '2026-04-19', '2026-04'),
        clock,
      );
    } finally {
      db.close();
      await pool.end();
    }
  }, 120_000);
});
