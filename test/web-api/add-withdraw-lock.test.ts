import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VisitEvent } from '../../protocol/index.js';
import { startFakeBackend, type FakeBackend } from '../../simulator/fake-backend.js';
import { ADMIN_TOKEN, waitUntil } from '../gateway/helpers.js';
import { BACKEND_SECRET, CARD_B, localParts, startFixture, type Fixture } from './fixture.js';

/**
 * The remaining corrections on a real gateway with a real (fake) backend checking the signature: a
 * coordinator adds a missing visit and marks a tap as a mistake (reasons required, the person audited,
 * one webhook event each); a unit manager locks a month and corrections inside it are refused with who
 * locked it; care staff read their own registrations only and flag a mistake the coordinator resolves;
 * a care-staff session gets nothing of anyone else through any mounted route.
 */
type Added = Extract<VisitEvent, { type: 'visit.added' }>;
type Withdrawn = Extract<VisitEvent, { type: 'visit.withdrawn' }>;
let f: Fixture;
let backend: FakeBackend;
const PW = 'add-withdraw-password-0123';
const sessions: Record<string, { cookie: string; csrf: string }> = {};

async function as(
  who: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const s = sessions[who];
  if (!s) throw new Error(`no session ${who}`);
  const res = await fetch(`${f.gw.adminUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', cookie: s.cookie, 'x-csrf-token': s.csrf },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = {};
  }
  return { status: res.status, body: parsed, text };
}

async function login(name: string): Promise<void> {
  const res = await fetch(`${f.gw.adminUrl}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, password: PW }),
  });
  expect(res.status).toBe(200);
  sessions[name] = {
    cookie: (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '',
    csrf: ((await res.json()) as { csrf: string }).csrf,
  };
}

const ofType = <T extends VisitEvent>(type: T['type']): T[] =>
  backend.received().filter((e): e is T => e.type === type);

interface AuditRow {
  actor: string;
  action: string;
  target: string;
  reason: string | null;
}
const audit = async (action: string): Promise<AuditRow[]> =>
  (
    (await f.call('GET', `/api/audit?limit=1000&action=${encodeURIComponent(action)}`, ADMIN_TOKEN)).body as {
      entries: AuditRow[];
    }
  ).entries;

const H = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
const T5 = Date.now() - 5 * H;

beforeAll(async () => {
  backend = await startFakeBackend({ secret: BACKEND_SECRET });
  f = await startFixture({ backendUrl: backend.url });
  const users = [
    ['anna', 'coordinator', ['area-a'], 'p-1', null],
    ['chef', 'unit-manager', ['area-a'], null, null],
    ['chefb', 'unit-manager', ['area-b'], null, null],
    ['sara', 'care-staff', [], null, 'st-a'],
  ] as const;
  for (const [name, role, areas, provider, staffRef] of users) {
    await f.gw.access.service.createUser('test', {
      name,
      displayName: name,
      role,
      areas: [...areas],
      provider,
      staffRef,
      password: PW,
    });
    await login(name);
  }
}, 60_000);

afterAll(async () => {
  await f?.stop();
  await backend?.close();
});

