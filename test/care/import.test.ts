import { afterEach, describe, expect, it } from 'vitest';
import { decodeCsvBytes } from '../../gateway/src/care/csv.js';
import { parsePlanCsv } from '../../gateway/src/care/import.js';
import { careFixture, type CareFixture } from './helpers.js';

const ctx = { areaId: 'north', fromDate: '2026-03-28', toDate: '2026-03-30', timeZone: 'Europe/Stockholm' };

const SWEDISH = [
  'Besöks-id;Brukare;Datum;Starttid;Planerad tid;Insatser;Dubbelbemanning;Personal',
  'b-1;k-101;2026-03-29;07:30;22,5;HYG:15|MED:7,5;nej;p-7',
  'b-2;k-101;2026-03-29;12:00;30;MAT:30;ja;p-7|p-9',
  'b-3;k-102;;2026-03-29 21:15;10;TILLSYN;;',
].join('\r\n');

const ENGLISH = [
  'client_ref,date,start,planned_minutes,service_codes,staff_count',
  'k-101,2026-03-29,07:30,"22,5",HYG:15|MED:7.5,1',
  'k-101,2026-03-29,12:00,30,MAT:30,2',
  'k-102,,2026-03-29 21:15,10,TILLSYN,',
].join('\n');

describe('plan CSV formats', () => {
  const encodings: Array<[string, Buffer]> = [
    [
      'UTF-8 with BOM, semicolons, CRLF',
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(SWEDISH, 'utf8')]),
    ],
    ['UTF-8 without BOM, semicolons', Buffer.from(SWEDISH, 'utf8')],
    ['Windows-1252 from Excel, semicolons', Buffer.from(SWEDISH, 'latin1')],
    ['UTF-8, commas, decimal comma quoted', Buffer.from(ENGLISH, 'utf8')],
    [
      'UTF-8, tabs',
      Buffer.from(ENGLISH.replace('"22,5"', '22,5').replace(/,/g, '\t').replace('22\t5', '22,5'), 'utf8'),
    ],
  ];
  for (const [name, bytes] of encodings) {
    it(`reads ${name}`, () => {
      const { text } = decodeCsvBytes(bytes);
      const r = parsePlanCsv(text, ctx);
      expect(r.errors).toEqual([]);
      expect(r.visits).toHaveLength(3);
      const [a, b, c] = r.visits;
      expect(a).toMatchObject({
        clientRef: 'k-101',
        localDate: '2026-03-29',
        localStart: '07:30',
        plannedMinutes: 22.5,
      });
      expect(a!.startMs).toBe(Date.parse('2026-03-29T05:30:00Z')); // CEST, the DST change day
      expect(a!.serviceCodes).toEqual([
        { code: 'HYG', standardMinutes: 15, grantedMinutes: null },
        { code: 'MED', standardMinutes: 7.5, grantedMinutes: null },
      ]);
      expect(b!.staffCount).toBe(2);
      expect(c).toMatchObject({ clientRef: 'k-102', localStart: '21:15', staffCount: 1 });
    });
  }

  it('detects Windows-1252 (å is 0xE5) and UTF-8', () => {
    expect(decodeCsvBytes(Buffer.from('Brukare;Besök', 'latin1'))).toEqual({
      text: 'Brukare;Besök',
      encoding: 'windows-1252',
    });
    expect(decodeCsvBytes(Buffer.from('Brukare;Besök', 'utf8')).encoding).toBe('utf-8');
  });

  it('reports every bad row with its line and a reason that says the fix', () => {
    const text = [
      '# exported 2026-03-27',
      'client_ref;date;start;planned_minutes;staff_count',
      'k-1;2026-03-29;07:30;20;1',
      'k-2;2026-03-29;25:00;20;1',
      'k-3;2026-02-30;07:30;20;1',
      'k-4;2026-04-02;07:30;20;1',
      'Anna Svensson;2026-03-29;07:30;20;1',
      'k-6;2026-03-29;07:30;tjugo;1',
      'k-7;2026-03-29;07:30;20;3',
      'k-8;2026-03-29;07:30;20',
    ].join('\n');
    const r = parsePlanCsv(text, ctx);
    expect(r.errors.map((e) => e.line)).toEqual([4, 5, 6, 7, 8, 9, 10]);
    const reasons = r.errors.map((e) => e.reason).join('\n');
    expect(reasons).toMatch(/25:00 is not a time of day/);
    expect(reasons).toMatch(/2026-02-30.*YYYY-MM-DD/);
    expect(reasons).toMatch(/outside the import range 2026-03-28..2026-03-30: widen --from\/--to/);
    expect(reasons).toMatch(/clientRef: use a pseudonymous id/);
    expect(reasons).toMatch(/planned minutes "tjugo" must be a number/);
    expect(reasons).toMatch(/staff count "3" must be 1 or 2/);
    expect(reasons).toMatch(/4 fields where the header has 5: check the separator/);
  });

  it('refuses unknown columns and a header without the required ones', () => {
    expect(parsePlanCsv('client_ref;start;foo\n', ctx).errors[0]!.reason).toMatch(
      /unknown column\(s\) "foo"/,
    );
    expect(parsePlanCsv('client_ref;date\nk;2026-03-29\n', ctx).errors[0]!.reason).toMatch(
      /lacks start, plannedMinutes/,
    );
  });

  it('derives stable ids when the file has none, distinct for two visits at the same time', () => {
    const t = 'client_ref;date;start;planned_minutes\nk-1;2026-03-29;07:30;20\nk-1;2026-03-29;07:30;20\n';
    const a = parsePlanCsv(t, ctx).visits.map((v) => v.plannedVisitId);
    expect(a[0]).not.toBe(a[1]);
    expect(parsePlanCsv(t, ctx).visits.map((v) => v.plannedVisitId)).toEqual(a);
  });
});

