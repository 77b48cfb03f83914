/**
 * Absences in matching and alerts (issue 11): a client's registered absence (hospital, short-term stay)
 * excuses the planned visits in it (missed with a reason, no late/missed alert); a staff member's sickness
 * does not: the visit is the client's, so a substitute's visit matches it, and a visit nobody made is
 * flagged (late, then missed) until a coordinator sets a reason such as staff-ill.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Client } from '../../gateway/src/care/model.js';
import { localToUtcMs } from '../../gateway/src/care/time.js';
import { careFixture, putVisit, type CareFixture } from './helpers.js';

const D = '2026-11-24';
const at = (date: string, time: string) => localToUtcMs(date, time, 'Europe/Stockholm');
const day = { fromMs: at(D, '00:00'), toMs: at('2026-11-25', '00:00') };

const client = (clientRef: string, absences: Client['absences'] = []): Client => ({
  clientRef,
  areaId: 'north',
  teamId: null,
  providerId: 'kommunen',
  birthYear: 1936,
  kkikEligible: null,
  decisionTypes: ['personal-care'],
  careContactStaffRef: null,
  palliative: false,
  activeFrom: '2026-01-01',
  activeTo: null,
  absences,
});

describe('absences in matching and alerts', () => {
  let f: CareFixture | undefined;
  afterEach(() => f?.close());

  async function setup(absences: Client['absences']) {
    f = careFixture(at(D, '06:00'), {
      alerts: { lateAfterMinutes: 15, missedAfterMinutes: 60, liveHorizonMinutes: 360 },
    });
    await f.plan.upsertRegistry({
      providers: [{ providerId: 'kommunen', name: 'Hemtjänsten', kind: 'municipal' }],
      areas: [{ areaId: 'north', name: 'Norr', lateAfterMinutes: null, missedAfterMinutes: null }],
      clients: [client('k-1', absences), client('k-2')],
      staff: [
        {
          staffRef: 's1',
          teamId: null,
          areaId: 'north',
          category: 'care',
          activeFrom: '2026-01-01',
          activeTo: null,
        },
        {
          staffRef: 's9',
          teamId: null,
          areaId: 'north',
          category: 'substitute',
          activeFrom: '2026-01-01',
          activeTo: null,
        },
      ],
    });
    const r = await f.plan.importPlan({
      areaId: 'north',
      fromDate: D,
      toDate: D,
      dryRun: false,
      actor: 'coord',
      source: 'api',
      rows: [
        {
          plannedVisitId: 'pv-1',
          clientRef: 'k-1',
          date: D,
          start: '08:00',
          plannedMinutes: 30,
          staffRefs: ['s1'],
        },
        {
          plannedVisitId: 'pv-2',
          clientRef: 'k-2',
          date: D,
          start: '08:00',
          plannedMinutes: 30,
          staffRefs: ['s1'],
        },
        {
          plannedVisitId: 'pv-3',
          clientRef: 'k-2',
          date: D,
          start: '12:00',
          plannedMinutes: 30,
          staffRefs: ['s1'],
        },
      ],
    });
    expect(r.errors).toEqual([]);
    return f;
  }

  const alertsOf = async (fx: CareFixture) =>
    (await fx.plan.store.alerts({ open: false }))
      .map((a) => `${a.plannedVisitId}:${a.kind}:${a.clearedBy ?? 'open'}:${a.reasonCode ?? '-'}`)
      .sort();

  it('a client in hospital: the planned visit is missed with reason client-in-hospital and never alerted', async () => {
    const f = await setup([{ from: '2026-11-23', to: '2026-11-26', kind: 'hospital' }]);
    f.clock.set(at(D, '10:00'));
    const change = await f.plan.tick();
    expect(change.raise.map((a) => `${a.plannedVisitId}:${a.kind}`).sort()).toEqual([
      'pv-2:late',
      'pv-2:missed',
    ]);
    const m = await f.plan.matches({ ...day, clientRef: 'k-1' });
    expect(m[0]).toMatchObject({
      plannedVisitId: 'pv-1',
      status: 'missed',
      reasonCode: 'client-in-hospital',
    });
    // Even before its window ends it reads as excused, not pending.
    f.clock.set(at(D, '11:50'));
    await f.plan.upsertRegistry({ clients: [client('k-2', [{ from: D, to: D, kind: 'short-term-stay' }])] });
    const m2 = await f.plan.matches({ ...day, clientRef: 'k-2' });
    expect(m2.map((x) => [x.plannedVisitId, x.status, x.reasonCode])).toEqual([
      ['pv-2', 'missed', 'other'],
      ['pv-3', 'missed', 'other'],
    ]);
    // The absence registered after the alerts clears them with its reason.
    await f.plan.tick();
    expect(await alertsOf(f)).toEqual(['pv-2:late:reason-set:other', 'pv-2:missed:reason-set:other']);
  });

  it('a client who came home early and was visited: the visit matches as usual', async () => {
    const f = await setup([{ from: D, to: D, kind: 'hospital' }]);
    putVisit(
      f.db,
      { readerId: 'r1', visitId: 'v1', clientRef: 'k-1', staffRef: 's1', startedAtMs: at(D, '08:05') },
      at(D, '08:05'),
    );
    f.clock.set(at(D, '08:06'));
    await f.plan.tick();
    const m = await f.plan.matches({ ...day, clientRef: 'k-1' });
    expect(m[0]).toMatchObject({ status: 'matched', executedKeys: ['r1/v1'], reasonCode: null });
  });

  it("the planned staff member is ill: a substitute's visit matches; a visit nobody made is flagged until staff-ill is set", async () => {
    const f = await setup([]);
    // s1 is ill; the substitute s9 takes pv-2 (a little late), nobody takes pv-1's client k-1 (not absent).
    putVisit(
      f.db,
      { readerId: 'r2', visitId: 'v2', clientRef: 'k-2', staffRef: 's9', startedAtMs: at(D, '08:10') },
      at(D, '08:10'),
    );
    f.clock.set(at(D, '09:01'));
    await f.plan.tick();
    const k2 = await f.plan.matches({ ...day, clientRef: 'k-2' });
    expect(k2[0]).toMatchObject({ plannedVisitId: 'pv-2', status: 'matched', executedKeys: ['r2/v2'] });
    expect(await alertsOf(f)).toEqual(['pv-1:late:open:-', 'pv-1:missed:open:-']);
    await f.plan.setReason({
      plannedVisitId: 'pv-1',
      reasonCode: 'staff-ill',
      actor: 'coord',
      note: 's1 ill',
    });
    expect(await alertsOf(f)).toEqual(['pv-1:late:reason-set:staff-ill', 'pv-1:missed:reason-set:staff-ill']);
    const k1 = await f.plan.matches({ ...day, clientRef: 'k-1' });
    expect(k1[0]).toMatchObject({ status: 'missed', reasonCode: 'staff-ill' });
  });
});
