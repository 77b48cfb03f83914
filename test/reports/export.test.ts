/** Exports of the fixture municipality's reports: JSON pages, CSV and XLSX read back with exceljs. */
import { describe, expect, it } from 'vitest';
import {
  jsonPage,
  readXlsx,
  tablesOf,
  toCsv,
  toXlsx,
  type AnyReport,
} from '../../gateway/src/reports/export.js';
import { MemoryReportSource } from '../../gateway/src/reports/memory-source.js';
import {
  runContinuity,
  runExecuted,
  runMonthly,
  runQuality,
  runStaffing,
} from '../../gateway/src/reports/run.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import { buildFixture } from './fixture.js';

const MONDAY = '2026-03-23';
const TO = '2026-04-05';
const clock = new ReportClock();
const f = buildFixture(MONDAY);
const source = new MemoryReportSource(f);

async function allReports(): Promise<AnyReport[]> {
  return [
    await runExecuted(
      source,
      { fromDate: MONDAY, toDate: TO, period: 'week', groupBy: ['area', 'client'] },
      clock,
    ),
    await runContinuity(source, { fromDate: MONDAY }, clock),
    await runMonthly(source, { fromMonth: '2026-03', toMonth: '2026-04', threshold: 3 }, clock),
    await runStaffing(source, { fromDate: MONDAY, toDate: TO }, clock),
    await runQuality(source, { fromDate: MONDAY, toDate: TO }, clock),
  ];
}

describe('report exports', () => {
  it('JSON pages the main table and keeps the rest whole', async () => {
    const r = await runExecuted(
      source,
      { fromDate: MONDAY, toDate: TO, period: 'day', groupBy: ['client'] },
      clock,
    );
    const all = tablesOf(r)[0]!.rows;
    expect(all.length).toBe(r.rows.length);
    const p1 = jsonPage(r, 0, 10);
    const p2 = jsonPage(r, 10, 10);
    expect(p1.page).toEqual({ offset: 0, limit: 10, total: all.length });
    expect([...(p1.rows as unknown[]), ...(p2.rows as unknown[])]).toEqual(all.slice(0, 20));
    expect(p1.total).toEqual(r.total);
    expect(p1.quality).toEqual(r.quality);
    // A page survives a JSON round trip unchanged.
    expect(JSON.parse(JSON.stringify(p2))).toEqual(p2);
  });

  it('CSV: Swedish headers, semicolons and decimal commas; English on request', async () => {
    const r = await runExecuted(
      source,
      { fromDate: MONDAY, toDate: TO, period: 'range', groupBy: ['area'] },
      clock,
    );
    const sv = toCsv(tablesOf(r)[0]!, 'sv').split('\r\n');
    expect(sv[0]).toMatch(
      /^Period;Brukare;Grupp;Område;Utförare;Insatskod;Planerade besök;Planerad tid \(min\);/,
    );
    expect(sv[1]).toContain(';A;');
    expect(sv[1]).toContain(';2740;2590;102;3013;3585;0;1,0996;'); // planned, granted, executed, ratio
    const en = toCsv(tablesOf(r)[0]!, 'en').split('\r\n');
    expect(en[0]).toMatch(/^Period,Client,Team,Area,Provider,Service code,Planned visits,Planned minutes,/);
    expect(en[1]).toContain(',2740,2590,102,3013,3585,0,1.0996,');
  });

  it('XLSX: every report read back by exceljs matches its JSON tables, headers in Swedish or English', async () => {
    for (const report of await allReports()) {
      for (const lang of ['sv', 'en'] as const) {
        const sheets = await readXlsx(await toXlsx(report, lang));
        const tables = tablesOf(report);
        expect(sheets.map((s) => s.name)).toEqual(tables.map((t) => t.name));
        for (const [i, t] of tables.entries()) {
          expect(sheets[i]!.header).toEqual(t.columns.map((c) => c[lang]));
          expect(sheets[i]!.rows).toEqual(t.rows.map((row) => t.columns.map((c) => row[c.key] ?? null)));
        }
      }
    }
    // The continuity workbook's first sheet holds the published figure.
    const c = await runContinuity(source, { fromDate: MONDAY }, clock);
    const [areas] = await readXlsx(await toXlsx(c, 'sv'));
    expect(areas!.header).toEqual(['Område', 'Brukare', 'Medelvärde', 'Median']);
    expect(areas!.rows[0]).toEqual(['(all)', 3, 3.3, 3]);
  });
});
