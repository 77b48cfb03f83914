import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, waitUntil } from '../gateway/helpers.js';
import { localParts, startFixture, type Fixture } from './fixture.js';

/**
 * A withdrawn visit (a tap marked as a mistake) matches no planned visit, and the matching is recomputed
 * when it is withdrawn (the fixture's care tick runs once an hour, so nothing else recomputes it): the
 * visits of planned visit pv-x are withdrawn → pv-x has no visit in the plan matches, the day view
 * (JSON and the live stream) and a late/missed alert is raised for it; a visit the coordinator adds by
 * hand for that time matches pv-x again and the alert clears.
 */
let f: Fixture;
/** Imported by this test for cl-a at the time of its visits: no alert of it was ever raised. */
const PV = 'pv-x';
const PW = 'withdraw-matching-password-0123';
let session = { cookie: '', csrf: '' };

async function as(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${f.gw.adminUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', cookie: session.cookie, 'x-csrf-token': session.csrf },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

interface Planned {
  plannedVisitId: string;
  status: string;
  executedKeys: string[];
}
interface Alert {
  plannedVisitId: string;
  kind: string;
  clearedAtMs: number | null;
}

const planDate = () => localParts(Date.now() - 110 * 60_000).date;
const match = async (): Promise<Planned | undefined> => {
  const r = await f.call('GET', `/api/plan/matches?from=${planDate()}&to=${planDate()}`, ADMIN_TOKEN);
  expect(r.status).toBe(200);
  return (r.body as { matches: Planned[] }).matches.find((m) => m.plannedVisitId === PV);
};
const dayEntry = async (): Promise<Planned | undefined> => {
  const r = await as('GET', `/api/day?date=${planDate()}`);
  expect(r.status).toBe(200);
  return (r.body.planned as Planned[]).find((p) => p.plannedVisitId === PV);
};
const openAlerts = async (): Promise<Alert[]> =>
  (
    (await f.call('GET', '/api/plan/alerts?state=open', ADMIN_TOKEN)).body as { alerts: Alert[] }
  ).alerts.filter((a) => a.plannedVisitId === PV);

/** Reads the day view's event stream until `until` holds for pv-x (bounded by the deadline). */
async function streamUntil(until: (p: Planned | undefined) => boolean, ms: number): Promise<Planned[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  const seen: Planned[] = [];
  try {
    const res = await fetch(`${f.gw.adminUrl}/api/day/stream?date=${planDate()}`, {
      headers: { cookie: session.cookie },
      signal: ac.signal,
    });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (let i = 0; i < 1000; i++) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const data = frame.split('\n').find((l) => l.startsWith('data: '));
        if (!frame.includes('event: day') || !data) continue;
        const view = JSON.parse(data.slice(6)) as { planned: Planned[] };
        const p = view.planned.find((x) => x.plannedVisitId === PV);
        if (p) seen.push(p);
        if (until(p)) return seen;
      }
    }
    throw new Error(`the stream ended without the change: ${JSON.stringify(seen)}`);
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

beforeAll(async () => {
  f = await startFixture();
  await f.gw.access.service.createUser('test', {
    name: 'anna',
    displayName: 'Anna',
    role: 'coordinator',
    areas: ['area-a'],
    provider: 'p-1',
    staffRef: null,
    password: PW,
  });
  const res = await fetch(`${f.gw.adminUrl}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'anna', password: PW }),
  });
  expect(res.status).toBe(200);
  session = {
    cookie: (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '',
    csrf: ((await res.json()) as { csrf: string }).csrf,
  };
  // The fixture's first tick ran before the taps arrived, so pv-a's alerts were raised and cleared; an
  // alert is raised at most once (its webhook key), so a plan of its own shows the alert rules here.
  const at = localParts(Date.now() - 115 * 60_000);
  const r = await f.gw.care.plan.importPlan({
    areaId: 'area-a',
    fromDate: at.date,
    toDate: at.date,
    dryRun: false,
    actor: 'test',
    source: 'api',
    rows: [{ plannedVisitId: PV, clientRef: 'cl-a', date: at.date, start: at.time, plannedMinutes: 30 }],
  });
  expect(r.ok).toBe(true);
  await f.gw.care.plan.tick();
}, 60_000);

afterAll(async () => {
  await f?.stop();
});

describe('plan matching skips withdrawn visits', () => {
  it('withdrawing the only visit of a planned visit unmatches it at once; an added visit matches it', async () => {
    const key = `rd-a/${f.visitA}`;
    expect((await match())?.executedKeys).toEqual([key]);
    expect((await dayEntry())?.executedKeys).toEqual([key]);
    expect(await openAlerts()).toEqual([]);

    // rd-a's other visit (the unknown card's tap) would take pv-x next: it is a mistake too, withdrawn first
    const other = 'rd-a-v2';
    for (const v of [other, f.visitA]) {
      expect((await as('POST', `/api/visits/${v}/close`, { reason: 'fel brukare' })).status).toBe(200);
    }
    const w2 = await as('POST', `/api/visits/${other}/withdraw`, { reasonCode: 'tap-by-mistake' });
    expect(w2.status).toBe(201);
    await f.gw.care.plan.tick(); // whatever it started has run: pv-x keeps its own visit
    expect((await match())?.executedKeys).toEqual([key]);
    // the live day view is open while the visit is withdrawn
    const live = streamUntil((p) => p !== undefined && p.executedKeys.length === 0, 20_000);
    const w = await as('POST', `/api/visits/${f.visitA}/withdraw`, {
      reasonCode: 'tap-by-mistake',
      note: 'blippade hos fel brukare',
    });
    expect(w.status).toBe(201);

    const seen = await live;
    expect(seen[0]?.executedKeys).toEqual([key]);
    const last = seen[seen.length - 1];
    expect(['pending', 'missed']).toContain(last?.status);
    const unmatched = await waitUntil(async () => {
      const m = await match();
      return m && m.executedKeys.length === 0 ? m : null;
    }, 10_000);
    expect(['pending', 'missed']).toContain(unmatched.status);
    expect((await dayEntry())?.executedKeys).toEqual([]);
    // no later tick was needed: the withdrawal itself ran the alert rules (late or missed, as due)
    const alerts = await waitUntil(async () => {
      const a = await openAlerts();
      return a.length ? a : null;
    }, 10_000);
    expect(['late', 'missed']).toContain(alerts[0]?.kind);
    // the withdrawn visit is no longer an unplanned visit of the client either
    const m = await f.call('GET', `/api/plan/matches?from=${planDate()}&to=${planDate()}`, ADMIN_TOKEN);
    expect(JSON.stringify((m.body as { unplanned: unknown[] }).unplanned)).not.toContain(f.visitA);

    // the coordinator adds the visit that really happened: it matches pv-x and the alert clears
    const startMs = Date.now() - 108 * 60_000;
    const added = await as('POST', '/api/visits/manual', {
      clientRef: 'cl-a',
      staffRef: 'st-a',
      startedAt: new Date(startMs).toISOString(),
      endedAt: new Date(startMs + 25 * 60_000).toISOString(),
      reasonCode: 'forgot-card',
    });
    expect(added.status).toBe(201);
    const addedKey = `manual/${(added.body.visit as { visitId: string }).visitId}`;
    const rematched = await waitUntil(async () => {
      const p = await dayEntry();
      return p && p.executedKeys.length ? p : null;
    }, 10_000);
    expect(rematched.executedKeys).toEqual([addedKey]);
    expect(['matched', 'late']).toContain(rematched.status);
    expect((await match())?.executedKeys).toEqual([addedKey]);
    await waitUntil(async () => ((await openAlerts()).length === 0 ? true : null), 10_000);
  }, 60_000);
});
