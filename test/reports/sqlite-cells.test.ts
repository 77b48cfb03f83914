/**
 * Executed vs planned from the cells kept at write time (sqlite-cells.ts) is byte-identical to the report
 * aggregated on the fly and to the in-memory one, on the fixture (hand-computed figures) and a seeded
 * municipality over the spring DST change, and stays so after every kind of write that changes a cell: a
 * correction, a visit that arrives days late, a withdrawn tap, a re-match, a plan change, a reason code,
 * a card assigned later, a visit moved across the DST night, an erased visit. Each write changes the
 * report, so cells left stale would fail the comparison. A range whose edge cuts an occasion that spans
 * two days is computed on the fly (still identical); a read-only connection with marks it cannot take
 * does the same; the triggers never fail a write.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { careMigrations } from '../../gateway/src/care/sqlite/migrations.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import type { Dimension, ExecutedParams, Period } from '../../gateway/src/reports/executed.js';
import { applyCorrections } from '../../gateway/src/reports/memory-source.js';
import { reportMigrations } from '../../gateway/src/store/sqlite/reports/migrations.js';
import { runExecuted } from '../../gateway/src/reports/run.js';
import { scopedSource, type ReportScope } from '../../gateway/src/reports/scoped-source.js';
import type { ReportSource, ReportVisit } from '../../gateway/src/reports/source.js';
import { SqliteReportSource } from '../../gateway/src/store/sqlite/reports/source.js';
import { addDays, ReportClock } from '../../gateway/src/reports/time.js';
import { openDatabase, type Db } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { municipality } from '../../bench/lib/report-data.js';
import { buildFixture } from './fixture.js';
import { inMemory, writeCare, writeVisits } from './sqlite-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'visittag-reports-cells-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const clock = new ReportClock();
const MIGRATIONS = [...sqliteMigrations, ...careMigrations, ...correctionMigrations, ...reportMigrations];

const GROUPINGS: Dimension[][] = [
  [],
  ['area'],
  ['client'],
  ['serviceCode'],
  ['client', 'team', 'area', 'provider', 'serviceCode'],
];
const PERIODS: Period[] = ['day', 'week', 'month', 'range'];

/** The report from the kept cells, on the fly and in memory (optionally scoped): all three byte-identical. */
async function check(
  db: Db,
  p: ExecutedParams,
  from: 'kept cells' | 'sql' = 'kept cells',
  scope?: ReportScope,
) {
  const kept = new SqliteReportSource(db);
  const sql = new SqliteReportSource(db, { cells: false });
  const scoped = (s: ReportSource) => (scope ? scopedSource(s, scope) : s);
  const a = JSON.stringify(await runExecuted(scoped(kept), p, clock));
  expect(kept.lastExecutedFrom).toBe(from);
  const b = JSON.stringify(await runExecuted(scoped(sql), p, clock));
  expect(sql.lastExecutedFrom).toBe('sql');
  const c = JSON.stringify(await runExecuted(inMemory(scoped(sql)), p, clock));
  expect(b).toBe(c);
  expect(a).toBe(c);
  return a;
}

describe('the fixture from kept cells', () => {
  const MONDAY = '2026-03-23';
  const TO = '2026-04-05';
  const f = buildFixture(MONDAY);
  const visits = applyCorrections(f.visits, f.corrections);
  const db = openDatabase(join(dir, 'fixture.db'), MIGRATIONS);
  writeVisits(db, visits);
  writeCare(db, f, visits, clock);

  it('every period and grouping, single days (the DST day, the midnight crossing); hand-computed totals', async () => {
    for (const period of PERIODS)
      for (const groupBy of GROUPINGS) await check(db, { fromDate: MONDAY, toDate: TO, period, groupBy });
    for (const day of ['2026-03-27', '2026-03-28', '2026-03-29', '2026-03-30'])
      await check(db, { fromDate: day, toDate: day, period: 'day', groupBy: ['client'] });
    const all = JSON.parse(
      await check(db, { fromDate: MONDAY, toDate: TO, period: 'range', groupBy: [] }),
    ) as { total: Record<string, number>; quality: { total: Record<string, number> } };
    // The fixture's hand-computed totals (reports.test.ts).
    expect(all.total).toMatchObject({
      executedVisits: 180,
      executedMinutes: 4785,
      executedStaffMinutes: 5357,
    });
    expect(all.quality.total).toMatchObject({ corrected: 1, lateDelivered: 1, unknownCard: 1, withdrawn: 2 });
    // another late-delivery threshold is not what the cells count: on the fly
    await check(
      db,
      { fromDate: MONDAY, toDate: TO, period: 'week', groupBy: [], lateDeliveryHours: 48 },
      'sql',
    );
  });
});

