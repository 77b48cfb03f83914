import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN } from '../gateway/helpers.js';
import { FOREIGN, localParts, startFixture, type Fixture } from './fixture.js';

/**
 * The live day view's backend on a real gateway: `GET /api/day` and the SSE stream `GET /api/day/stream`
 * show today's planned visits with their live status, the visits started and the open alerts, for the
 * caller's areas only; a visit turning late appears on an open stream without a reload.
 */
let f: Fixture;
let coordA: string;
let tech: string;

interface Day {
  date: string;
  planned: { plannedVisitId: string; status: string; clientRef: string; overdue: boolean }[];
  visits: { visitId: string }[];
  alerts: { plannedVisitId: string; kind: string }[];
  counts: { planned: number; late: number; missed: number; openAlerts: number };
}

beforeAll(async () => {
  f = await startFixture();
  coordA = await f.token('coord-a', 'coordinator', ['area-a'], 'p-1');
  tech = await f.token('tech', 'technician', []);
}, 60_000);

afterAll(async () => {
  await f?.stop();
});

/** Reads Server-Sent Events from a fetch body until `until` is satisfied (bounded by a deadline). */
async function readEvents(
  res: Response,
  until: (days: Day[], raw: string) => boolean,
  timeoutMs: number,
): Promise<{ days: Day[]; raw: string }> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let raw = '';
  const days: Day[] = [];
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      const chunk = await Promise.race([
        reader.read(),
        new Promise<{ done: true; value: undefined }>((r) =>
          setTimeout(() => r({ done: true, value: undefined }), Math.max(1, deadline - Date.now())),
        ),
      ]);
      if (chunk.done) break;
      raw += decoder.decode(chunk.value, { stream: true });
      let i: number;
      while ((i = raw.indexOf('\n\n')) >= 0) {
        const block = raw.slice(0, i);
        raw = raw.slice(i + 2);
        if (!block.startsWith('event: day')) continue;
        const data = block.split('\n').find((l) => l.startsWith('data: '));
        if (data) days.push(JSON.parse(data.slice(6)) as Day);
      }
      if (until(days, raw)) break;
    }
  } finally {
    await reader.cancel();
  }
  return { days, raw };
}

describe('live day view (API)', () => {
  it("answers today's planned visits, visits and alerts of the coordinator's areas only", async () => {
    const r = await f.call('GET', '/api/day', coordA);
    expect(r.status).toBe(200);
    const day = r.body as Day;
    expect(day.date).toBe(f.today);
    expect(day.planned.map((p) => p.plannedVisitId).sort()).toEqual(['pv-a', 'pv-a-late']);
    expect(day.planned.find((p) => p.plannedVisitId === 'pv-a')?.status).toBe('matched');
    // not started 20 minutes after its start (late after 15): overdue, whatever the alerts say
    expect(day.planned.map((p) => [p.plannedVisitId, p.overdue]).sort()).toEqual([
      ['pv-a', false],
      ['pv-a-late', true],
    ]);
    expect(day.alerts).toEqual([expect.objectContaining({ plannedVisitId: 'pv-a-late', kind: 'late' })]);
    expect(day.visits.map((v) => v.visitId)).toContain(f.visitA);
    expect(FOREIGN.filter((id) => r.text.includes(id))).toEqual([]);
    expect((await f.call('GET', '/api/day?area=area-b', coordA)).status).toBe(404);
    expect((await f.call('GET', '/api/day/stream?area=area-b', coordA)).status).toBe(404);
  });

  it('gives the admin every area (and one when asked), and keeps technicians out', async () => {
    const all = (await f.call('GET', '/api/day', ADMIN_TOKEN)).body as Day;
    expect(all.planned.map((p) => p.plannedVisitId).sort()).toEqual([
      'pv-a',
      'pv-a-late',
      'pv-a2',
      'pv-b',
      'pv-b-late',
    ]);
    expect(all.alerts.map((a) => `${a.plannedVisitId}:${a.kind}`).sort()).toEqual([
      'pv-a-late:late',
      'pv-b-late:late',
    ]);
    const b = (await f.call('GET', '/api/day?area=area-b', ADMIN_TOKEN)).body as Day;
    expect(b.planned.map((p) => p.plannedVisitId)).toEqual(['pv-b', 'pv-b-late']);
    expect(b.visits.map((v) => v.visitId)).toContain(f.visitB);
    expect(b.visits.every((v) => v.visitId.startsWith('rd-b-'))).toBe(true);
    expect((await f.call('GET', '/api/day', tech)).status).toBe(403);
    expect((await f.call('GET', '/api/day/stream', tech)).status).toBe(403);
  });

  it('streams a visit that turns late to an open day view, and nothing of another area', async () => {
    const res = await fetch(`${f.gw.adminUrl}/api/day/stream`, {
      headers: { authorization: `Bearer ${coordA}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const early = localParts(Date.now() - 120 * 60_000);
    const late = localParts(Date.now() - 20 * 60_000);
    const fresh = localParts(Date.now() - 17 * 60_000);
    const from = early.date < f.today ? early.date : f.today;
    const reimport = async (areaId: string, rows: Record<string, unknown>[]) => {
      const r = await f.gw.care.plan.importPlan({
        areaId,
        fromDate: from,
        toDate: f.today,
        dryRun: false,
        actor: 'test',
        source: 'api',
        rows,
      });
      expect(r.ok).toBe(true);
    };
    const row = (id: string, clientRef: string, p: { date: string; time: string }) => ({
      plannedVisitId: id,
      clientRef,
      date: p.date,
      start: p.time,
      plannedMinutes: 30,
    });
    const result = readEvents(
      res,
      (days) => days.some((d) => d.alerts.some((a) => a.plannedVisitId === 'pv-a-new' && a.kind === 'late')),
      15_000,
    );
    // after the first event: a new plan visit in A, already 17 minutes past its start, and one in B
    await new Promise((r) => setTimeout(r, 300));
    await reimport('area-a', [
      row('pv-a', 'cl-a', early),
      row('pv-a-late', 'cl-a3', late),
      row('pv-a2', 'cl-a2', early),
      row('pv-a-new', 'cl-a3', fresh),
    ]);
    await reimport('area-b', [
      row('pv-b', 'cl-b', early),
      row('pv-b-late', 'cl-b2', late),
      row('pv-b-new', 'cl-b2', fresh),
    ]);
    await f.gw.care.plan.tick();
    const { days, raw } = await result;
    expect(days.length).toBeGreaterThanOrEqual(2);
    expect(days[0]?.alerts.map((a) => a.plannedVisitId)).toEqual(['pv-a-late']);
    const last = days[days.length - 1] as Day;
    expect(last.alerts.map((a) => `${a.plannedVisitId}:${a.kind}`).sort()).toEqual([
      'pv-a-late:late',
      'pv-a-new:late',
    ]);
    expect(last.counts.openAlerts).toBe(2);
    const text = JSON.stringify(days) + raw;
    expect([...FOREIGN, 'pv-b-new'].filter((id) => text.includes(id))).toEqual([]);
  });
});
