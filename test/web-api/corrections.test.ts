import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VisitEvent } from '../../protocol/index.js';
import { startFakeBackend, type FakeBackend } from '../../simulator/fake-backend.js';
import { ADMIN_TOKEN, dbOf, waitUntil } from '../gateway/helpers.js';
import { BACKEND_SECRET, startFixture, type Fixture } from './fixture.js';

/**
 * The corrections workflow on a real gateway with a real (fake) planning backend that checks the
 * webhook signature: a coordinator logged in with a password corrects a visit's times with a reason
 * code; the original stays; the audit log names the person; the backend receives `visit.corrected`
 * exactly once per correction (a resent form makes no second one); the executed-time report reads the
 * corrected times.
 */
type Corrected = Extract<VisitEvent, { type: 'visit.corrected' }>;
let f: Fixture;
let backend: FakeBackend;
let session: { cookie: string; csrf: string };
const PASSWORD = 'anna-password-0123456789';

async function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${f.gw.adminUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: session.cookie, 'x-csrf-token': session.csrf },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const corrected = (): Corrected[] =>
  backend.received().filter((e): e is Corrected => e.type === 'visit.corrected');

beforeAll(async () => {
  backend = await startFakeBackend({ secret: BACKEND_SECRET });
  f = await startFixture({ backendUrl: backend.url });
  await f.gw.access.service.createUser('test', {
    name: 'anna',
    displayName: 'Anna Samordnare',
    role: 'coordinator',
    areas: ['area-a'],
    provider: 'p-2',
    password: PASSWORD,
  });
  const res = await fetch(`${f.gw.adminUrl}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'anna', password: PASSWORD }),
  });
  expect(res.status).toBe(200);
  session = {
    cookie: (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '',
    csrf: ((await res.json()) as { csrf: string }).csrf,
  };
}, 60_000);

afterAll(async () => {
  await f?.stop();
  await backend?.close();
});

describe('visit corrections', () => {
  let originalStart = 0;
  let firstId = 0;

  it('corrects a start time with a reason, keeps the original, audits the person, sends visit.corrected once', async () => {
    const open = (await f.call('GET', '/api/visits?state=open', ADMIN_TOKEN)).body as {
      visits: { visitId: string; startedAtMs: number }[];
    };
    originalStart = open.visits.find((v) => v.visitId === f.visitA2)?.startedAtMs ?? 0;
    expect(originalStart).toBeGreaterThan(0);
    const newStart = new Date(originalStart - 7 * 60_000).toISOString();
    const body = {
      startedAt: newStart,
      reasonCode: 'wrong-time',
      note: 'kortet lästes sent',
      requestId: 'form-0001',
    };
    const r = await post(`/api/visits/${f.visitA2}/corrections`, body);
    expect(r.status).toBe(201);
    const c = r.body.correction as { correctionId: number; actor: string; before: { startedAtMs: number } };
    firstId = c.correctionId;
    expect(c.actor).toBe('user:anna');
    expect(c.before.startedAtMs).toBe(originalStart);

    // the same form sent again (a double click, a retry): the same correction, no second one
    const again = await post(`/api/visits/${f.visitA2}/corrections`, body);
    expect(again.status).toBe(200);
    expect((again.body.correction as { correctionId: number }).correctionId).toBe(firstId);

    // the visit now has the corrected start
    const now = (await f.call('GET', '/api/visits?state=open', ADMIN_TOKEN)).body as {
      visits: { visitId: string; startedAtMs: number }[];
    };
    expect(now.visits.find((v) => v.visitId === f.visitA2)?.startedAtMs).toBe(Date.parse(newStart));

    // the backend gets exactly one signed visit.corrected with the real person and both times
    const [ev] = await waitUntil(() => (corrected().length > 0 ? corrected() : null), 15_000);
    expect(ev).toMatchObject({
      type: 'visit.corrected',
      idempotencyKey: `vt1:corrected:${firstId}`,
      correctionId: firstId,
      visitId: f.visitA2,
      readerId: 'rd-a2',
      clientRef: 'cl-a2',
      staffRef: 'st-a',
      reasonCode: 'wrong-time',
      note: 'kortet lästes sent',
      correctedBy: 'user:anna',
      before: { startedAt: new Date(originalStart).toISOString(), endedAt: null },
      after: { startedAt: newStart, endedAt: null },
    });
    expect(backend.rejectedSignatures).toBe(0);
    expect(backend.invalidBatches).toBe(0);

    // the audit log names Anna, with the reason and before/after; the generic route entry is not doubled
    const audit = (await f.call('GET', '/api/audit?limit=1000', ADMIN_TOKEN)).body as {
      entries: {
        actor: string;
        action: string;
        target: string;
        reason: string;
        before: unknown;
        after: unknown;
      }[];
    };
    const mine = audit.entries.filter((e) => e.action === 'visit.correct');
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      actor: 'user:anna',
      target: `visit:rd-a2/${f.visitA2}`,
      reason: 'wrong-time: kortet lästes sent',
      before: { startedAt: new Date(originalStart).toISOString(), correctionId: firstId },
      after: { startedAt: newStart },
    });
    expect(audit.entries.filter((e) => e.action.includes('/corrections'))).toEqual([]);
  });

  it('refuses what is not a correction, with a message that says what to do', async () => {
    const end = new Date(Date.now() - 60_000).toISOString();
    const open = await post(`/api/visits/${f.visitA2}/corrections`, {
      endedAt: end,
      reasonCode: 'missed-tap',
    });
    expect(open.status).toBe(409);
    expect(String(open.body.detail)).toMatch(/close it first/);
    const noReason = await post(`/api/visits/${f.visitA2}/corrections`, { startedAt: end });
    expect(noReason.status).toBe(400);
    const future = await post(`/api/visits/${f.visitA2}/corrections`, {
      startedAt: new Date(Date.now() + 3_600_000).toISOString(),
      reasonCode: 'wrong-time',
    });
    expect(future.status).toBe(400);
    // a visit of another area reads as absent
    const foreign = await post(`/api/visits/${f.visitB}/corrections`, {
      startedAt: end,
      reasonCode: 'wrong-time',
    });
    expect(foreign.status).toBe(404);
    const theirs = (await f.call('GET', `/api/visits/${f.visitB}/corrections`, ADMIN_TOKEN)).body as {
      corrections: unknown[];
    };
    expect(theirs.corrections).toEqual([]);
  });

  it('closes, then corrects the missed stop; the report reads the corrected times; the original stays', async () => {
    const closed = await post(`/api/visits/${f.visitA2}/close`, { reason: 'glömd utstämpling' });
    expect(closed.status).toBe(200);
    const list0 = (await f.call('GET', '/api/visits?state=recent', ADMIN_TOKEN)).body as {
      visits: { visitId: string; startedAtMs: number; endedAtMs: number }[];
    };
    const start = list0.visits.find((v) => v.visitId === f.visitA2)?.startedAtMs ?? 0;
    const end = new Date(start + 45 * 60_000).toISOString();
    const r = await post(`/api/visits/${f.visitA2}/corrections`, {
      endedAt: end,
      reasonCode: 'missed-tap',
      requestId: 'form-0002',
    });
    expect(r.status).toBe(201);
    const secondId = (r.body.correction as { correctionId: number }).correctionId;
    expect(secondId).toBeGreaterThan(firstId);

    const history = (await f.call('GET', `/api/visits/${f.visitA2}/corrections`, ADMIN_TOKEN)).body as {
      corrections: { correctionId: number; before: { startedAtMs: number } }[];
    };
    expect(history.corrections.map((c) => c.correctionId)).toEqual([firstId, secondId]);
    expect(history.corrections[0]?.before.startedAtMs).toBe(originalStart); // the original is kept

    // the executed-time report reads 45 corrected minutes for client cl-a2's visit (alone at its reader)
    const rep = await f.call(
      'GET',
      `/api/reports/executed?from=${f.today}&to=${f.today}&period=range&by=client`,
      ADMIN_TOKEN,
    );
    expect(rep.status).toBe(200);
    const rows = (rep.body as { rows: { clientRef: string; executedMinutes: number }[] }).rows;
    expect(rows.find((x) => x.clientRef === 'cl-a2')?.executedMinutes).toBe(45);

    // exactly once per correction at the backend
    await waitUntil(() => corrected().length >= 2, 15_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(corrected().map((e) => e.correctionId)).toEqual([firstId, secondId]);
    expect(corrected()[1]?.after.durationMs).toBe(45 * 60_000);
    expect(backend.duplicates).toBe(0);

    // corrections are append-only in the database too
    const db = dbOf(f.gw, 'write');
    try {
      expect(() => db.prepare('UPDATE visit_corrections SET actor = ?').run('x')).toThrow(/append-only/);
      expect(() => db.prepare('DELETE FROM visit_corrections').run()).toThrow(/append-only/);
    } finally {
      db.close();
    }
  });

  it('lists the reason codes with Swedish and English labels', async () => {
    const r = (await f.call('GET', '/api/corrections/reasons', ADMIN_TOKEN)).body as {
      reasons: { code: string; sv: string; en: string }[];
    };
    expect(r.reasons.map((x) => x.code)).toEqual([
      'missed-tap',
      'wrong-time',
      'forgot-card',
      'reader-fault',
      'other',
      'tap-by-mistake',
    ]);
  });
});
