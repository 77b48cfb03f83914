/**
 * Continuity from the cells kept at write time (sqlite-cells.ts, per local day and client) is
 * byte-identical to the measure aggregated on the fly and to the in-memory one: on the fixture (its
 * hand-computed figures: the DST weekend, double staffing, a substitute, home nursing, an alarm response,
 * withdrawn taps) and a seeded municipality across the spring DST change, and it stays so after every kind
 * of write that changes the measure: a card assigned later, a visit moved out of the counted hours or into
 * the DST night, a withdrawn tap, an erased visit, a visit that arrived days late, a visit re-linked to a
 * safety-alarm response, that response re-planned as home care, a double-staffed pair made single-staffed,
 * a staff member registered as home nursing (the registry: the cells are rebuilt) and a named contact
 * changed (applied at report time). Each write changes the measure's figures (not only its data quality),
 * so cells left stale fail the comparison. Other counted hours or late-delivery thresholds, a period whose
 * edge cuts a span, and a scope over a pair of two clients are computed on the fly (still identical).
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { careMigrations } from '../../gateway/src/care/sqlite/migrations.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import type { ContinuityParams, ContinuityReport } from '../../gateway/src/reports/continuity.js';
import { applyCorrections } from '../../gateway/src/reports/memory-source.js';
import { reportMigrations } from '../../gateway/src/store/sqlite/reports/migrations.js';
import { runContinuity, runMonthly } from '../../gateway/src/reports/run.js';
import { scopedSource } from '../../gateway/src/reports/scoped-source.js';
import { SqliteReportSource } from '../../gateway/src/store/sqlite/reports/source.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import { openDatabase, type Db } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { buildFixture } from './fixture.js';
import { continuityMunicipality, inMemory, writeCare, writeVisits } from './sqlite-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'visittag-reports-cont-cells-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const clock = new ReportClock();
const MIGRATIONS = [...sqliteMigrations, ...careMigrations, ...correctionMigrations, ...reportMigrations];

/** The measure from the kept cells, on the fly and in memory: all three byte-identical. */
async function check(
  db: Db,
  p: ContinuityParams,
  from: 'kept cells' | 'sql' = 'kept cells',
  scope?: { areas: string[]; provider: string | null },
): Promise<ContinuityReport> {
  const kept = new SqliteReportSource(db);
  const sql = new SqliteReportSource(db, { cells: false });
  const src = scope ? scopedSource(kept, scope) : kept;
  const a = JSON.stringify(await runContinuity(src, p, clock));
  expect(kept.lastContinuityFrom).toBe(from);
  const b = JSON.stringify(await runContinuity(scope ? scopedSource(sql, scope) : sql, p, clock));
  expect(sql.lastContinuityFrom).toBe('sql');
  const c = JSON.stringify(await runContinuity(inMemory(scope ? scopedSource(sql, scope) : sql), p, clock));
  expect(b).toBe(c);
  expect(a).toBe(c);
  return JSON.parse(a) as ContinuityReport;
}

describe('the fixture from kept cells', () => {
  const MONDAY = '2026-03-23';
  const f = buildFixture(MONDAY);
  const visits = applyCorrections(f.visits, f.corrections);
  const db = openDatabase(join(dir, 'fixture.db'), MIGRATIONS);
  writeVisits(db, visits);
  writeCare(db, f, visits, clock);

  it('its hand-computed figures; other counted hours and late thresholds on the fly; 7 days', async () => {
    const r = await check(db, { fromDate: MONDAY });
    // reports.test.ts works these out by hand.
    expect(r.rows.map((x) => [x.clientRef, x.staff, x.staffWithoutDoubleStaffing])).toEqual([
      ['c1', 3, 3],
      ['c2', 4, 3],
      ['c3', 3, 3],
    ]);
    expect([r.mean, r.median, r.careContact.share]).toEqual([3.3, 3, 0.4909]);
    expect(r.quality.total).toMatchObject({ visits: 193, withdrawn: 2 });
    await check(db, { fromDate: MONDAY, countFrom: '08:10', countTo: '17:05' }, 'sql');
    await check(db, { fromDate: MONDAY, lateDeliveryHours: 1.5 }, 'sql');
    await check(db, { fromDate: MONDAY, days: 7 });
    await check(db, { fromDate: '2026-03-30', days: 7 });
    for (const scope of [
      { areas: ['A'], provider: null },
      { areas: ['A', 'B'], provider: 'P2' },
    ])
      await check(db, { fromDate: MONDAY }, 'kept cells', scope);
  });
});