describe('scoped reports (areas, a provider) from kept cells', () => {
  const MONDAY = '2026-03-23';
  const TO = '2026-04-05';
  const f = buildFixture(MONDAY);
  const visits = applyCorrections(f.visits, f.corrections);
  const db = openDatabase(join(dir, 'fixture-scope.db'), MIGRATIONS);
  writeVisits(db, visits);
  writeCare(db, f, visits, clock);
  const A: ReportScope = { areas: ['A'], provider: null };
  const SCOPES: ReportScope[] = [A, { areas: ['B'], provider: null }, { areas: ['A', 'B'], provider: 'P2' }];

  it('every period and grouping, scoped, from the cells; the figures of each scope its own', async () => {
    for (const scope of SCOPES)
      for (const period of PERIODS)
        for (const groupBy of GROUPINGS)
          await check(db, { fromDate: MONDAY, toDate: TO, period, groupBy }, 'kept cells', scope);
    const whole = { fromDate: MONDAY, toDate: TO, period: 'range', groupBy: [] } as const;
    const all = JSON.parse(await check(db, whole)) as { total: { executedVisits: number } };
    const a = JSON.parse(await check(db, whole, 'kept cells', A)) as typeof all;
    const b = JSON.parse(
      await check(db, whole, 'kept cells', { areas: ['B'], provider: null }),
    ) as typeof all;
    expect(a.total.executedVisits).toBeGreaterThan(0);
    expect(b.total.executedVisits).toBeGreaterThan(0);
    expect(a.total.executedVisits + b.total.executedVisits).toBeLessThanOrEqual(all.total.executedVisits);
  });

  it('an occasion or a planned visit a scope would split goes on the fly (still identical), then back', async () => {
    const p: ExecutedParams = {
      fromDate: MONDAY,
      toDate: TO,
      period: 'week',
      groupBy: ['client', 'serviceCode'],
    };
    const pairOf = db
      .prepare(
        `SELECT reader_id, visit_id FROM visits WHERE client_ref = 'c2' AND group_id IS NOT NULL AND group_id <> visit_id
          ORDER BY started_at_ms LIMIT 1`,
      )
      .get() as { reader_id: string; visit_id: string };
    const c1Visit = db
      .prepare(
        `SELECT vm.executed_key AS k, vm.planned_visit_id AS pv FROM care_visit_matches vm
          WHERE vm.client_ref = 'c1' AND vm.planned_visit_id IS NOT NULL ORDER BY vm.time_ms LIMIT 1`,
      )
      .get() as { k: string; pv: string };
    const c3Plan = db
      .prepare("SELECT planned_visit_id FROM care_planned_visits WHERE client_ref = 'c3' LIMIT 1")
      .pluck()
      .get() as string;
    const c1Match = db
      .prepare(
        "SELECT planned_visit_id FROM care_plan_matches WHERE client_ref = 'c1' AND status = 'matched' LIMIT 1",
      )
      .pluck()
      .get() as string;
    const writes: Array<[string, () => void, () => void]> = [
      [
        "a double-staffed pair's second visit made for a client of another area",
        () =>
          db
            .prepare("UPDATE visits SET client_ref = 'c3' WHERE reader_id = ? AND visit_id = ?")
            .run(pairOf.reader_id, pairOf.visit_id),
        () =>
          db
            .prepare("UPDATE visits SET client_ref = 'c2' WHERE reader_id = ? AND visit_id = ?")
            .run(pairOf.reader_id, pairOf.visit_id),
      ],
      [
        "a visit linked to another area's client's planned visit",
        () =>
          db
            .prepare('UPDATE care_visit_matches SET planned_visit_id = ? WHERE executed_key = ?')
            .run(c3Plan, c1Visit.k),
        () =>
          db
            .prepare('UPDATE care_visit_matches SET planned_visit_id = ? WHERE executed_key = ?')
            .run(c1Visit.pv, c1Visit.k),
      ],
      [
        'a planned visit matched under a client of another area',
        () =>
          db
            .prepare("UPDATE care_plan_matches SET client_ref = 'c3' WHERE planned_visit_id = ?")
            .run(c1Match),
        () =>
          db
            .prepare("UPDATE care_plan_matches SET client_ref = 'c1' WHERE planned_visit_id = ?")
            .run(c1Match),
      ],
    ];
    const before = await check(db, p, 'kept cells', A);
    for (const [what, write, undo] of writes) {
      write();
      const r = await check(db, p, 'sql', A);
      expect(r, what).not.toBe(before);
      await check(db, p); // unscoped: still from the cells
      undo();
      expect(await check(db, p, 'kept cells', A), what).toBe(before);
    }
  });
});

