/**
 * The continuity measure aggregated in SQL (sqlite-continuity.ts) gives exactly the report the in-memory
 * computation gives from the same database's facts: the fixture municipality (a DST weekend, double staffing,
 * a substitute, home nursing and rehab staff, a safety-alarm response and meal deliveries known through the
 * plan, an unknown card, a corrected and a late-delivered visit, withdrawn taps) and a seeded larger one over
 * the spring DST change (alarm-only planned visits, unknown cards, withdrawn taps in pairs), for other counted
 * hours, late-delivery thresholds, scopes, visits not yet linked by the plan matching and without the care
 * tables.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { careMigrations } from '../../gateway/src/care/sqlite/migrations.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import type { ContinuityParams } from '../../gateway/src/reports/continuity.js';
import { applyCorrections } from '../../gateway/src/reports/memory-source.js';
import { runContinuity, runMonthly, type MonthlyParams } from '../../gateway/src/reports/run.js';
import { scopedSource } from '../../gateway/src/reports/scoped-source.js';
import type { ReportSource } from '../../gateway/src/reports/source.js';
import { SqliteReportSource } from '../../gateway/src/store/sqlite/reports/source.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { buildFixture } from './fixture.js';
import { continuityMunicipality, inMemory, writeCare, writeVisits } from './sqlite-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'visittag-reports-cont-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const clock = new ReportClock();

/** The monthly follow-up from SQL cells equals the in-memory one, byte for byte. */
async function sameMonthly(src: ReportSource, p: MonthlyParams) {
  expect('qualityCells' in src).toBe(true);
  const sql = await runMonthly(src, p, clock);
  const mem = await runMonthly(inMemory(src), p, clock);
  expect(JSON.stringify(sql)).toBe(JSON.stringify(mem));
  return sql;
}

async function same(src: ReportSource, p: ContinuityParams) {
  expect('continuityCells' in src).toBe(true);
  const sql = await runContinuity(src, p, clock);
  const mem = await runContinuity(inMemory(src), p, clock);
  // Byte-identical: the JSON the API would answer with.
  expect(JSON.stringify(sql)).toBe(JSON.stringify(mem));
  return sql;
}

const HOURS: Array<Pick<ContinuityParams, 'countFrom' | 'countTo'>> = [
  {},
  { countFrom: '08:10', countTo: '17:05' },
  { countFrom: '00:00', countTo: '24:00' },
];