describe('a seeded municipality over the spring DST change, kept current through writes', () => {
  const m = continuityMunicipality();
  const db = openDatabase(join(dir, 'seeded.db'), MIGRATIONS);
  writeVisits(db, m.visits);
  writeCare(db, m, m.visits, clock);
  const PERIOD = { fromDate: '2026-03-23' };

  it('three periods (the DST weekend inside), the monthly follow-up, scopes', async () => {
    for (const fromDate of ['2026-03-09', '2026-03-16', '2026-03-23']) {
      const r = await check(db, { fromDate });
      expect(r.clients).toBeGreaterThan(0);
    }
    const r = await check(db, PERIOD);
    expect(r.breakdown.clientsWithDoubleStaffing).toBeGreaterThan(0);
    expect(r.quality.total).toMatchObject({ withdrawn: expect.any(Number) as number });
    expect(r.quality.total.unknownCard).toBeGreaterThan(0);
    // Pairs naming two clients (c1 and another): a scope could split them, so scopes go on the fly.
    await check(db, PERIOD, 'sql', { areas: ['area-1', 'area-2'], provider: null });
    const kept = new SqliteReportSource(db);
    const monthly = JSON.stringify(
      await runMonthly(kept, { fromMonth: '2026-03', toMonth: '2026-04' }, clock),
    );
    expect(kept.lastContinuityFrom).toBe('kept cells');
    const mem = await runMonthly(inMemory(kept), { fromMonth: '2026-03', toMonth: '2026-04' }, clock);
    expect(monthly).toBe(JSON.stringify(mem));
  });

  it('every write that changes the measure changes the report from the cells exactly as on the fly', async () => {
    const start = clock.startOfDay('2026-03-25');
    const end = clock.startOfDay('2026-04-02');
    // A client in the measure and one of its visits alone, counted (07-22), by a home-care staff member.
    const first = await check(db, PERIOD);
    const inMeasure = new Set(first.rows.map((r) => r.clientRef));
    // One visit of each client in the measure, so no write undoes another's effect.
    const picks = [
      ...new Map(
        m.visits
          .filter(
            (x) =>
              x.groupId === null &&
              x.withdrawn !== true &&
              x.staffRef !== null &&
              x.staffRef !== 'nurse' &&
              x.clientRef !== null &&
              inMeasure.has(x.clientRef) &&
              x.startedAtMs !== null &&
              x.startedAtMs >= start &&
              x.startedAtMs < end &&
              clock.local(x.startedAtMs).minuteOfDay >= 8 * 60 &&
              clock.local(x.startedAtMs).minuteOfDay < 21 * 60,
          )
          .map((x) => [x.clientRef, x] as const),
      ).values(),
    ];
    expect(picks.length).toBeGreaterThanOrEqual(10);
    const pick = (n: number) => picks[n]!;
    const setVisit = (v: { readerId: string; visitId: string }, sql: string, ...args: unknown[]) =>
      db
        .prepare(`UPDATE visits SET ${sql} WHERE reader_id = ? AND visit_id = ?`)
        .run(...args, v.readerId, v.visitId);
    const reg = (table: string, key: string, id: string, change: (j: Record<string, unknown>) => void) => {
      const j = JSON.parse(
        db.prepare(`SELECT json FROM ${table} WHERE ${key} = ?`).pluck().get(id) as string,
      ) as Record<string, unknown>;
      change(j);
      db.prepare(`UPDATE ${table} SET json = ? WHERE ${key} = ?`).run(JSON.stringify(j), id);
    };
    const keyOf = (v: { readerId: string; visitId: string }) => `${v.readerId}/${v.visitId}`;
    const alarm = 'larm-added';
    const pair = m.visits.find(
      (x) =>
        x.groupId !== null &&
        x.groupId !== x.visitId &&
        x.withdrawn !== true &&
        x.clientRef !== null &&
        inMeasure.has(x.clientRef) &&
        x.startedAtMs !== null &&
        x.startedAtMs >= start &&
        x.startedAtMs < end &&
        m.visits.some((y) => y.visitId === x.groupId && y.clientRef === x.clientRef && y.withdrawn !== true),
    )!;
    const partner = m.visits.find((y) => y.visitId === pair.groupId)!;
    const writes: Array<[string, () => void]> = [
      ["a visit's card unknown (its staff cleared)", () => setVisit(pick(0), 'staff_ref = NULL')],
      ['the card assigned later, to a substitute', () => setVisit(pick(0), "staff_ref = 'sub-1'")],
      [
        'a visit moved before 07:00 (out of the counted hours)',
        () => {
          const t = clock.startOfDay(clock.localDate(pick(1).startedAtMs!)) + 6 * 3_600_000;
          setVisit(pick(1), 'started_at_ms = ?, ended_at_ms = ?', t, t + 20 * 60_000);
        },
      ],
      [
        'a visit moved into the DST night (02:30 on 2026-03-29 does not exist: 03:30)',
        () => {
          const t = clock.startOfDay('2026-03-29') + 90 * 60_000;
          setVisit(pick(2), 'started_at_ms = ?, ended_at_ms = ?', t, t + 20 * 60_000);
        },
      ],
      [
        'a withdrawn tap',
        () =>
          db
            .prepare(
              `INSERT INTO visit_corrections (kind, reader_id, visit_id, reason_code, note, actor, request_id, at_ms,
                 before_json, after_json) VALUES ('withdrawn', ?, ?, 'tap-by-mistake', NULL, 't', NULL, 0, '{}', '{}')`,
            )
            .run(pick(3).readerId, pick(3).visitId),
      ],
      [
        'an erased visit',
        () =>
          db
            .prepare('DELETE FROM visits WHERE reader_id = ? AND visit_id = ?')
            .run(pick(4).readerId, pick(4).visitId),
      ],
      [
        'a visit that arrived days late, by a staff member the client had not met',
        () => {
          const v = pick(5);
          const t = v.startedAtMs! + 30 * 60_000;
          writeVisits(db, [
            {
              ...v,
              readerId: 'rd-late',
              visitId: 'late-1',
              staffRef: 'sub-2',
              cardRef: 'card-sub-2',
              startedAtMs: t,
              endedAtMs: t + 25 * 60_000,
              updatedAtMs: t,
              receivedAtMs: t + 4 * 86_400_000,
              corrected: false,
            },
          ]);
        },
      ],
      [
        'a safety-alarm response planned at a visit and the visit re-linked to it (no longer home care)',
        () => {
          const v = pick(6);
          db.prepare(
            `INSERT INTO care_planned_visits (plan_version_id, planned_visit_id, area_id, client_ref, local_date, local_start,
               start_ms, planned_minutes, service_codes_json, staff_count, staff_refs_json, active)
             VALUES (2, ?, 'area-0', ?, ?, '00:00', ?, 10, '[{"code":"LARM","standardMinutes":null,"grantedMinutes":null}]', 1, '[]', 1)`,
          ).run(alarm, v.clientRef, clock.localDate(v.startedAtMs!), v.startedAtMs! - 5 * 60_000);
          db.prepare(
            'INSERT OR REPLACE INTO care_visit_matches (executed_key, client_ref, time_ms, local_date, planned_visit_id) VALUES (?, ?, ?, ?, ?)',
          ).run(keyOf(v), v.clientRef, v.startedAtMs, clock.localDate(v.startedAtMs!), alarm);
        },
      ],
      [
        'that response re-planned as personal care (its visit home care again)',
        () =>
          db
            .prepare(
              `UPDATE care_planned_visits SET service_codes_json = '[{"code":"PC","standardMinutes":20,"grantedMinutes":20}]' WHERE planned_visit_id = ?`,
            )
            .run(alarm),
      ],
      [
        "a pair's second visit by the first's staff member (no longer double-staffed)",
        () => setVisit(pair, 'staff_ref = ?, card_ref = ?', partner.staffRef, partner.cardRef),
      ],
      [
        'a staff member registered as home nursing (the registry: not counted any more)',
        () => reg('care_staff', 'staff_ref', pick(7).staffRef!, (j) => (j.category = 'licensed-health')),
      ],
      [
        "a client's named contact changed (read at report time)",
        () =>
          reg(
            'care_clients',
            'client_ref',
            pick(8).clientRef!,
            (j) => (j.careContactStaffRef = pick(8).staffRef),
          ),
      ],
    ];
    const measure = (r: ContinuityReport) => JSON.stringify({ ...r, quality: null });
    let before = first;
    for (const [what, write] of writes) {
      write();
      const after = await check(db, PERIOD);
      expect(measure(after), what).not.toBe(measure(before));
      before = after;
    }
    // a correction changes data quality only
    db.prepare(
      "INSERT INTO visit_audit (reader_id, visit_id, action, actor, reason, at_ms) VALUES (?, ?, 'close', 't', 'x', 0)",
    ).run(pick(9).readerId, pick(9).visitId);
    const corrected = await check(db, PERIOD);
    expect(corrected.quality.total.corrected).toBe(before.quality.total.corrected + 1);
    await check(db, { fromDate: '2026-03-16' });
    await check(db, { fromDate: '2026-03-30', days: 7 });
  });

  it('a read-only connection uses the cells only when no write is waiting to be recomputed', async () => {
    await check(db, PERIOD); // current now
    const ro = new Database(join(dir, 'seeded.db'), { readonly: true });
    const a = new SqliteReportSource(ro);
    await runContinuity(a, PERIOD, clock);
    expect(a.lastContinuityFrom).toBe('kept cells');
    db.prepare("UPDATE visits SET staff_ref = 'sub-3' WHERE visit_id = 'v700'").run();
    const r = JSON.stringify(await runContinuity(a, PERIOD, clock));
    expect(a.lastContinuityFrom).toBe('sql');
    expect(r).toBe(JSON.stringify(await check(db, PERIOD)));
    ro.close();
  });
});

