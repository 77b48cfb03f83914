/**
 * The report API over real HTTP on a real gateway, with the plan in the care tables through the real care
 * import (registry upsert + plan import, which runs the real matching over the visits in the database):
 * figures by hand, CSV and XLSX, roles (technicians refused), OpenAPI, and the SQLite source reading the
 * care tables the import wrote.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/index.js';
import type { ReportVisit } from '../../gateway/src/reports/source.js';
import { collect } from '../../gateway/src/reports/source.js';
import { readXlsx } from '../../gateway/src/reports/export.js';
import { SqliteReportSource } from '../../gateway/src/store/sqlite/reports/source.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import { ADMIN_TOKEN, dbOf, startGateway, tempDir } from '../gateway/helpers.js';
import { writeVisits } from './sqlite-fixture.js';

const DAY = '2026-11-10'; // a Tuesday, in the past: the plan's outcome is final
const clock = new ReportClock();
const at = (hhmm: string) => clock.startOfDay(DAY) + (+hhmm.slice(0, 2) * 60 + +hhmm.slice(3)) * 60_000;

let gw: Gateway;
let dataDir: string;
let cleanup: () => void;
let techToken: string;
let managerToken: string;

const visit = (visitId: string, staffRef: string, from: string, to: string): ReportVisit => ({
  readerId: 'rd-1',
  visitId,
  clientRef: 'cl-1',
  staffRef,
  cardRef: `card-${staffRef}`,
  groupId: null,
  state: 'closed',
  startedAtMs: at(from),
  endedAtMs: at(to),
  endReason: 'tap',
  timeQuality: 'synced',
  anomalies: [],
  corrected: false,
  updatedAtMs: at(to),
  receivedAtMs: at(to) + 1000,
});

async function get(path: string, token = ADMIN_TOKEN) {
  const res = await fetch(`${gw.adminUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    buf: Buffer.from(await res.arrayBuffer()),
  };
}
const json = (b: Buffer) => JSON.parse(b.toString('utf8')) as Record<string, unknown>;

beforeAll(async () => {
  const tmp = tempDir('vt-reports-http-');
  dataDir = tmp.dir;
  cleanup = tmp.cleanup;
  gw = await startGateway(tmp.dir);
  techToken = (await gw.access.service.createToken('test', { name: 't-tech', role: 'technician' })).token;
  managerToken = (await gw.access.service.createToken('test', { name: 't-um', role: 'unit-manager' })).token;
  // Executed visits in the gateway's own tables: 08:05-08:40 by st-1 (planned 08:00, 30 min), nothing at
  // 12:00 (planned 20 min: missed), an unplanned 15:00-15:10 by st-2.
  const w = dbOf(gw, 'write');
  writeVisits(w, [visit('v1', 'st-1', '08:05', '08:40'), visit('v2', 'st-2', '15:00', '15:10')]);
  w.close();
  // The real care import, through the admin API.
  const put = await fetch(`${gw.adminUrl}/api/plan/registry`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      providers: [{ providerId: 'p-1', name: 'Kommunen', kind: 'municipal' }],
      areas: [{ areaId: 'area-1', name: 'Norr', lateAfterMinutes: null, missedAfterMinutes: null }],
      clients: [
        {
          clientRef: 'cl-1',
          areaId: 'area-1',
          teamId: null,
          providerId: 'p-1',
          birthYear: 1940,
          kkikEligible: null,
          decisionTypes: ['personal-care'],
          careContactStaffRef: null,
          palliative: false,
          activeFrom: '2020-01-01',
          activeTo: null,
          absences: [],
        },
      ],
      staff: ['st-1', 'st-2'].map((staffRef) => ({
        staffRef,
        teamId: null,
        areaId: 'area-1',
        category: 'care',
        activeFrom: '2020-01-01',
        activeTo: null,
      })),
    }),
  });
  expect(put.status).toBe(200);
  const imp = await fetch(`${gw.adminUrl}/api/plan/import`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      areaId: 'area-1',
      fromDate: DAY,
      toDate: DAY,
      visits: [
        {
          plannedVisitId: 'pv-1',
          clientRef: 'cl-1',
          date: DAY,
          start: '08:00',
          plannedMinutes: 30,
          serviceCodes: [{ code: 'PC', standardMinutes: 30, grantedMinutes: 25 }],
        },
        { plannedVisitId: 'pv-2', clientRef: 'cl-1', date: DAY, start: '12:00', plannedMinutes: 20 },
      ],
    }),
  });
  expect(imp.status, await imp.clone().text()).toBe(200);
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  cleanup?.();
});

const EXECUTED = `/api/reports/executed?from=${DAY}&to=${DAY}&period=day&by=area`;

describe('report API over HTTP, plan from the real care import', () => {
  it('executed vs planned: every figure by hand', async () => {
    const r = await get(EXECUTED);
    expect(r.status).toBe(200);
    const body = json(r.buf) as { total: Record<string, unknown>; rows: unknown[]; page: unknown };
    // planned 30 + 20 = 50 min; executed 35 (08:05-08:40) + 10 (unplanned) = 45; ratio 0.9; granted 25.
    expect(body.total).toMatchObject({
      plannedVisits: 2,
      plannedMinutes: 50,
      grantedMinutes: 25,
      executedVisits: 2,
      executedMinutes: 45,
      matched: 1,
      missed: 1,
      missedNoReason: 1,
      unplanned: 1,
      ratio: 0.9,
    });
    expect(body.rows).toEqual([expect.objectContaining({ period: DAY, areaId: 'area-1', plannedVisits: 2 })]);
    expect(body.page).toEqual({ offset: 0, limit: 500, total: 1 });
  });

  it('CSV with Swedish headers and XLSX read back equal to the JSON', async () => {
    const csv = await get(`${EXECUTED}&format=csv`);
    expect(csv.type).toMatch(/^text\/csv/);
    const [head, line] = csv.buf.toString('utf8').split('\r\n');
    expect(head).toContain('Planerad tid (min)');
    expect(line).toContain('0,9'); // decimal comma
    const x = await get(`${EXECUTED}&format=xlsx&lang=en`);
    expect(x.type).toMatch(/spreadsheetml/);
    const sheets = await readXlsx(x.buf);
    const main = sheets[0]!;
    const rowOf = Object.fromEntries(main.header.map((h, i) => [h, main.rows[0]![i]]));
    expect(rowOf).toMatchObject({ 'Planned minutes': 50, 'Executed minutes': 45, 'Executed/planned': 0.9 });
  });

  it('roles: unit managers read reports (of their areas), technicians are refused', async () => {
    expect((await get(EXECUTED, techToken)).status).toBe(403);
    const um = await get(EXECUTED, managerToken);
    expect(um.status).toBe(200);
    // A token carries no areas: a scoped role without areas sees nothing (deny by default).
    expect((json(um.buf) as { total: { plannedVisits: number } }).total.plannedVisits).toBe(0);
  });

  it('bad queries answer 400 naming the parameter; the routes are in the OpenAPI document', async () => {
    const bad = await get(`/api/reports/executed?from=${DAY}&to=2026-11-01`);
    expect(bad.status).toBe(400);
    expect(json(bad.buf).error).toMatch(/before/);
    const notMonday = await get(`/api/reports/continuity?from=${DAY}`);
    expect(notMonday.status).toBe(400);
    expect(json(notMonday.buf).error).toMatch(/Monday/);
    const badBy = await get(`/api/reports/executed?from=${DAY}&to=${DAY}&by=colour`);
    expect(badBy.status).toBe(400);
    const doc = json((await get('/api/openapi.json')).buf) as { paths: Record<string, { get?: unknown }> };
    for (const p of ['executed', 'continuity', 'continuity-monthly', 'staffing', 'quality'])
      expect(doc.paths[`/api/reports/${p}`]?.get, p).toBeDefined();
  });

  it('the SQLite source reads the plan, matches and links the care import wrote', async () => {
    const db = new Database(join(dataDir, 'gateway.db'), { readonly: true });
    try {
      const src = new SqliteReportSource(db);
      const w = clock.window(DAY, DAY);
      const planned = await collect(src.planned(w));
      expect(planned.map((p) => [p.plannedVisitId, p.localStart, p.startMs, p.plannedMinutes])).toEqual([
        ['pv-1', '08:00', at('08:00'), 30],
        ['pv-2', '12:00', at('12:00'), 20],
      ]);
      expect(planned[0]!.serviceCodes).toEqual([{ code: 'PC', standardMinutes: 30, grantedMinutes: 25 }]);
      const matches = await collect(src.matches(w));
      expect(
        matches
          .map((m) => [m.plannedVisitId, m.status, m.executedKeys])
          .sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)),
      ).toEqual([
        [null, 'unplanned', ['rd-1/v2']],
        ['pv-1', 'matched', ['rd-1/v1']],
        ['pv-2', 'missed', []],
      ]);
      const visits = await collect(src.executed(w));
      expect(visits.map((v) => [v.visitId, v.plannedVisitId])).toEqual([
        ['v1', 'pv-1'],
        ['v2', null],
      ]);
      const reg = await src.registries();
      expect(reg.clients.map((c) => c.clientRef)).toEqual(['cl-1']);
      expect(reg.staff.map((s) => s.staffRef).sort()).toEqual(['st-1', 'st-2']);
    } finally {
      db.close();
    }
  });
});
