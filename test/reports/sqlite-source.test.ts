/**
 * The SQLite report source over a real gateway database file gives the same executed visits, and so the
 * same figures, as the in-memory source of the fixture municipality.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyMigrations, openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { secureCardMigrations } from '../../gateway/src/store/sqlite/secure-cards.js';
import { tablesOf } from '../../gateway/src/reports/export.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import { applyCorrections, MemoryReportSource } from '../../gateway/src/reports/memory-source.js';
import { runContinuity, runExecuted, runQuality } from '../../gateway/src/reports/run.js';
import { collect, type ReportSource } from '../../gateway/src/reports/source.js';
import { SqliteReportSource } from '../../gateway/src/store/sqlite/reports/source.js';
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
  const db = openDatabase(join(dir, 'gateway.db'), [...sqliteMigrations, ...correctionMigrations]);
  writeVisits(db, corrected);
  const sql = new SqliteReportSource(db, { chunk: 7 }); // small chunks: paging is exercised
  const memory = new MemoryReportSource(f);

  it('reads the executed visits of a window exactly as the in-memory source has them', async () => {
    const w = clock.window(MONDAY, TO);
    const key = (v: { readerId: string; visitId: string }) => `${v.readerId}/${v.visitId}`;
    const sort = <T extends { readerId: string; visitId: string }>(xs: T[]) =>
      xs.sort((a, b) => (key(a) < key(b) ? -1 : 1));
    const fromSql = sort(await collect(sql.executed(w)));
    expect(fromSql).toHaveLength(195); // 193 that count and 2 withdrawn taps
    expect(fromSql.filter((v) => v.withdrawn === true)).toHaveLength(2);
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
    expect(r.quality.total).toMatchObject({
      visits: 193,
      corrected: 1,
      lateDelivered: 1,
      unknownCard: 1,
      withdrawn: 2,
    });
  });
});

describe('tap assurance in the data quality (secure card vs UID only)', () => {
  const f = buildFixture(MONDAY);
  const db = openDatabase(join(dir, 'assurance.db'), [...sqliteMigrations, ...correctionMigrations]);
  writeVisits(db, applyCorrections(f.visits, f.corrections));
  const areaOf = (clientRef: string | null) =>
    f.registries.clients.find((c) => c.clientRef === clientRef)?.areaId;
  const readers = [...new Set(f.visits.filter((v) => areaOf(v.clientRef)).map((v) => v.readerId))].sort();
  const [r1, r2] = readers as [string, string];

  it('says nothing is recorded when the gateway does not check secure cards', async () => {
    const q = await runQuality(new SqliteReportSource(db), { fromDate: MONDAY, toDate: TO }, clock);
    expect(q.quality.assurance).toEqual({
      recorded: false,
      total: { taps: 0, secure: 0, uidOnly: 0, shareSecure: null, shareUidOnly: null },
      byArea: [],
      byReader: [],
    });
  });

  it('counts each reader’s taps by assurance level in the window, per reader, area and in total', async () => {
    applyMigrations(db, secureCardMigrations);
    const tap = db.prepare(
      `INSERT INTO secure_taps (reader_id, event_id, seq, card_ref, assurance, verdict, code, counter, detail, at_ms)
       VALUES (?, ?, 0, 'card', ?, ?, 'x', NULL, '', ?)`,
    );
    const inside = clock.startOfDay('2026-03-25') + 9 * 3_600_000;
    let n = 0;
    const add = (reader: string, assurance: string, verdict: string, atMs = inside) =>
      tap.run(reader, `e${n++}`, assurance, verdict, atMs);
    for (let i = 0; i < 3; i++) add(r1, 'secure', 'accepted');
    add(r1, 'uid-only', 'flagged');
    add(r1, 'secure', 'accepted', clock.startOfDay('2026-04-06') + 3_600_000); // after the window
    add(r2, 'uid-only', 'accepted');
    add(r2, 'uid-only', 'accepted');
    add(r2, 'secure', 'refused'); // refused: not a registration
    for (let i = 0; i < 5; i++) add('rd-not-in-report', 'secure', 'accepted'); // no visits in the report
    const q = await runQuality(new SqliteReportSource(db), { fromDate: MONDAY, toDate: TO }, clock);
    const a = q.quality.assurance;
    expect(a.recorded).toBe(true);
    expect(a.total).toEqual({ taps: 6, secure: 3, uidOnly: 3, shareSecure: 0.5, shareUidOnly: 0.5 });
    expect(a.byReader).toEqual([
      { readerId: r1, taps: 4, secure: 3, uidOnly: 1, shareSecure: 0.75, shareUidOnly: 0.25 },
      { readerId: r2, taps: 2, secure: 0, uidOnly: 2, shareSecure: 0, shareUidOnly: 1 },
    ]);
    const byArea = Object.fromEntries(a.byArea.map((x) => [x.areaId, [x.secure, x.uidOnly]]));
    // No care tables in this database: the readers' clients have no known area.
    expect(byArea).toEqual({ '(unknown)': [3, 3] });
    // The export carries it as its own table.
    const t = tablesOf(q).find((x) => x.name === 'quality-assurance')!;
    expect(t.rows[0]).toMatchObject({ areaId: '(all)', taps: 6, shareSecure: 0.5 });
  });
});