describe('a database whose executed cells were kept before continuity had cells (the upgrade)', () => {
  it('the next report on a fresh connection builds continuity cells for every day', async () => {
    const m = continuityMunicipality();
    const path = join(dir, 'upgrade.db');
    const db = openDatabase(path, MIGRATIONS);
    writeVisits(db, m.visits);
    writeCare(db, m, m.visits, clock);
    await check(db, { fromDate: '2026-03-16' });
    // As after reports-005 on a file with executed cells: no continuity cells, no inputs recorded.
    db.exec(
      "DELETE FROM report_cont_cells; DELETE FROM report_cont_quality; DELETE FROM report_cell_meta WHERE key = 'continuity'",
    );
    db.close();
    const again = openDatabase(path, MIGRATIONS);
    await check(again, { fromDate: '2026-03-16' });
    expect(again.prepare('SELECT count(*) FROM report_cont_cells').pluck().get()).toBeGreaterThan(500);
    again.close();
  });
});

describe('spans: an occasion across the period edge', () => {
  it('a double-staffed pair across midnight into the period computes on the fly; inside, from cells', async () => {
    const MONDAY = '2026-03-23';
    const f = buildFixture(MONDAY);
    const visits = applyCorrections(f.visits, f.corrections);
    const sun = clock.startOfDay(MONDAY);
    const base = visits.find((v) => v.groupId === null && v.clientRef === 'c1' && v.staffRef !== null)!;
    visits.push(
      {
        ...base,
        visitId: 'mid-a',
        groupId: 'mid-a',
        startedAtMs: sun - 2 * 60_000,
        endedAtMs: sun + 30 * 60_000,
      },
      {
        ...base,
        visitId: 'mid-b',
        groupId: 'mid-a',
        staffRef: 'sub-9',
        cardRef: 'card-sub-9',
        startedAtMs: null,
        endedAtMs: sun + 31 * 60_000,
      },
    );
    const db = openDatabase(join(dir, 'spans.db'), MIGRATIONS);
    writeVisits(db, visits);
    writeCare(db, f, visits, clock);
    await check(db, { fromDate: MONDAY }, 'sql');
    await check(db, { fromDate: '2026-03-09' }, 'sql');
    await check(db, { fromDate: '2026-03-16', days: 21 });
    db.close();
  });
});