describe('a database whose cells were kept before reports-006 (the upgrade)', () => {
  it('the migration has every cell rebuilt: mixed marks and per-client differences for all days', async () => {
    const MONDAY = '2026-03-23';
    const f = buildFixture(MONDAY);
    const visits = applyCorrections(f.visits, f.corrections);
    // a pair of c2 (area A) whose second visit is for c3 (area B): a scope of A would split it
    const second = visits.find((v) => v.clientRef === 'c2' && v.groupId !== null && v.groupId !== v.visitId)!;
    second.clientRef = 'c3';
    const path = join(dir, 'upgrade-006.db');
    const db = openDatabase(path, MIGRATIONS);
    writeVisits(db, visits);
    writeCare(db, f, visits, clock);
    const p: ExecutedParams = { fromDate: MONDAY, toDate: '2026-04-05', period: 'week', groupBy: ['client'] };
    await check(db, p);
    // Back to the schema before reports-006, with the cells it kept (no mixed marks, no client differences).
    db.exec(`DROP INDEX report_exec_cells_mixed; DROP INDEX report_plan_cells_mixed;
             ALTER TABLE report_exec_cells DROP COLUMN mixed; ALTER TABLE report_plan_cells DROP COLUMN mixed;
             DROP TABLE report_exec_client_diffs; DELETE FROM schema_migrations WHERE id = 'reports-006';`);
    db.close();
    const again = openDatabase(path, MIGRATIONS);
    const A: ReportScope = { areas: ['A'], provider: null };
    await check(again, p, 'sql', A);
    // the pair made whole again: that day is recomputed, every other day's cells must be the rebuilt ones
    again.prepare("UPDATE visits SET client_ref = 'c2' WHERE visit_id = ?").run(second.visitId);
    await check(again, p, 'kept cells', A);
    await check(again, p, 'kept cells', { areas: ['B'], provider: null });
    again.close();
  });
});