describe('adding a missing visit and withdrawing a tap', () => {
  let addedId = '';

  it('adds a visit by hand with a reason: manual, audited as the person, visit.added once', async () => {
    const at = Date.now() - 3 * H;
    const body = {
      clientRef: 'cl-a3',
      staffRef: 'st-a',
      startedAt: iso(at),
      endedAt: iso(at + 0.5 * H),
      reasonCode: 'missed-tap',
      note: 'glömde stämpla',
      requestId: 'add-form-0001',
    };
    const noReason = await as('anna', 'POST', '/api/visits/manual', { ...body, reasonCode: undefined });
    expect(noReason.status).toBe(400);
    const wrongReason = await as('anna', 'POST', '/api/visits/manual', { ...body, reasonCode: 'wrong-time' });
    expect(wrongReason.status).toBe(400);
    const backwards = await as('anna', 'POST', '/api/visits/manual', {
      ...body,
      endedAt: body.startedAt,
      startedAt: body.endedAt,
    });
    expect(backwards.status).toBe(400);

    const r = await as('anna', 'POST', '/api/visits/manual', body);
    expect(r.status).toBe(201);
    const visit = r.body.visit as { visitId: string; readerId: string; endReason: string };
    addedId = visit.visitId;
    expect(visit.readerId).toBe('manual');
    const c = r.body.correction as { correctionId: number; kind: string; actor: string };
    expect(c).toMatchObject({ kind: 'added', actor: 'user:anna' });
    // the same form again: the same visit, no second one
    const again = await as('anna', 'POST', '/api/visits/manual', body);
    expect(again.status).toBe(200);
    expect((again.body.visit as { visitId: string }).visitId).toBe(addedId);
    // another form for the same time: refused, the first one covers it
    const twice = await as('anna', 'POST', '/api/visits/manual', { ...body, requestId: 'add-form-0002' });
    expect(twice.status).toBe(409);

    const [ev] = await waitUntil(
      () => (ofType<Added>('visit.added').length ? ofType<Added>('visit.added') : null),
      15_000,
    );
    expect(ev).toMatchObject({
      idempotencyKey: `vt1:added:${c.correctionId}`,
      visitId: addedId,
      readerId: 'manual',
      clientRef: 'cl-a3',
      staffRef: 'st-a',
      cardRef: null,
      manual: true,
      reasonCode: 'missed-tap',
      note: 'glömde stämpla',
      addedBy: 'user:anna',
      durationMs: 30 * 60_000,
    });
    const rows = await audit('visit.add');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: 'user:anna', reason: 'missed-tap: glömde stämpla' });
    expect(rows[0]?.target).toBe(`visit:manual/${addedId}`);
    // the added visit is a visit like the others for the coordinator (and reports/plan matching read the row)
    const recent = await as('anna', 'GET', '/api/visits?state=recent');
    expect(recent.text).toContain(addedId);
  });

  it('marks a tap as a mistake: withdrawn with a reason, audited, visit.withdrawn once, no later correction', async () => {
    const dayVisits = async () =>
      (
        (await as('anna', 'GET', `/api/day?date=${localParts(Date.now() - 110 * 60_000).date}`)).body as {
          visits: { visitId: string }[];
        }
      ).visits.map((v) => v.visitId);
    const dayBefore = await dayVisits();
    expect(dayBefore).toContain(f.visitA);
    const open = await as('anna', 'POST', `/api/visits/${f.visitA}/withdraw`, {
      reasonCode: 'tap-by-mistake',
    });
    expect(open.status).toBe(409);
    expect(String(open.body.detail)).toMatch(/close it first/);
    expect((await as('anna', 'POST', `/api/visits/${f.visitA}/close`, { reason: 'fel läsare' })).status).toBe(
      200,
    );
    const body = {
      reasonCode: 'tap-by-mistake',
      note: 'blippade hos fel brukare',
      requestId: 'wd-form-0001',
    };
    expect((await as('anna', 'POST', `/api/visits/${f.visitA}/withdraw`, { note: 'x' })).status).toBe(400);
    const r = await as('anna', 'POST', `/api/visits/${f.visitA}/withdraw`, body);
    expect(r.status).toBe(201);
    const c = r.body.correction as { correctionId: number; kind: string; actor: string };
    expect(c).toMatchObject({ kind: 'withdrawn', actor: 'user:anna' });
    expect((await as('anna', 'POST', `/api/visits/${f.visitA}/withdraw`, body)).status).toBe(200);
    const second = await as('anna', 'POST', `/api/visits/${f.visitA}/withdraw`, {
      ...body,
      requestId: 'wd-form-0002',
    });
    expect(second.status).toBe(409);
    const corr = await as('anna', 'POST', `/api/visits/${f.visitA}/corrections`, {
      startedAt: iso(Date.now() - 2 * H),
      reasonCode: 'wrong-time',
    });
    expect(corr.status).toBe(409);
    expect(String(corr.body.detail)).toMatch(/withdrawn/);
    // a unit manager reads; outside a locked period of theirs they change nothing
    const mgr = await as('chef', 'POST', '/api/visits/manual', {
      clientRef: 'cl-a3',
      staffRef: 'st-a',
      startedAt: iso(Date.now() - 6 * H),
      endedAt: iso(Date.now() - 5.5 * H),
      reasonCode: 'forgot-card',
    });
    expect(mgr.status).toBe(403);
    expect(String(mgr.body.detail)).toMatch(/only inside a locked/);

    await waitUntil(() => ofType<Withdrawn>('visit.withdrawn').length > 0, 15_000);
    await new Promise((res) => setTimeout(res, 300));
    const evs = ofType<Withdrawn>('visit.withdrawn');
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({
      idempotencyKey: `vt1:withdrawn:${c.correctionId}`,
      visitId: f.visitA,
      readerId: 'rd-a',
      clientRef: 'cl-a',
      staffRef: 'st-a',
      reasonCode: 'tap-by-mistake',
      withdrawnBy: 'user:anna',
    });
    expect(backend.rejectedSignatures).toBe(0);
    expect(backend.invalidBatches).toBe(0);
    expect(backend.duplicates).toBe(0);
    // the live day view leaves the withdrawn visit out (it was there before when started today)
    const dayAfter = await dayVisits();
    expect(dayAfter).not.toContain(f.visitA);
    expect(dayBefore.filter((v) => v !== f.visitA)).toEqual(dayAfter);
    // every caller's list of visits says which one is withdrawn (the web app offers it no second time)
    for (const list of [
      (await as('anna', 'GET', '/api/visits?state=recent')).body,
      (await f.call('GET', '/api/visits?state=recent', ADMIN_TOKEN)).body as Record<string, unknown>,
    ]) {
      const vs = list.visits as { visitId: string; withdrawn: boolean }[];
      expect(vs.find((v) => v.visitId === f.visitA)?.withdrawn).toBe(true);
      expect(vs.filter((v) => v.visitId !== f.visitA).every((v) => v.withdrawn === false)).toBe(true);
    }
    const rows = await audit('visit.withdraw');
    expect(rows.map((x) => [x.actor, x.target, x.reason])).toEqual([
      ['user:anna', `visit:rd-a/${f.visitA}`, 'tap-by-mistake: blippade hos fel brukare'],
    ]);
  });
});

