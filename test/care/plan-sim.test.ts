/**
 * The simulator driven by a care plan (simulator/plan/): a seeded plan of 60 clients and 25 staff played on
 * the real gateway and device code; every planned visit ends matched, late, understaffed or missed (with a
 * reason or alerted), no visit is matched twice, every missed visit the simulated staff caused is alerted at
 * the backend once and none is invented. The checker itself is shown to catch each kind of breach.
 */
import { describe, expect, it } from 'vitest';
import type { VisitEvent } from '../../protocol/index.js';
import { playPlan } from '../../simulator/plan/behaviour.js';
import { runPlanChecks, type ApiMatch } from '../../simulator/plan/check.js';
import { generatePlan } from '../../simulator/plan/generate.js';
import { parseSimPlan } from '../../simulator/plan/load.js';
import { runPlanSimulation } from '../../simulator/plan/run.js';
import type { PlannedOutcome } from '../../simulator/plan/types.js';

const MIN = 60_000;

describe('plan-driven simulator', () => {
  it('a seeded plan: the same seed gives the same plan and the same behaviour; the plan round-trips as a file', () => {
    const a = generatePlan({ seed: 42, clients: 60, staff: 25, days: 7 });
    const b = generatePlan({ seed: 42, clients: 60, staff: 25, days: 7 });
    expect(b).toEqual(a);
    expect(parseSimPlan(JSON.stringify(a), 'plan.json')).toEqual(a);
    expect(() => parseSimPlan('{"seed":1}', 'bad.json')).toThrow(/bad.json: not a simulator plan/);
    const p = playPlan(a, 42);
    expect(playPlan(a, 42).outcomes).toEqual(p.outcomes);
    const kinds = new Set(p.outcomes.map((o) => o.outcome));
    // The week holds every kind of thing that goes wrong, and mostly visits made.
    for (const k of ['made', 'client-absent', 'forgotten', 'overrun'] as const) expect(kinds).toContain(k);
    expect(p.outcomes.filter((o) => o.outcome === 'made').length / p.outcomes.length).toBeGreaterThan(0.85);
    expect(p.outcomes.some((o) => o.covered)).toBe(true); // an ill staff member's visit taken by another
    expect(p.outcomes.some((o) => o.staffCount === 2 && o.arrivalsMs.length === 1)).toBe(true);
    expect(p.unplanned.length).toBeGreaterThan(0);
    expect(p.ill.length).toBeGreaterThan(0);
  });

  it('the plan checks catch a missing alert, an invented alert, a visit matched twice and a wrong status', () => {
    const start = Date.UTC(2026, 10, 24, 8);
    const outcomes: PlannedOutcome[] = [
      {
        plannedVisitId: 'pv-1',
        clientRef: 'c-1',
        areaId: 'a',
        startMs: start,
        staffCount: 1,
        outcome: 'forgotten',
        arrivalsMs: [],
        staffRefs: [],
        covered: false,
      },
      {
        plannedVisitId: 'pv-2',
        clientRef: 'c-2',
        areaId: 'a',
        startMs: start,
        staffCount: 1,
        outcome: 'made',
        arrivalsMs: [start + 3 * MIN],
        staffRefs: ['s'],
        covered: false,
      },
    ];
    const match = (id: string, status: string, keys: string[]): ApiMatch => ({
      plannedVisitId: id,
      clientRef: id === 'pv-1' ? 'c-1' : 'c-2',
      status,
      executedKeys: keys,
      lateMinutes: keys.length ? 3 : null,
      reasonCode: null,
      windowEndMs: start + 120 * MIN,
    });
    const alert = (id: string, kind: 'late' | 'missed'): VisitEvent => ({
      type: 'plan.alert.raised',
      idempotencyKey: `pa1:${id}:${kind}:raised`,
      visitId: null,
      plannedVisitId: id,
      areaId: 'a',
      clientRef: 'c',
      kind,
      plannedStart: new Date(start).toISOString(),
      raisedAt: new Date(start).toISOString(),
    });
    const base = {
      outcomes,
      unplanned: [],
      apiUnplanned: [],
      thresholds: { lateAfterMinutes: 15, missedAfterMinutes: 120 },
      nowMs: start + 200 * MIN,
    };
    const good = {
      ...base,
      matches: [match('pv-1', 'missed', []), match('pv-2', 'matched', ['r/1'])],
      received: [alert('pv-1', 'late'), alert('pv-1', 'missed')],
    };
    const failed = (input: typeof good) =>
      runPlanChecks(input)
        .filter((r) => !r.ok)
        .map((r) => r.name);
    expect(failed(good)).toEqual([]);
    expect(failed({ ...good, received: [alert('pv-1', 'late')] })).toEqual([
      'plan-every-visit-resolved',
      'plan-alerts-as-caused',
    ]);
    expect(failed({ ...good, received: [...good.received, alert('pv-2', 'missed')] })).toEqual([
      'plan-alerts-as-caused',
    ]);
    expect(
      failed({ ...good, matches: [match('pv-1', 'matched', ['r/1']), match('pv-2', 'matched', ['r/1'])] }),
    ).toEqual(['plan-no-visit-matched-twice', 'plan-status-as-simulated']);
    expect(failed({ ...good, matches: [good.matches[0]!, match('pv-2', 'late', ['r/1'])] })).toEqual([
      'plan-status-as-simulated',
    ]);
  });

  it('a simulated day of 60 clients and 25 staff on the real gateway: matches and alerts as the staff caused them', async () => {
    const plan = generatePlan({ seed: 11, clients: 60, staff: 25, days: 1 });
    const r = await runPlanSimulation({ plan, seed: 11, keep: 'on-failure', stepMs: 20_000 });
    const failures = r.results.filter((c) => !c.ok && c.severity === 'invariant');
    expect(failures, JSON.stringify(failures, null, 1)).toEqual([]);
    const s = r.summary;
    expect(s.planned).toBe(plan.visits.length);
    expect(s.executed).toBeGreaterThan(s.planned * 0.8);
    expect(s.late).toBeGreaterThan(0);
    expect(s.missed).toBeGreaterThan(0);
    expect(s.alertsRaised.missed).toBeGreaterThan(0);
    expect(r.results.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        'plan-every-visit-resolved',
        'plan-no-visit-matched-twice',
        'plan-status-as-simulated',
        'plan-alerts-as-caused',
        'plan-unplanned-as-made',
      ]),
    );
  }, 300_000);
});
