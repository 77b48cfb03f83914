import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolesFor } from '../../gateway/src/auth/index.js';
import { ADMIN_TOKEN } from '../gateway/helpers.js';
import { CARD_A, CARD_B, FOREIGN, startFixture, UNKNOWN_A, UNKNOWN_B, type Fixture } from './fixture.js';

/**
 * Area/provider scope, route by route, on a real gateway with two areas: a coordinator of
 * (area-a, provider p-1) gets none of area B's (nor provider p-2's) visits, anomalies, cards, clients,
 * staff, alerts or plan rows from ANY route open to coordinators; an id of area B answers 404, like an
 * id that does not exist. Every route the policy opens to a coordinator must have a probe here, so a
 * new route cannot slip past this test.
 */
let f: Fixture;
let coordA: string;
let managerA: string;
let coordNone: string;

beforeAll(async () => {
  f = await startFixture();
  coordA = await f.token('coord-a', 'coordinator', ['area-a'], 'p-1');
  managerA = await f.token('manager-a', 'unit-manager', ['area-a']);
  coordNone = await f.token('coord-none', 'coordinator', []);
  // area B's visit has a correction (by the admin): its history must not reach area A's coordinator
  const start = new Date(Date.now() - 100 * 60_000).toISOString();
  const c = await f.call('POST', `/api/visits/${f.visitB}/corrections`, ADMIN_TOKEN, {
    startedAt: start,
    reasonCode: 'wrong-time',
    note: 'st-b',
  });
  if (c.status !== 201) throw new Error(`setup correction: ${c.text}`);
}, 60_000);

afterAll(async () => {
  await f?.stop();
});

const ISO_AGO = new Date(Date.now() - 90 * 60_000).toISOString();
const leaks = (text: string): string[] => FOREIGN.filter((id) => text.includes(id));

interface Probe {
  /** The request a coordinator of A makes while reaching for B. */
  path: string;
  body?: unknown;
  /** Answer expected: 200 with nothing of B in it, or 404 (a foreign id reads as no such id). */
  expect: 200 | 404;
  /** For 200 probes: something of A the answer must contain (so an empty answer cannot pass). */
  mustContain?: string;
}

const DAY_MS = 86_400_000;
const dayBefore = (d: string) => new Date(Date.parse(d) - DAY_MS).toISOString().slice(0, 10);
const mondayOf = (d: string) =>
  new Date(Date.parse(d) - ((new Date(Date.parse(d)).getUTCDay() + 6) % 7) * DAY_MS)
    .toISOString()
    .slice(0, 10);

const manual = (clientRef: string, staffRef: string) => ({
  clientRef,
  staffRef,
  startedAt: new Date(Date.now() - 5 * 3_600_000).toISOString(),
  endedAt: new Date(Date.now() - 4.5 * 3_600_000).toISOString(),
  reasonCode: 'missed-tap',
});