describe('period locks', () => {
  it('a unit manager locks a month; changes inside it are refused naming who locked it; unlock needs a reason', async () => {
    const month = localParts(Date.now() - 3 * H).date.slice(0, 7);
    expect((await as('anna', 'POST', '/api/periods/locks', { areaId: 'area-a', month })).status).toBe(403);
    expect((await as('chef', 'POST', '/api/periods/locks', { areaId: 'area-b', month })).status).toBe(404);
    const locked = await as('chef', 'POST', '/api/periods/locks', {
      areaId: 'area-a',
      month,
      note: 'attesterad',
    });
    expect(locked.status).toBe(201);
    expect((await as('chef', 'POST', '/api/periods/locks', { areaId: 'area-a', month })).status).toBe(409);

    const add = await as('anna', 'POST', '/api/visits/manual', {
      clientRef: 'cl-a',
      staffRef: 'st-a',
      startedAt: iso(T5),
      endedAt: iso(T5 + 0.5 * H),
      reasonCode: 'forgot-card',
    });
    expect(add.status).toBe(423);
    expect(add.body).toMatchObject({
      error: 'period-locked',
      lock: { areaId: 'area-a', month, lockedBy: 'user:chef' },
    });
    expect(String(add.body.detail)).toMatch(/unlock/);
    const corr = await as('anna', 'POST', `/api/visits/${f.visitA2}/corrections`, {
      startedAt: iso(Date.now() - 2 * H),
      reasonCode: 'wrong-time',
    });
    // visitA2 is of provider p-2: not Anna's (404 before the lock is even looked at)
    expect(corr.status).toBe(404);
    expect((await as('anna', 'GET', '/api/periods/locks')).text).toContain('user:chef');

    expect((await as('chef', 'POST', `/api/periods/locks/area-a/${month}/unlock`, {})).status).toBe(400);
    const un = await as('chef', 'POST', `/api/periods/locks/area-a/${month}/unlock`, {
      reason: 'rättelse behövs',
    });
    expect(un.status).toBe(200);
    const again = await as('anna', 'POST', '/api/visits/manual', {
      clientRef: 'cl-a',
      staffRef: 'st-a',
      startedAt: iso(T5),
      endedAt: iso(T5 + 0.5 * H),
      reasonCode: 'forgot-card',
    });
    expect(again.status).toBe(201);
    expect((await audit('period.lock')).map((x) => [x.actor, x.target])).toEqual([
      ['user:chef', `period:area-a/${month}`],
    ]);
    expect((await audit('period.unlock')).map((x) => [x.actor, x.reason])).toEqual([
      ['user:chef', 'rättelse behövs'],
    ]);
  });
});