describe('a seeded municipality over the spring DST change, kept current through writes', () => {
  const FROM = '2026-03-09';
  const TO = '2026-04-19';
  const m = municipality({
    clients: 24,
    areas: 3,
    staffPerArea: 6,
    fromDate: FROM,
    days: 42,
    withPlan: true,
    seed: 7,
  });
  const base = {
    readerId: 'rd-1',
    clientRef: 'c1',
    staffRef: 's1-0',
    cardRef: 'card-s1-0',
    groupId: null,
    state: 'closed' as const,
    endReason: 'tap',
    timeQuality: 'synced' as const,
    anomalies: [],
    corrected: false,
  };
  // Visits across local midnight, night visits planned the day before, withdrawn taps, odd pairs.
  for (const v of m.visits.slice(0, 400))
    if (v.groupId === null && v.startedAtMs !== null && Number(v.visitId.slice(1)) % 37 === 0)
      v.endedAtMs = v.startedAtMs + 5 * 3_600_000;
  for (const [d, date] of ['2026-03-27', '2026-03-28', '2026-03-29', '2026-03-30'].entries()) {
    const next = clock.startOfDay(addDays(date, 1));
    m.planned.push({
      plannedVisitId: `late-night-${d}`,
      clientRef: 'c1',
      localDate: date,
      localStart: '23:50',
      startMs: next - 10 * 60_000,
      plannedMinutes: 20,
      serviceCodes: [{ code: 'PC', standardMinutes: 20, grantedMinutes: 20 }],
      staffCount: 1,
      plannedStaffRefs: [],
      planVersionId: 1,
    });
    const made = next + 5 * 60_000;
    m.visits.push({
      ...base,
      visitId: `late-night-v${d}`,
      startedAtMs: made,
      endedAtMs: made + 18 * 60_000,
      updatedAtMs: made,
      receivedAtMs: made,
    });
    m.matches.push({
      plannedVisitId: `late-night-${d}`,
      clientRef: 'c1',
      status: 'late',
      executedKeys: [`rd-1/late-night-v${d}`],
      lateMinutes: 15,
      reasonCode: null,
      localDate: date,
    });
  }
  for (const v of m.visits)
    if (Number(v.visitId.slice(1)) % 53 === 5) {
      v.withdrawn = true;
      v.corrected = true;
    }
  for (const v of m.visits)
    if (v.groupId !== null && v.groupId !== v.visitId && Number(v.visitId.slice(1)) % 3 === 0) {
      v.clientRef = 'c1';
      if (v.startedAtMs !== null) v.startedAtMs -= 2 * 60_000;
    }
  // A double-staffed pair across midnight (23:58 and 00:03) into Saturday 2026-04-04.
  const sat = clock.startOfDay('2026-04-04');
  const pair: ReportVisit[] = [
    {
      ...base,
      readerId: 'rd-2',
      clientRef: 'c2',
      visitId: 'mid-a',
      groupId: 'mid-a',
      staffRef: 's2-1',
      cardRef: 'card-s2-1',
      startedAtMs: sat - 2 * 60_000,
      endedAtMs: sat + 30 * 60_000,
      updatedAtMs: sat,
      receivedAtMs: sat,
    },
    {
      ...base,
      readerId: 'rd-2',
      clientRef: 'c2',
      visitId: 'mid-b',
      groupId: 'mid-a',
      staffRef: 's2-2',
      cardRef: 'card-s2-2',
      startedAtMs: sat + 3 * 60_000,
      endedAtMs: sat + 31 * 60_000,
      updatedAtMs: sat,
      receivedAtMs: sat,
    },
  ];
  m.visits.push(...pair);
  const db = openDatabase(join(dir, 'seeded.db'), MIGRATIONS);
  writeVisits(db, m.visits);
  writeCare(db, m, m.visits, clock);
  const whole: ExecutedParams = {
    fromDate: FROM,
    toDate: TO,
    period: 'day',
    groupBy: ['client', 'serviceCode'],
  };

  it('every period and grouping; single days around the DST change and the night visits', async () => {
    for (const period of PERIODS)
      for (const groupBy of GROUPINGS) await check(db, { fromDate: FROM, toDate: TO, period, groupBy });
    for (const day of ['2026-03-28', '2026-03-29', '2026-03-30', '2026-03-31'])
      for (const groupBy of GROUPINGS)
        await check(db, { fromDate: day, toDate: day, period: 'day', groupBy });
    // A range that starts or ends at the midnight inside the pair is computed on the fly.
    await check(db, { fromDate: '2026-04-04', toDate: TO, period: 'day', groupBy: ['client'] }, 'sql');
    await check(db, { fromDate: FROM, toDate: '2026-04-03', period: 'day', groupBy: ['client'] }, 'sql');
    await check(db, { fromDate: '2026-04-03', toDate: '2026-04-04', period: 'day', groupBy: ['client'] });
  });

  it('every write that changes a figure changes the report from the cells exactly as on the fly', async () => {
    // the first visit alone, counted, closed by a tap, from the n-th on
    const vid = (n: number) =>
      m.visits.find(
        (x) =>
          /^v\d+$/.test(x.visitId) &&
          Number(x.visitId.slice(1)) >= n &&
          x.groupId === null &&
          x.withdrawn !== true &&
          x.staffRef !== 'nurse' &&
          x.endReason === 'tap',
      )!;
    const writes: Array<[string, () => void]> = [
      [
        'a correction (a later end, closed by hand, audited)',
        () => {
          const v = vid(100);
          db.prepare(
            "UPDATE visits SET ended_at_ms = ended_at_ms + 1800000, end_reason = 'manual' WHERE reader_id = ? AND visit_id = ?",
          ).run(v.readerId, v.visitId);
          db.prepare(
            "INSERT INTO visit_audit (reader_id, visit_id, action, actor, reason, at_ms) VALUES (?, ?, 'close', 't', 'x', 0)",
          ).run(v.readerId, v.visitId);
        },
      ],
      [
        'a visit that arrived days late',
        () => {
          const t = clock.startOfDay('2026-03-16') + 15 * 3_600_000;
          writeVisits(db, [
            {
              ...base,
              readerId: 'rd-late',
              visitId: 'late-1',
              clientRef: 'c3',
              startedAtMs: t,
              endedAtMs: t + 40 * 60_000,
              updatedAtMs: t,
              receivedAtMs: t + 5 * 86_400_000,
            },
          ]);
        },
      ],
      [
        'a withdrawn tap',
        () => {
          const v = vid(200);
          db.prepare(
            `INSERT INTO visit_corrections (kind, reader_id, visit_id, reason_code, note, actor, request_id, at_ms,
               before_json, after_json) VALUES ('withdrawn', ?, ?, 'tap-by-mistake', NULL, 't', NULL, 0, '{}', '{}')`,
          ).run(v.readerId, v.visitId);
        },
      ],
      [
        'a re-match (the visit unlinked, its planned visit missed)',
        () => {
          const v = vid(300);
          const key = `${v.readerId}/${v.visitId}`;
          const pv = db
            .prepare('SELECT planned_visit_id FROM care_visit_matches WHERE executed_key = ?')
            .pluck()
            .get(key) as string;
          expect(pv).toBeTruthy();
          db.prepare('UPDATE care_visit_matches SET planned_visit_id = NULL WHERE executed_key = ?').run(key);
          db.prepare(
            "UPDATE care_plan_matches SET status = 'missed', executed_keys_json = '[]' WHERE planned_visit_id = ?",
          ).run(pv);
        },
      ],
      [
        'a reason code on a missed visit',
        () => {
          const pv = db
            .prepare("SELECT planned_visit_id FROM care_plan_matches WHERE status = 'missed' LIMIT 1")
            .pluck()
            .get() as string;
          db.prepare(
            "INSERT OR REPLACE INTO care_reasons (planned_visit_id, reason_code, note, set_by, set_at_ms) VALUES (?, 'staff-ill', '', 't', 0)",
          ).run(pv);
        },
      ],
      [
        'a plan change (a planned visit withdrawn from the plan, another added)',
        () => {
          db.prepare(
            "UPDATE care_planned_visits SET active = 0 WHERE planned_visit_id = (SELECT planned_visit_id FROM care_planned_visits WHERE local_date = '2026-03-18' LIMIT 1)",
          ).run();
          db.prepare(
            `INSERT INTO care_planned_visits (plan_version_id, planned_visit_id, area_id, client_ref, local_date, local_start,
               start_ms, planned_minutes, service_codes_json, staff_count, staff_refs_json, active)
             VALUES (2, 'added-1', 'area-1', 'c4', '2026-03-19', '10:00', ?, 45, '[{"code":"PC","standardMinutes":20,"grantedMinutes":20}]', 1, '[]', 1)`,
          ).run(clock.startOfDay('2026-03-19') + 10 * 3_600_000);
        },
      ],
      [
        'a visit whose card is unknown (its staff cleared)',
        () => {
          const v = vid(400);
          db.prepare('UPDATE visits SET staff_ref = NULL WHERE reader_id = ? AND visit_id = ?').run(
            v.readerId,
            v.visitId,
          );
        },
      ],
      [
        'the card assigned later (the staff set again)',
        () => {
          const v = vid(400);
          db.prepare("UPDATE visits SET staff_ref = 's0-1' WHERE reader_id = ? AND visit_id = ?").run(
            v.readerId,
            v.visitId,
          );
        },
      ],
      [
        'a visit moved into the DST night (01:50 to 03:10 local on 2026-03-29: 20 minutes)',
        () => {
          const v = vid(500);
          const t = clock.startOfDay('2026-03-29') + 110 * 60_000;
          db.prepare(
            'UPDATE visits SET started_at_ms = ?, ended_at_ms = ? WHERE reader_id = ? AND visit_id = ?',
          ).run(t, t + 20 * 60_000, v.readerId, v.visitId);
        },
      ],
      [
        'an erased visit',
        () => {
          const v = vid(600);
          db.prepare('DELETE FROM visits WHERE reader_id = ? AND visit_id = ?').run(v.readerId, v.visitId);
        },
      ],
    ];
    let before = await check(db, whole);
    for (const [what, write] of writes) {
      write();
      const after = await check(db, whole);
      expect(after, what).not.toBe(before);
      before = after;
    }
    // and a week, a month, the DST weekend
    await check(db, { fromDate: '2026-03-23', toDate: '2026-03-29', period: 'week', groupBy: ['area'] });
    await check(db, { fromDate: '2026-03-01', toDate: '2026-03-31', period: 'month', groupBy: ['area'] });
    await check(db, { fromDate: '2026-03-28', toDate: '2026-03-29', period: 'day', groupBy: ['client'] });
  });

  it('a read-only connection uses the cells only when no write is waiting to be recomputed', async () => {
    await check(db, whole); // current now
    const ro = new Database(join(dir, 'seeded.db'), { readonly: true });
    const a = new SqliteReportSource(ro);
    await runExecuted(a, whole, clock);
    expect(a.lastExecutedFrom).toBe('kept cells');
    const v = m.visits.find((x) => x.visitId === 'v700')!;
    db.prepare(
      'UPDATE visits SET ended_at_ms = ended_at_ms + 60000 WHERE reader_id = ? AND visit_id = ?',
    ).run(v.readerId, v.visitId);
    const r = JSON.stringify(await runExecuted(a, whole, clock));
    expect(a.lastExecutedFrom).toBe('sql');
    expect(r).toBe(await check(db, whole));
    ro.close();
  });

  it('the marking triggers never fail a write (visits without times, moved, erased)', () => {
    const ins = db.prepare(
      `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms,
         start_seq, ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq, updated_at_ms)
       VALUES ('rd-x', 'x1', NULL, 'card-x', NULL, NULL, 'open', NULL, NULL, NULL, NULL, NULL, 'synced', '[]', NULL, 0)`,
    );
    expect(() => ins.run()).not.toThrow();
    expect(() =>
      db.prepare("UPDATE visits SET started_at_ms = 1774000000000 WHERE visit_id = 'x1'").run(),
    ).not.toThrow();
    expect(() =>
      db.prepare("UPDATE visits SET started_at_ms = NULL WHERE visit_id = 'x1'").run(),
    ).not.toThrow();
    expect(() => db.prepare("DELETE FROM visits WHERE visit_id = 'x1'").run()).not.toThrow();
    // The visit store's upsert (a start, then its stop on a day already marked): inside a trigger the
    // outer ON CONFLICT decides, so a mark must never rely on INSERT OR IGNORE.
    const upsert = db.prepare(
      `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms,
         start_seq, ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq, updated_at_ms)
       VALUES ('rd-x', @id, 'c1', 'card-x', 's1-0', NULL, @state, 1774000000000, 1, @end, 2, NULL, 'synced', '[]', NULL, 0)
       ON CONFLICT (reader_id, visit_id) DO UPDATE SET state = excluded.state, ended_at_ms = excluded.ended_at_ms`,
    );
    for (const id of ['u1', 'u2'])
      for (const [state, end] of [
        ['open', null],
        ['closed', 1774000600000],
      ] as const)
        expect(() => upsert.run({ id, state, end })).not.toThrow();
    expect(db.prepare('SELECT count(*) FROM report_dirty WHERE utc_day = 20532').pluck().get()).toBe(1);
  });
});
