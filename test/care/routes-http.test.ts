/**
 * The care plan's admin routes and metrics over real HTTP against a running gateway (its admin server on
 * loopback, its own SQLite file, a virtual clock the test moves): import (200 / 422 / 400 / 401), alerts
 * listed and counted in /metrics as they are raised, a reason code clearing them, matches by date.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { localToUtcMs } from '../../gateway/src/care/time.js';
import { VirtualClock } from '../../simulator/clock.js';
import { ADMIN_TOKEN, silent, tempDir, testConfig } from '../gateway/helpers.js';

const D = '2026-11-24';
const at = (time: string) => localToUtcMs(D, time, 'Europe/Stockholm');

describe('care plan admin routes and metrics over HTTP', () => {
  let gw: Gateway | undefined;
  let cleanup: (() => void) | undefined;
  afterEach(async () => {
    await gw?.stop();
    cleanup?.();
    gw = undefined;
  });

  async function start() {
    const t = tempDir('vt-care-http-');
    cleanup = t.cleanup;
    const clock = new VirtualClock({ startMs: at('06:00') });
    gw = createGateway({ config: testConfig(t.dir), logger: silent, clock });
    await gw.start();
    const base = gw.adminUrl.replace(/\/$/, '');
    const call = async (method: string, path: string, body?: unknown, token: string | null = ADMIN_TOKEN) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
    };
    const metric = async (line: string): Promise<number | null> => {
      const m = await call('GET', '/metrics');
      expect(m.status).toBe(200);
      const hit = m.text.split('\n').find((l) => l.startsWith(`${line} `));
      return hit ? Number(hit.slice(line.length + 1)) : null;
    };
    return { clock, call, metric, gw };
  }

  const plan = {
    areaId: 'north',
    fromDate: D,
    toDate: D,
    dryRun: false,
    visits: [
      { plannedVisitId: 'pv-a', clientRef: 'k-1', date: D, start: '08:00', plannedMinutes: 30 },
      { plannedVisitId: 'pv-b', clientRef: 'k-2', date: D, start: '08:30', plannedMinutes: 20 },
    ],
  };

  it('imports over HTTP: 200 with a version, 422 naming the bad row and importing nothing, 400 for a bad body, 401 without a token', async () => {
    const { call } = await start();
    expect((await call('POST', '/api/plan/import', plan, null)).status).toBe(401);
    expect((await call('POST', '/api/plan/import', { areaId: 'north' })).status).toBe(400);
    const bad = await call('POST', '/api/plan/import', {
      ...plan,
      visits: [...plan.visits, { clientRef: 'k-3', date: D, start: '25:00', plannedMinutes: 10 }],
    });
    expect(bad.status).toBe(422);
    expect(bad.json()).toMatchObject({ ok: false, errors: [{ line: 3 }] });
    expect(((await call('GET', '/api/plan/versions')).json().versions as unknown[]).length).toBe(0);
    const good = await call('POST', '/api/plan/import', plan);
    expect(good.status).toBe(200);
    expect(good.json()).toMatchObject({ ok: true, planVersionId: 1, rows: 2 });
  });

  it('alerts appear in GET /api/plan/alerts and /metrics as raised, and clear with a reason code', async () => {
    const { clock, call, metric, gw: g } = await start();
    expect((await call('POST', '/api/plan/import', plan)).status).toBe(200);
    const open = async () =>
      ((await call('GET', '/api/plan/alerts')).json().alerts as { plannedVisitId: string; kind: string }[])
        .map((a) => `${a.plannedVisitId}:${a.kind}`)
        .sort();
    expect(await open()).toEqual([]);
    await clock.advanceTo(at('08:20'));
    await g.care.plan.tick();
    expect(await open()).toEqual(['pv-a:late']);
    expect(await metric('visittag_plan_alerts_open{kind="late"}')).toBe(1);
    expect(await metric('visittag_plan_alerts_raised_total{kind="late"}')).toBe(1);
    await clock.advanceTo(at('10:05'));
    await g.care.plan.tick();
    expect(await open()).toEqual(['pv-a:late', 'pv-a:missed', 'pv-b:late']);
    expect(await metric('visittag_plan_alerts_open{kind="missed"}')).toBe(1);
    expect(await metric('visittag_plan_alerts_open{kind="late"}')).toBe(2);

    // Bad requests name the problem.
    expect((await call('GET', '/api/plan/alerts?state=closed')).status).toBe(400);
    expect((await call('POST', '/api/plan/visits/pv-a/reason', { reasonCode: 'sunny' })).status).toBe(400);
    const missing = await call('POST', '/api/plan/visits/pv-x/reason', { reasonCode: 'other' });
    expect(missing.status).toBe(404);
    expect(missing.text).toMatch(/no planned visit pv-x/);
    expect((await call('GET', '/api/plan/matches')).status).toBe(400);

    const set = await call('POST', '/api/plan/visits/pv-a/reason', {
      reasonCode: 'client-cancelled',
      note: 'called',
    });
    expect(set.status).toBe(200);
    expect(await open()).toEqual(['pv-b:late']);
    const all = (await call('GET', '/api/plan/alerts?state=all&area=north')).json().alerts as {
      plannedVisitId: string;
      kind: string;
      clearedBy: string | null;
      reasonCode: string | null;
    }[];
    expect(
      all.filter((a) => a.plannedVisitId === 'pv-a').map((a) => [a.kind, a.clearedBy, a.reasonCode]),
    ).toEqual(
      expect.arrayContaining([
        ['late', 'reason-set', 'client-cancelled'],
        ['missed', 'reason-set', 'client-cancelled'],
      ]),
    );
    expect(await metric('visittag_plan_alerts_open{kind="missed"}')).toBe(0);
    expect(await metric('visittag_plan_alerts_open{kind="late"}')).toBe(1);
    expect(await metric('visittag_plan_alerts_raised_total{kind="missed"}')).toBe(1);
    const m = (await call('GET', `/api/plan/matches?from=${D}`)).json().matches as {
      plannedVisitId: string;
      status: string;
      reasonCode: string | null;
    }[];
    expect(m.map((x) => [x.plannedVisitId, x.status, x.reasonCode])).toEqual([
      ['pv-a', 'missed', 'client-cancelled'],
      ['pv-b', 'pending', null],
    ]);
  });
});