describe('changes inside a locked period', () => {
  it("are a unit manager's of that area: coordinators refused, the manager adds, corrects, closes and withdraws, audited as themselves", async () => {
    const at = Date.now() - 130 * 60_000; // cl-a3 has no other visit then; rd-a-v2 started 110 min ago
    // the month of these visits (all within half an hour of each other, in daytime)
    const month = localParts(at).date.slice(0, 7);
    expect((await as('chef', 'POST', '/api/periods/locks', { areaId: 'area-a', month })).status).toBe(201);
    const lockedPeriod = { areaId: 'area-a', month, lockedBy: 'user:chef' };
    const add = {
      clientRef: 'cl-a3',
      staffRef: 'st-a',
      startedAt: iso(at),
      endedAt: iso(at + 0.5 * H),
      reasonCode: 'forgot-card',
    };
    // the coordinator is told that a unit manager of the area makes the change (or unlocks)
    const coord = await as('anna', 'POST', '/api/visits/manual', add);
    expect(coord.status).toBe(423);
    expect(String(coord.body.detail)).toMatch(/a unit manager of area area-a makes this change, or unlocks/);
    const other = 'rd-a-v2'; // the unknown card's open visit at cl-a (provider p-1: Anna's)
    const coordClose = await as('anna', 'POST', `/api/visits/${other}/close`, {
      reason: 'glömde stämpla ut',
    });
    expect(coordClose.status).toBe(423);
    expect(coordClose.body).toMatchObject({ error: 'period-locked', lock: lockedPeriod });
    // an admin (the bearer token too) is no manager: refused like the coordinator
    const adminClose = await f.call('POST', `/api/visits/${other}/close`, ADMIN_TOKEN, { reason: 'x' });
    expect(adminClose.status).toBe(423);
    expect((await f.call('POST', '/api/visits/manual', ADMIN_TOKEN, add)).status).toBe(423);
    // a unit manager of another area does not see the visit at all
    expect((await as('chefb', 'POST', `/api/visits/${other}/close`, { reason: 'x' })).status).toBe(404);
    expect((await as('chefb', 'POST', '/api/visits/manual', add)).status).toBe(404);

    const added = await as('chef', 'POST', '/api/visits/manual', add);
    expect(added.status).toBe(201);
    const manualId = (added.body.visit as { visitId: string }).visitId;
    expect(added.body.correction).toMatchObject({ kind: 'added', actor: 'user:chef' });
    const close = await as('chef', 'POST', `/api/visits/${other}/close`, { reason: 'glömde stämpla ut' });
    expect(close.status).toBe(200);
    const end = Date.now() - 100 * 60_000;
    const fix = { endedAt: iso(end), reasonCode: 'wrong-time' };
    const corrected = await as('chef', 'POST', `/api/visits/${other}/corrections`, fix);
    expect(corrected.status).toBe(201);
    expect(corrected.body.correction).toMatchObject({ kind: 'times', actor: 'user:chef' });
    const wd = await as('chef', 'POST', `/api/visits/${manualId}/withdraw`, {
      reasonCode: 'other',
      note: 'dubbelregistrerat',
    });
    expect(wd.status).toBe(201);

    const targetsOf = async (action: string) =>
      (await audit(action)).filter((r) => r.actor === 'user:chef').map((r) => r.target);
    expect(await targetsOf('visit.add')).toEqual([`visit:manual/${manualId}`]);
    expect(await targetsOf('visit.correct')).toEqual([`visit:rd-a/${other}`]);
    expect(await targetsOf('visit.withdraw')).toEqual([`visit:manual/${manualId}`]);
    // the audit row names the locked period the change was made in
    const full = (
      (await f.call('GET', '/api/audit?limit=1000&action=visit.withdraw', ADMIN_TOKEN)).body as {
        entries: { actor: string; after: { lockedPeriod?: unknown } }[];
      }
    ).entries.find((e) => e.actor === 'user:chef');
    expect(full?.after.lockedPeriod).toEqual(lockedPeriod);
    const [ev] = await waitUntil(() => {
      const e = ofType<Withdrawn>('visit.withdrawn').filter((x) => x.visitId === manualId);
      return e.length ? e : null;
    }, 15_000);
    expect(ev).toMatchObject({ withdrawnBy: 'user:chef', readerId: 'manual', cardRef: null });

    expect(
      (await as('chef', 'POST', `/api/periods/locks/area-a/${month}/unlock`, { reason: 'klart' })).status,
    ).toBe(200);
    // unlocked: the manager is read-only again, the coordinator changes
    const again = { endedAt: iso(end + 60_000), reasonCode: 'wrong-time' };
    const mgr = await as('chef', 'POST', `/api/visits/${other}/corrections`, again);
    expect(mgr.status).toBe(403);
    expect((await as('anna', 'POST', `/api/visits/${other}/corrections`, again)).status).toBe(201);
    // a visit added by hand is withdrawn and added again, not time-corrected (visit.corrected names a card)
    const own = await as('anna', 'POST', '/api/visits/manual', {
      ...add,
      startedAt: iso(at - 2 * H),
      endedAt: iso(at - 1.5 * H),
    });
    expect(own.status).toBe(201);
    const ownId = (own.body.visit as { visitId: string }).visitId;
    const noFix = await as('anna', 'POST', `/api/visits/${ownId}/corrections`, {
      endedAt: iso(at - 1.25 * H),
      reasonCode: 'wrong-time',
    });
    expect(noFix.status).toBe(409);
    expect(String(noFix.body.detail)).toMatch(/added by hand/);
  });
});

