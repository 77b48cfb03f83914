import { afterEach, describe, expect, it } from 'vitest';
import { localToUtcMs } from '../../gateway/src/care/time.js';
import { careFixture, putVisit, type CareFixture } from './helpers.js';

const D = '2026-10-25'; // the autumn DST change day, on purpose
const at = (date: string, time: string) => localToUtcMs(date, time, 'Europe/Stockholm');

interface OutRow {
  idempotency_key: string;
  type: string;
  event_json: string;
}

describe('live alerts on a fake clock', () => {
  let f: CareFixture | undefined;
  afterEach(() => f?.close());

  const outbox = () =>
    (f!.db.prepare(`SELECT idempotency_key, type, event_json FROM outbox ORDER BY id`).all() as OutRow[]).map(
      (r) => r.idempotency_key,
    );

  async function setup() {
    f = careFixture(at(D, '06:00'), {
      alerts: { lateAfterMinutes: 15, missedAfterMinutes: 60, liveHorizonMinutes: 360 },
    });
    const r = await f.plan.importPlan({
      areaId: 'north',
      fromDate: D,
      toDate: D,
      dryRun: false,
      actor: 'coord',
      source: 'api',
      rows: [
        { plannedVisitId: 'pv-a', clientRef: 'k-1', date: D, start: '08:00', plannedMinutes: 30 },
        {
          plannedVisitId: 'pv-b',
          clientRef: 'k-2',
          date: D,
          start: '09:00',
          plannedMinutes: 30,
          staffCount: 2,
        },
        { plannedVisitId: 'pv-c', clientRef: 'k-3', date: D, start: '08:30', plannedMinutes: 30 },
      ],
    });
    expect(r.ok).toBe(true);
    return f;
  }

  it('late, then missed, then cleared when the visit starts; each event once by key', async () => {
    const f = await setup();
    f.clock.set(at(D, '08:10'));
    expect((await f.plan.tick()).raise).toEqual([]);
    f.clock.set(at(D, '08:16'));
    expect((await f.plan.tick()).raise.map((a) => `${a.plannedVisitId}:${a.kind}`)).toEqual(['pv-a:late']);
    f.clock.set(at(D, '09:01'));
    expect((await f.plan.tick()).raise.map((a) => `${a.plannedVisitId}:${a.kind}`)).toEqual([
      'pv-a:missed',
      'pv-c:late',
    ]);
    // The visit starts at last (late, inside the matching window): both alerts clear.
    putVisit(
      f.db,
      { readerId: 'r1', visitId: 'v1', clientRef: 'k-1', staffRef: 's1', startedAtMs: at(D, '09:20') },
      at(D, '09:20'),
    );
    f.clock.set(at(D, '09:21'));
    const c = await f.plan.tick();
    expect(c.clear.map((x) => `${x.plannedVisitId}:${x.kind}:${x.clearedBy}`).sort()).toEqual([
      'pv-a:late:visit-started',
      'pv-a:missed:visit-started',
    ]);
    // Ticking again, or the same minute twice, sends nothing new.
    await f.plan.tick();
    await f.plan.tick();
    const keys = outbox();
    expect(keys).toEqual([
      'pa1:pv-a:late:raised',
      'pa1:pv-a:missed:raised',
      'pa1:pv-c:late:raised',
      'pa1:pv-b:late:raised', // 09:00 + 15 min, nobody yet
      'pa1:pv-a:late:cleared',
      'pa1:pv-a:missed:cleared',
    ]);
    const cleared = JSON.parse(
      (
        f.db
          .prepare(`SELECT event_json FROM outbox WHERE idempotency_key = 'pa1:pv-a:late:cleared'`)
          .get() as OutRow
      ).event_json,
    ) as Record<string, unknown>;
    expect(cleared).toMatchObject({
      type: 'plan.alert.cleared',
      visitId: 'v1',
      clearedBy: 'visit-started',
      plannedStart: '2026-10-25T07:00:00.000Z',
    });
    expect(
      (await f.plan.store.alerts({ open: true })).map((a) => `${a.plannedVisitId}:${a.kind}`).sort(),
    ).toEqual(['pv-b:late', 'pv-c:late']);
    const m = await f.plan.matches({
      fromMs: at(D, '00:00'),
      toMs: at('2026-10-26', '00:00'),
      clientRef: 'k-1',
    });
    expect(m[0]).toMatchObject({ status: 'late', lateMinutes: 80 });
  });

  it('understaffed for a double-staffed visit with one tap, cleared by the second staff member', async () => {
    const f = await setup();
    putVisit(
      f.db,
      { readerId: 'r2', visitId: 'w1', clientRef: 'k-2', staffRef: 's1', startedAtMs: at(D, '09:02') },
      at(D, '09:02'),
    );
    f.clock.set(at(D, '09:16'));
    expect((await f.plan.tick()).raise.map((a) => `${a.plannedVisitId}:${a.kind}`)).toContain(
      'pv-b:understaffed',
    );
    putVisit(
      f.db,
      { readerId: 'r2', visitId: 'w2', clientRef: 'k-2', staffRef: 's2', startedAtMs: at(D, '09:20') },
      at(D, '09:20'),
    );
    f.clock.set(at(D, '09:21'));
    expect((await f.plan.tick()).clear.map((x) => `${x.plannedVisitId}:${x.kind}:${x.clearedBy}`)).toEqual([
      'pv-b:understaffed:second-staff',
    ]);
  });

  it('a reason code on a missed visit clears its alerts and is kept (also across a re-import)', async () => {
    const f = await setup();
    f.clock.set(at(D, '09:31'));
    await f.plan.tick();
    expect(
      await f.plan.setReason({
        plannedVisitId: 'pv-c',
        reasonCode: 'client-in-hospital',
        actor: 'coord',
        note: '',
      }),
    ).toBe(true);
    const open = await f.plan.store.alerts({ open: false });
    expect(
      open
        .filter((a) => a.plannedVisitId === 'pv-c')
        .map((a) => [a.kind, a.clearedBy, a.reasonCode])
        .sort(),
    ).toEqual([
      ['late', 'reason-set', 'client-in-hospital'],
      ['missed', 'reason-set', 'client-in-hospital'],
    ]);
    await f.plan.importPlan({
      areaId: 'north',
      fromDate: D,
      toDate: D,
      dryRun: false,
      actor: 'coord',
      source: 'api',
      rows: [{ plannedVisitId: 'pv-c', clientRef: 'k-3', date: D, start: '08:30', plannedMinutes: 30 }],
    });
    const m = await f.plan.matches({
      fromMs: at(D, '00:00'),
      toMs: at('2026-10-26', '00:00'),
      clientRef: 'k-3',
    });
    expect(m[0]).toMatchObject({
      plannedVisitId: 'pv-c',
      status: 'missed',
      reasonCode: 'client-in-hospital',
    });
    expect(
      await f.plan.setReason({ plannedVisitId: 'nope', reasonCode: 'other', actor: 'c', note: '' }),
    ).toBe(false);
  });

  it('taps delivered three days late re-match the visit and clear its alerts', async () => {
    const f = await setup();
    f.clock.set(at(D, '09:31'));
    await f.plan.tick();
    f.clock.set(at('2026-10-28', '10:00'));
    await f.plan.tick();
    let m = await f.plan.matches({
      fromMs: at(D, '00:00'),
      toMs: at('2026-10-26', '00:00'),
      clientRef: 'k-1',
    });
    expect(m[0]!.status).toBe('missed');
    // The reader was offline: its taps of day D arrive now.
    putVisit(
      f.db,
      {
        readerId: 'r1',
        visitId: 'v9',
        clientRef: 'k-1',
        staffRef: 's1',
        startedAtMs: at(D, '08:04'),
        endedAtMs: at(D, '08:30'),
      },
      at('2026-10-28', '10:00'),
    );
    const c = await f.plan.tick();
    expect(c.clear.map((x) => `${x.plannedVisitId}:${x.kind}:${x.clearedBy}`).sort()).toEqual([
      'pv-a:late:visit-started',
      'pv-a:missed:visit-started',
    ]);
    m = await f.plan.matches({
      fromMs: at(D, '00:00'),
      toMs: at('2026-10-26', '00:00'),
      clientRef: 'k-1',
    });
    expect(m[0]).toMatchObject({ status: 'matched', executedKeys: ['r1/v9'], lateMinutes: 4 });
  });

  it('a visit corrected after matching (another client, another time) is re-matched in both places', async () => {
    const f = await setup();
    putVisit(
      f.db,
      { readerId: 'r1', visitId: 'v1', clientRef: 'k-1', staffRef: 's1', startedAtMs: at(D, '08:05') },
      at(D, '08:05'),
    );
    f.clock.set(at(D, '08:06'));
    await f.plan.tick();
    const k1 = () =>
      f.plan.matches({ fromMs: at(D, '00:00'), toMs: at('2026-10-26', '00:00'), clientRef: 'k-1' });
    const k3 = () =>
      f.plan.matches({ fromMs: at(D, '00:00'), toMs: at('2026-10-26', '00:00'), clientRef: 'k-3' });
    expect((await k1())[0]!.executedKeys).toEqual(['r1/v1']);
    // Correction: the reader was at k-3's home, and the tap was at 08:33.
    putVisit(
      f.db,
      { readerId: 'r1', visitId: 'v1', clientRef: 'k-3', staffRef: 's1', startedAtMs: at(D, '08:33') },
      at(D, '08:40'),
    );
    f.clock.set(at(D, '08:41'));
    await f.plan.tick();
    expect((await k1())[0]).toMatchObject({ executedKeys: [], status: 'pending' });
    expect((await k3())[0]).toMatchObject({ executedKeys: ['r1/v1'], status: 'matched', lateMinutes: 3 });
  });

  it('does not raise alerts for plans long past (an imported history)', async () => {
    const f = await setup();
    f.clock.set(at('2026-10-27', '12:00'));
    expect((await f.plan.tick()).raise).toEqual([]);
  });
});