describe('continuity in SQL equals the in-memory computation', () => {
  const MONDAY = '2026-03-23';
  const f = buildFixture(MONDAY);
  const visits = applyCorrections(f.visits, f.corrections);
  const db = openDatabase(join(dir, 'fixture.db'), [
    ...sqliteMigrations,
    ...careMigrations,
    ...correctionMigrations,
  ]);
  writeVisits(db, visits);
  writeCare(db, f, visits, clock);
  const src = new SqliteReportSource(db);

  it('the fixture: its hand-computed figures, other counted hours, late thresholds, 7 and 14 days', async () => {
    const r = await same(src, { fromDate: MONDAY });
    // reports.test.ts works these out by hand.
    expect(r.rows.map((x) => [x.clientRef, x.staff, x.staffWithoutDoubleStaffing])).toEqual([
      ['c1', 3, 3],
      ['c2', 4, 3],
      ['c3', 3, 3],
    ]);
    expect([r.mean, r.median, r.careContact.share]).toEqual([3.3, 3, 0.4909]);
    expect(r.quality.total).toMatchObject({ visits: 193, withdrawn: 2 });
    for (const hours of HOURS)
      for (const lateDeliveryHours of [undefined, 1.5, 100])
        await same(src, { fromDate: MONDAY, ...hours, ...(lateDeliveryHours ? { lateDeliveryHours } : {}) });
    await same(src, { fromDate: MONDAY, days: 7 });
    await same(src, { fromDate: '2026-03-30', days: 7 });
  });

  it('scoped to areas and a provider, and visits not yet linked by the plan matching', async () => {
    for (const scope of [
      { areas: ['A'], provider: null },
      { areas: ['B'], provider: null },
      { areas: ['A', 'B'], provider: 'P2' },
    ])
      for (const hours of HOURS) await same(scopedSource(src, scope), { fromDate: MONDAY, ...hours });
    // Per-visit links gone: the alarm response is found through the plan matches.
    const gone = db.prepare('DELETE FROM care_visit_matches').run().changes;
    expect(gone).toBeGreaterThan(100);
    const r = await same(src, { fromDate: MONDAY });
    expect(r.rows.find((x) => x.clientRef === 'c1')!.staff).toBe(3); // s3's alarm response still not counted
  });

  it('the monthly follow-up of the fixture moved to April (its hand-computed figures)', async () => {
    const april = buildFixture('2026-04-06');
    const av = applyCorrections(april.visits, april.corrections);
    const adb = openDatabase(join(dir, 'april.db'), [
      ...sqliteMigrations,
      ...careMigrations,
      ...correctionMigrations,
    ]);
    writeVisits(adb, av);
    writeCare(adb, april, av, clock);
    const r = await sameMonthly(new SqliteReportSource(adb), {
      fromMonth: '2026-03',
      toMonth: '2026-04',
      threshold: 3.2,
    });
    // reports.test.ts: area A 2 clients, mean 3.5 (above 3.2); area B 1 client, mean 3.
    expect(r.rows.map((x) => [x.month, x.areaId, x.clients, x.mean, x.analyse])).toEqual([
      ['2026-04', 'A', 2, 3.5, true],
      ['2026-04', 'B', 1, 3, false],
    ]);
    expect(r.quality.total).toMatchObject({ visits: 193, withdrawn: 2 });
    adb.close();
  });

  it('without the care tables (no registries: nobody in the measure, quality still reported)', async () => {
    const bare = openDatabase(join(dir, 'bare.db'), [...sqliteMigrations, ...correctionMigrations]);
    writeVisits(bare, visits);
    const r = await same(new SqliteReportSource(bare), { fromDate: MONDAY });
    expect(r.clients).toBe(0);
    expect(r.quality.total.visits).toBeGreaterThan(0);
    bare.close();
  });
});

describe('a seeded municipality over the spring DST change', () => {
  const m = continuityMunicipality();
  const db = openDatabase(join(dir, 'seeded.db'), [
    ...sqliteMigrations,
    ...careMigrations,
    ...correctionMigrations,
  ]);
  writeVisits(db, m.visits);
  writeCare(db, m, m.visits, clock);
  const src = new SqliteReportSource(db);

  it('three periods (the DST weekend inside), counted hours, scopes', async () => {
    for (const fromDate of ['2026-03-09', '2026-03-16', '2026-03-23'])
      for (const hours of HOURS) {
        const r = await same(src, { fromDate, ...hours });
        expect(r.clients).toBeGreaterThan(0);
      }
    const r = await same(src, { fromDate: '2026-03-23' });
    expect(r.breakdown.clientsWithDoubleStaffing).toBeGreaterThan(0);
    expect(r.quality.total.withdrawn).toBeGreaterThan(0);
    expect(r.quality.total.unknownCard).toBeGreaterThan(0);
    for (const areas of [['area-0'], ['area-1', 'area-2']])
      await same(scopedSource(src, { areas, provider: null }), { fromDate: '2026-03-23' });
  });

  it('the monthly follow-up per area (the months whose first fortnight has visits, and one without)', async () => {
    const r = await sameMonthly(src, { fromMonth: '2026-02', toMonth: '2026-04', threshold: 3 });
    expect(r.rows.map((x) => x.month)).toContain('2026-04');
    expect(r.quality.total.withdrawn).toBeGreaterThan(0);
    expect(r.quality.total.lateDelivered).toBeGreaterThan(0);
    const late48 = await sameMonthly(src, {
      fromMonth: '2026-03',
      toMonth: '2026-04',
      lateDeliveryHours: 48,
    });
    expect(late48.quality.total.lateDelivered).toBe(0);
    await sameMonthly(scopedSource(src, { areas: ['area-1'], provider: null }), {
      fromMonth: '2026-03',
      toMonth: '2026-04',
    });
  });
});