describe('plan import by coordinators', () => {
  it('imports only areas of theirs, only their clients, and not an area shared with other providers', async () => {
    const plan = (areaId: string, clientRef: string) => ({
      areaId,
      fromDate: '2030-01-07',
      toDate: '2030-01-07',
      visits: [{ clientRef, date: '2030-01-07', start: '08:00', plannedMinutes: 30 }],
    });
    // Anna is bound to provider p-1; area-a also has cl-a2 of p-2, whose plan an import would replace
    const shared = await as('anna', 'POST', '/api/plan/import', plan('area-a', 'cl-a'));
    expect(shared.status).toBe(403);
    expect(String(shared.body.detail)).toMatch(/other providers/);
    expect((await as('anna', 'POST', '/api/plan/import', plan('area-b', 'cl-b'))).status).toBe(404);
    // a coordinator of the whole area (no provider) imports its clients, not another area's
    await f.gw.access.service.createUser('test', {
      name: 'bodil',
      displayName: 'bodil',
      role: 'coordinator',
      areas: ['area-a'],
      password: PW,
    });
    await login('bodil');
    const foreign = await as('bodil', 'POST', '/api/plan/import', plan('area-a', 'cl-b'));
    expect(foreign.status).toBe(422);
    expect(foreign.text).toContain('cl-b is not a client of your areas');
    const ok = await as('bodil', 'POST', '/api/plan/import', plan('area-a', 'cl-a3'));
    expect(ok.status).toBe(200);
    const versions = (await f.call('GET', '/api/plan/versions?area=area-a', ADMIN_TOKEN)).body as {
      versions: { fromDate: string; importedBy: string }[];
    };
    expect(versions.versions.find((v) => v.fromDate === '2030-01-07')?.importedBy).toBe('user:bodil');
    // a unit manager does not import
    expect((await as('chef', 'POST', '/api/plan/import', plan('area-a', 'cl-a3'))).status).toBe(403);
  });
});