/** Every route open to coordinators, with the requests that reach for area B. */
function probes(): Record<string, Probe[]> {
  return {
    'GET /api/visits': [
      { path: '/api/visits?state=open', expect: 200, mustContain: f.visitA },
      { path: '/api/visits?state=recent&readerId=rd-b', expect: 200 },
      { path: '/api/visits?state=open&limit=1', expect: 200, mustContain: f.visitA },
    ],
    'POST /api/visits/:visitId/close': [
      { path: `/api/visits/${f.visitB}/close`, body: { reason: 'test' }, expect: 404 },
      { path: `/api/visits/${f.visitA2}/close`, body: { reason: 'test' }, expect: 404 },
    ],
    'POST /api/visits/:visitId/corrections': [
      {
        path: `/api/visits/${f.visitB}/corrections`,
        body: { startedAt: ISO_AGO, reasonCode: 'other' },
        expect: 404,
      },
      {
        path: `/api/visits/${f.visitA2}/corrections`,
        body: { startedAt: ISO_AGO, reasonCode: 'other' },
        expect: 404,
      },
    ],
    'GET /api/visits/:visitId/corrections': [{ path: `/api/visits/${f.visitB}/corrections`, expect: 200 }],
    'POST /api/visits/manual': [
      { path: '/api/visits/manual', body: manual('cl-b', 'st-a'), expect: 404 },
      { path: '/api/visits/manual', body: manual('cl-a', 'st-b'), expect: 404 },
      { path: '/api/visits/manual', body: manual('cl-a2', 'st-a'), expect: 404 },
    ],
    'POST /api/visits/:visitId/withdraw': [
      { path: `/api/visits/${f.visitB}/withdraw`, body: { reasonCode: 'tap-by-mistake' }, expect: 404 },
      { path: `/api/visits/${f.visitA2}/withdraw`, body: { reasonCode: 'tap-by-mistake' }, expect: 404 },
    ],
    'GET /api/flags': [{ path: '/api/flags?state=all', expect: 200 }],
    'POST /api/flags/:flagId/resolve': [
      { path: '/api/flags/999/resolve', body: { resolution: 'no-change' }, expect: 404 },
    ],
    'GET /api/periods/locks': [{ path: '/api/periods/locks', expect: 200 }],
    'POST /api/plan/import': [
      {
        path: '/api/plan/import',
        body: { areaId: 'area-b', fromDate: '2030-01-01', toDate: '2030-01-01', visits: [] },
        expect: 404,
      },
    ],
    'GET /api/corrections/reasons': [
      { path: '/api/corrections/reasons', expect: 200, mustContain: 'missed-tap' },
    ],
    'GET /api/day': [
      { path: '/api/day', expect: 200, mustContain: 'pv-a-late' },
      { path: '/api/day?area=area-b', expect: 404 },
    ],
    // an in-scope stream stays open (day.test.ts reads it); here only the refusal of a foreign area
    'GET /api/day/stream': [{ path: '/api/day/stream?area=area-b', expect: 404 }],
    'GET /api/anomalies': [
      { path: '/api/anomalies', expect: 200, mustContain: UNKNOWN_A },
      { path: '/api/anomalies?readerId=rd-b', expect: 200 },
    ],
    'GET /api/cards/unknown': [{ path: '/api/cards/unknown', expect: 200, mustContain: UNKNOWN_A }],
    'POST /api/cards/:cardRef/assign': [
      { path: `/api/cards/${UNKNOWN_B}/assign`, body: { staffRef: 'st-a' }, expect: 404 },
      { path: `/api/cards/${UNKNOWN_A}/assign`, body: { staffRef: 'st-b' }, expect: 404 },
      { path: `/api/cards/${CARD_B}/assign`, body: { staffRef: 'st-a', reassign: true }, expect: 404 },
    ],
    'GET /api/alerts': [{ path: '/api/alerts', expect: 200 }],
    'GET /api/plan/alerts': [
      { path: '/api/plan/alerts?state=all', expect: 200, mustContain: 'pv-a-late' },
      { path: '/api/plan/alerts?area=area-b', expect: 404 },
    ],
    'GET /api/plan/matches': [
      { path: `/api/plan/matches?from=${f.today}`, expect: 200, mustContain: 'pv-a' },
      { path: `/api/plan/matches?from=${f.today}&area=area-b`, expect: 404 },
      { path: `/api/plan/matches?from=${f.today}&client=cl-b`, expect: 404 },
    ],
    'GET /api/plan/registry': [{ path: '/api/plan/registry', expect: 200, mustContain: 'st-a' }],
    // reports (issue 12): computed from a source holding only the caller's clients
    'GET /api/reports/executed': [
      {
        path: `/api/reports/executed?from=${dayBefore(f.today)}&to=${f.today}&by=client`,
        expect: 200,
        mustContain: 'cl-a',
      },
      {
        path: `/api/reports/executed?from=${dayBefore(f.today)}&to=${f.today}&by=client&format=csv`,
        expect: 200,
        mustContain: 'cl-a',
      },
    ],
    'GET /api/reports/continuity': [
      { path: `/api/reports/continuity?from=${mondayOf(f.today)}`, expect: 200, mustContain: 'cl-a' },
    ],
    'GET /api/reports/continuity-monthly': [
      {
        path: `/api/reports/continuity-monthly?from=${f.today.slice(0, 7)}&to=${f.today.slice(0, 7)}`,
        expect: 200,
      },
    ],
    'GET /api/reports/staffing': [
      {
        path: `/api/reports/staffing?from=${dayBefore(f.today)}&to=${f.today}`,
        expect: 200,
        mustContain: 'area-a',
      },
    ],
    'GET /api/reports/quality': [
      {
        path: `/api/reports/quality?from=${dayBefore(f.today)}&to=${f.today}`,
        expect: 200,
        mustContain: 'rd-a',
      },
    ],
    'POST /api/plan/visits/:plannedVisitId/reason': [
      { path: '/api/plan/visits/pv-b/reason', body: { reasonCode: 'staff-ill' }, expect: 404 },
      { path: '/api/plan/visits/pv-a2/reason', body: { reasonCode: 'staff-ill' }, expect: 404 },
    ],
  };
}

