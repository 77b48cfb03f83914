/**
 * The SQLite report source over a real gateway database file gives the same executed visits, and so the
 * same figures, as the in-memory source of the fixture municipality.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { applyCorrections, MemoryReportSource } from '../../gateway/src/reports/memory-source.js';
import { runContinuity, runExecuted } from '../../gateway/src/reports/run.js';
import { collect, type ReportSource } from '../../gateway/src/reports/source.js';
import { SqliteReportSource } from '../../gateway/src/reports/sqlite-source.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import { buildFixture } from './fixture.js';
import { writeVisits } from './sqlite-fixture.js';

const MONDAY = '2026-03-23';
const TO = '2026-04-05';
const clock = new ReportClock();
const dir = mkdtempSync(join(tmpdir(), 'visittag-reports-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('SqliteReportSource', () => {
  const f = buildFixture(MONDAY);
  const corrected = applyCorrections(f.visits, f.corrections);
  const db = openDatabase(join(dir, 'gateway.db'), sqliteMigrations);
  writeVisits(db, corrected);
  const sql = new SqliteReportSource(db, { chunk: 7 }); // small chunks: paging is exercised
  const memory = new MemoryReportSource(f);

  it('reads the executed visits of a window exactly as the in-memory source has them', async () => {
    const w = clock.window(MONDAY, TO);
    const key = (v: { readerId: string; visitId: string }) => `${v.readerId}/${v.visitId}`;
    const sort = <T extends { readerId: string; visitId: string }>(xs: T[]) =>
      xs.sort((a, b) => (key(a) < key(b) ? -1 : 1));
    const fromSql = sort(await collect(sql.executed(w)));
    expect(fromSql).toHaveLength(193);
    expect(fromSql).toEqual(sort(await collect(memory.executed(w))));
    // A narrower window: only 2026-03-29 (the DST day).
    const day = clock.window('2026-03-29', '2026-03-29');
    expect((await collect(sql.executed(day))).map(key).sort()).toEqual(
      (await collect(memory.executed(day))).map(key).sort(),
    );
  });

  it('gives the same reports (registries and plan from the fixture, executed visits from SQLite)', async () => {
    const mixed: ReportSource = {
      registries: () => memory.registries(),
      planned: (w) => memory.planned(w),
      matches: (w) => memory.matches(w),
      executed: (w) => sql.executed(w),
    };
    const p = { fromDate: MONDAY, toDate: TO, period: 'week', groupBy: ['area'] } as const;
    expect(await runExecuted(mixed, p, clock)).toEqual(await runExecuted(memory, p, clock));
    expect(await runContinuity(mixed, { fromDate: MONDAY }, clock)).toEqual(
      await runContinuity(memory, { fromDate: MONDAY }, clock),
    );
  });

  it('without the care tables: empty registries and plan, executed time still reported', async () => {
    const r = await runExecuted(sql, { fromDate: MONDAY, toDate: TO, period: 'range', groupBy: [] }, clock);
    expect(r.total).toMatchObject({
      plannedVisits: 0,
      executedVisits: 180,
      executedMinutes: 4785,
      unplanned: 180,
    });
    expect(r.quality.total).toMatchObject({ visits: 193, corrected: 1, lateDelivered: 1, unknownCard: 1 });
  });
});