describe('care staff', () => {
  const period = () => {
    const today = localParts(Date.now()).date;
    const from = localParts(Date.now() - 2 * 86_400_000).date;
    return `from=${from}&to=${today}`;
  };

  it('reads their own registrations only and flags a mistake the coordinator sees and resolves', async () => {
    const mine = await as('sara', 'GET', `/api/me/visits?${period()}`);
    expect(mine.status).toBe(200);
    const visits = (mine.body as { visits: { visitId: string; withdrawn: boolean; manual: boolean }[] })
      .visits;
    expect(visits.map((v) => v.visitId)).toEqual(expect.arrayContaining([f.visitA, f.visitA2]));
    expect(visits.find((v) => v.visitId === f.visitA)?.withdrawn).toBe(true);
    expect(visits.some((v) => v.manual)).toBe(true);
    expect(mine.text).not.toContain(f.visitB);
    expect(mine.text).not.toContain('st-b');

    // another staff member's visit reads as absent
    expect((await as('sara', 'POST', '/api/me/flags', { visitId: f.visitB, message: 'fel' })).status).toBe(
      404,
    );
    const flagged = await as('sara', 'POST', '/api/me/flags', {
      visitId: f.visitA,
      message: 'Jag var där, det var ingen felstämpling',
      requestId: 'flag-0001',
    });
    expect(flagged.status).toBe(201);
    const flagId = (flagged.body.flag as { flagId: number }).flagId;
    const missing = await as('sara', 'POST', '/api/me/flags', {
      date: localParts(Date.now()).date,
      message: 'Besöket hos cl-a3 i morse saknas',
    });
    expect(missing.status).toBe(201);
    const foreignFlag = await as('sara', 'POST', '/api/me/flags', { visitId: f.visitA2, message: 'p-2' });
    expect(foreignFlag.status).toBe(201);

    // Anna (area-a, provider p-1) sees the two flags of her scope, not the one on provider p-2's client
    const list = await as('anna', 'GET', '/api/flags');
    const ids = (list.body as { flags: { flagId: number; visitId: string | null }[] }).flags;
    expect(ids.map((x) => x.visitId).sort()).toEqual([f.visitA, null].sort());
    const otherId = (foreignFlag.body.flag as { flagId: number }).flagId;
    expect(
      (await as('anna', 'POST', `/api/flags/${otherId}/resolve`, { resolution: 'no-change' })).status,
    ).toBe(404);
    const res = await as('anna', 'POST', `/api/flags/${flagId}/resolve`, {
      resolution: 'no-change',
      note: 'kontrollerat',
    });
    expect(res.status).toBe(200);
    expect(
      (await as('anna', 'POST', `/api/flags/${flagId}/resolve`, { resolution: 'no-change' })).status,
    ).toBe(409);
    const own = await as('sara', 'GET', '/api/me/flags');
    const back = (
      own.body as { flags: { flagId: number; resolution: string | null; resolvedBy: string | null }[] }
    ).flags;
    expect(back.find((x) => x.flagId === flagId)).toMatchObject({
      resolution: 'no-change',
      resolvedBy: 'user:anna',
    });
    expect((await audit('flag.create')).length).toBe(3);
    expect((await audit('flag.resolve')).map((x) => x.actor)).toEqual(['user:anna']);
  });

  it("gets nothing of anyone else's through any mounted route", async () => {
    const OTHERS = ['st-b', 'cl-b', f.visitB, 'rd-b', CARD_B, 'area-b'];
    const fill = (path: string) =>
      path
        .replace(':visitId', f.visitB)
        .replace(':readerId', 'rd-b')
        .replace(':cardRef', CARD_B)
        .replace(':plannedVisitId', 'pv-b')
        .replace(':areaId', 'area-b')
        .replace(':month', '2026-01')
        .replace(/:[A-Za-z]+/g, '1');
    const routes = f.gw.admin
      .mountedRoutes()
      .filter((r) => !r.public && !r.path.startsWith('/api/auth/') && r.path !== '/api/day/stream');
    expect(routes.length).toBeGreaterThan(40);
    const leaks: string[] = [];
    const opened: string[] = [];
    for (const r of routes) {
      const res = await as('sara', r.method, fill(r.path), r.method === 'GET' ? undefined : {});
      if (res.status < 400) opened.push(`${r.method} ${r.path}`);
      for (const o of OTHERS) if (res.text.includes(o)) leaks.push(`${r.method} ${r.path}: ${o}`);
    }
    expect(leaks).toEqual([]);
    // only the care staff's own routes answer (and /api/me/visits needs its period)
    expect(opened.filter((k) => !k.includes(' /api/me/'))).toEqual([]);
    expect(opened).toContain('GET /api/me/flags');
    const period2 = await as('sara', 'GET', `/api/me/visits?${period()}`);
    expect(OTHERS.filter((o) => period2.text.includes(o))).toEqual([]);
  });
});