describe('area and provider scope of coordinators (API)', () => {
  it('sees its own rows and nothing of area B or provider p-2 on every route open to coordinators', async () => {
    const table = probes();
    const open = f.gw.admin
      .mountedRoutes()
      .filter(
        (r) =>
          !r.public && (rolesFor(r.method, r.path, r.scoped) as readonly string[]).includes('coordinator'),
      )
      .map((r) => `${r.method} ${r.path}`)
      .filter((k) => !k.includes(' /api/auth/') && !k.includes(' /api/me/'));
    // a route opened to coordinators without a probe here fails the test until one is written
    expect(open.filter((k) => !table[k])).toEqual([]);
    const problems: string[] = [];
    let checked = 0;
    for (const key of open) {
      const method = key.split(' ')[0] as string;
      for (const p of table[key] ?? []) {
        const r = await f.call(method, p.path, coordA, p.body ?? (method === 'GET' ? undefined : {}));
        checked += 1;
        if (r.status !== p.expect)
          problems.push(`${method} ${p.path} -> ${r.status} (want ${p.expect}): ${r.text.slice(0, 200)}`);
        const l = leaks(r.text);
        if (l.length) problems.push(`${method} ${p.path} leaks ${l.join(', ')}`);
        if (p.mustContain && !r.text.includes(p.mustContain)) {
          problems.push(`${method} ${p.path} lacks own row ${p.mustContain}: ${r.text.slice(0, 200)}`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThanOrEqual(18);
  });

  it('gives the admin everything (the scope applies to scoped roles only)', async () => {
    const v = await f.call('GET', '/api/visits?state=open', ADMIN_TOKEN);
    expect(v.text).toContain(f.visitB);
    expect(v.text).toContain(f.visitA2);
    const cards = await f.call('GET', '/api/cards/unknown', ADMIN_TOKEN);
    expect(cards.text).toContain(UNKNOWN_B);
  });

  it('limits a unit manager to its areas (all providers there) and lets it read, not change', async () => {
    const v = await f.call('GET', '/api/visits?state=open', managerA);
    expect(v.status).toBe(200);
    expect(v.text).toContain(f.visitA);
    expect(v.text).toContain(f.visitA2); // no provider bound: every provider of area-a
    expect(v.text).not.toContain(f.visitB);
    expect((await f.call('POST', `/api/visits/${f.visitA}/close`, managerA, { reason: 'x' })).status).toBe(
      403,
    );
  });

  it('gives a coordinator bound to no area nothing at all (deny by default)', async () => {
    for (const path of [
      '/api/visits?state=open',
      '/api/anomalies',
      '/api/cards/unknown',
      '/api/plan/registry',
    ]) {
      const r = await f.call('GET', path, coordNone);
      expect(r.status).toBe(200);
      expect(r.text).not.toMatch(/rd-a|rd-b|cl-a|cl-b|st-a|st-b/);
    }
    expect((await f.call('GET', '/api/plan/alerts?area=area-a', coordNone)).status).toBe(404);
  });

  it('lets the coordinator act inside its area: assign an unknown card to its staff, close its visit', async () => {
    const assigned = await f.call('POST', `/api/cards/${UNKNOWN_A}/assign`, coordA, { staffRef: 'st-a' });
    expect(assigned.status).toBe(200);
    const closed = await f.call('POST', `/api/visits/${f.visitA}/close`, coordA, {
      reason: 'glömt stämpla ut',
    });
    expect(closed.status).toBe(200);
    // area B's visit is still open and untouched
    const b = (await f.call('GET', '/api/visits?state=open', ADMIN_TOKEN)).text;
    expect(b).toContain(f.visitB);
    expect(CARD_A).toBeTruthy();
  });

  it('keeps routes that do not apply the scope closed to scoped roles, whatever the policy lists', () => {
    // GET /api/visits is listed for coordinators; without a scoped handler they are left out
    expect(rolesFor('GET', '/api/visits', false)).not.toContain('coordinator');
    expect(rolesFor('GET', '/api/visits', true)).toContain('coordinator');
    expect(rolesFor('GET', '/api/auth/me', false)).toContain('coordinator'); // own account only
    expect(rolesFor('GET', '/api/readers', true)).not.toContain('coordinator');
  });
});