describe('plan import into the store', () => {
  let f: CareFixture | undefined;
  afterEach(() => f?.close());

  const rows = (client: string, date: string, times: string[]) =>
    times.map((t) => ({ clientRef: client, date, start: t, plannedMinutes: 20 }));

  it('a file with one bad row imports nothing and reports the row; a dry run writes nothing', async () => {
    f = careFixture(Date.parse('2026-03-20T00:00:00Z'));
    const csv = 'client_ref;date;start;planned_minutes\nk-1;2026-03-29;07:30;20\nk-2;2026-03-29;7:3;20\n';
    const bad = await f.plan.importPlan({
      areaId: 'north',
      fromDate: '2026-03-29',
      toDate: '2026-03-29',
      dryRun: false,
      actor: 't',
      source: 'x.csv',
      csvText: csv,
    });
    expect(bad.ok).toBe(false);
    expect(bad.errors).toEqual([{ line: 3, reason: expect.stringMatching(/not a time/) as unknown }]);
    expect(await f.plan.store.planVersions()).toEqual([]);
    const dry = await f.plan.importPlan({
      areaId: 'north',
      fromDate: '2026-03-29',
      toDate: '2026-03-29',
      dryRun: true,
      actor: 't',
      source: 'x.csv',
      csvText: csv.split('\n').slice(0, 2).join('\n'),
    });
    expect(dry).toMatchObject({ ok: true, dryRun: true, rows: 1, planVersionId: null });
    expect(await f.plan.store.planVersions()).toEqual([]);
  });

  it('a re-import replaces exactly that area and date range, and keeps the old version', async () => {
    f = careFixture(Date.parse('2026-03-20T00:00:00Z'));
    const imp = (areaId: string, from: string, to: string, r: unknown[]) =>
      f!.plan.importPlan({
        areaId,
        fromDate: from,
        toDate: to,
        dryRun: false,
        actor: 'coord',
        source: 'api',
        rows: r,
      });
    const v1 = await imp('north', '2026-03-28', '2026-03-31', [
      ...rows('k-1', '2026-03-28', ['08:00']),
      ...rows('k-1', '2026-03-29', ['08:00', '12:00']),
      ...rows('k-1', '2026-03-31', ['08:00']),
    ]);
    const south = await imp('south', '2026-03-29', '2026-03-29', rows('k-9', '2026-03-29', ['09:00']));
    expect(v1.ok && south.ok).toBe(true);
    // Change only 2026-03-29..30 of north.
    const v2 = await imp('north', '2026-03-29', '2026-03-30', rows('k-1', '2026-03-29', ['09:00']));
    expect(v2).toMatchObject({ ok: true, replaced: 2 });
    const all = await f.plan.store.activePlans({ fromMs: 0, toMs: Date.parse('2027-01-01T00:00:00Z') });
    expect(all.map((p) => `${p.areaId} ${p.localDate} ${p.localStart} v${p.planVersionId}`).sort()).toEqual([
      'north 2026-03-28 08:00 v1',
      'north 2026-03-29 09:00 v3',
      'north 2026-03-31 08:00 v1',
      'south 2026-03-29 09:00 v2',
    ]);
    const versions = await f.plan.store.planVersions('north');
    expect(versions.map((v) => [v.planVersionId, v.visitCount, v.supersedes])).toEqual([
      [1, 4, []],
      [3, 1, [1]],
    ]);
    // The old version is kept as it was.
    expect((await f.plan.store.plansOfVersion(1)).map((p) => `${p.localDate} ${p.localStart}`)).toEqual([
      '2026-03-28 08:00',
      '2026-03-29 08:00',
      '2026-03-29 12:00',
      '2026-03-31 08:00',
    ]);
  });

  it('refuses an id that is already planned in another area, importing nothing', async () => {
    f = careFixture(Date.parse('2026-03-20T00:00:00Z'));
    const one = [
      { plannedVisitId: 'pv-1', clientRef: 'k-1', date: '2026-03-29', start: '08:00', plannedMinutes: 20 },
    ];
    await f.plan.importPlan({
      areaId: 'north',
      fromDate: '2026-03-29',
      toDate: '2026-03-29',
      dryRun: false,
      actor: 't',
      source: 'api',
      rows: one,
    });
    const r = await f.plan.importPlan({
      areaId: 'south',
      fromDate: '2026-03-29',
      toDate: '2026-03-29',
      dryRun: false,
      actor: 't',
      source: 'api',
      rows: one,
    });
    expect(r.ok).toBe(false);
    expect(r.errors[0]!.reason).toMatch(/pv-1 is in the plan of area north on 2026-03-29/);
    expect(await f.plan.store.planVersions('south')).toEqual([]);
  });

  it("a refused re-import leaves the area's current plan active and adds no version", async () => {
    f = careFixture(Date.parse('2026-03-20T00:00:00Z'));
    const base = {
      dryRun: false,
      actor: 't',
      source: 'api' as const,
      fromDate: '2026-03-29',
      toDate: '2026-03-29',
    };
    const row = (id: string, client: string, start: string) => ({
      plannedVisitId: id,
      clientRef: client,
      date: '2026-03-29',
      start,
      plannedMinutes: 20,
    });
    await f.plan.importPlan({ ...base, areaId: 'north', rows: [row('pv-1', 'k-1', '08:00')] });
    await f.plan.importPlan({ ...base, areaId: 'south', rows: [row('pv-s1', 'k-2', '09:00')] });
    const r = await f.plan.importPlan({
      ...base,
      areaId: 'south',
      rows: [row('pv-s2', 'k-2', '10:00'), row('pv-1', 'k-2', '11:00'), row('pv-s3', 'k-2', '12:00')],
    });
    expect(r.ok).toBe(false);
    expect(r.errors.map((e) => e.reason)).toEqual([
      expect.stringMatching(/pv-1 is in the plan of area north/),
    ]);
    expect((await f.plan.store.planVersions('south')).length).toBe(1);
    const active = await f.plan.store.activePlans({
      fromMs: Date.parse('2026-03-28T00:00:00Z'),
      toMs: Date.parse('2026-03-30T00:00:00Z'),
    });
    expect(active.map((p) => p.plannedVisitId).sort()).toEqual(['pv-1', 'pv-s1']);
  });
});
