import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { CarePlan } from '../../gateway/src/care/service.js';
import { localToUtcMs } from '../../gateway/src/care/time.js';
import type { Alert } from '../../gateway/src/store/care-model.js';
import type { CareStore } from '../../gateway/src/store/care.js';
import { buildDayView, type DayViewDeps } from '../../gateway/src/dayview/service.js';
import type { Clock } from '../../protocol/index.js';

/**
 * The care plan's store port (gateway/src/store/care.ts) through its interface, and the care plan's
 * service over it: registries, plan versions and conflicts, matching of executed visits, reasons, and the
 * alert tick (each (plan, kind) raised once, its webhook event queued once by key). Run over SQLite
 * (store-sqlite.contract.test.ts) and PostgreSQL (store-postgres.contract.test.ts).
 */
export interface CareStoreHarness {
  store: CareStore;
  /** Writes a row into the gateway's `visits` table as the visits engine would. */
  putVisit(v: {
    readerId: string;
    visitId: string;
    clientRef: string;
    startedAtMs: number;
    endedAtMs?: number;
    updatedAtMs: number;
  }): Promise<void>;
  /** Idempotency keys of the outbox rows, in id order. */
  outboxKeys(): Promise<string[]>;
  /** The day view's scoped reads on this engine (store/sqlite/scope.ts, store/postgres/care.ts). */
  day: Pick<DayViewDeps, 'visits' | 'clients'>;
  close(): Promise<void>;
}

/** The visits row the engine would write ('?' placeholders; the PostgreSQL harness numbers them). */
export function putVisitRow(
  run: (text: string, params: unknown[]) => unknown,
  v: Parameters<CareStoreHarness['putVisit']>[0],
): unknown {
  return run(
    `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms, start_seq,
       ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, updated_at_ms)
     VALUES (?, ?, ?, ?, ?, NULL, ?, ?, 1, ?, ?, ?, 'synced', '[]', ?)
     ON CONFLICT (reader_id, visit_id) DO UPDATE SET client_ref = excluded.client_ref, state = excluded.state,
       started_at_ms = excluded.started_at_ms, ended_at_ms = excluded.ended_at_ms, end_reason = excluded.end_reason,
       updated_at_ms = excluded.updated_at_ms`,
    [
      v.readerId,
      v.visitId,
      v.clientRef,
      `c1_${'0'.repeat(32)}`,
      `s-${v.visitId}`,
      v.endedAtMs ? 'closed' : 'open',
      v.startedAtMs,
      v.endedAtMs ?? null,
      v.endedAtMs ? 2 : null,
      v.endedAtMs ? 'tap' : null,
      v.updatedAtMs,
    ],
  );
}

const D = '2026-10-25';
const TZ = 'Europe/Stockholm';
const at = (time: string) => localToUtcMs(D, time, TZ);

function clockAt(ms: number): Clock & { set(ms: number): void } {
  let now = ms;
  return {
    now: () => now,
    monotonic: () => now,
    setTimeout: () => ({}) as never,
    clearTimeout: () => undefined,
    set: (t) => {
      now = t;
    },
  };
}

const rows = [
  { plannedVisitId: 'pv-a', clientRef: 'k-1', date: D, start: '08:00', plannedMinutes: 30 },
  { plannedVisitId: 'pv-b', clientRef: 'k-2', date: D, start: '09:00', plannedMinutes: 30, staffCount: 2 },
  { plannedVisitId: 'pv-c', clientRef: 'k-3', date: D, start: '08:30', plannedMinutes: 30 },
];

export function describeCareStoreContract(name: string, factory: () => Promise<CareStoreHarness>): void {
  describe(`CareStore contract (${name})`, () => {
    let h: CareStoreHarness | undefined;
    afterEach(async () => {
      await h?.close();
      h = undefined;
    });

    async function setup() {
      h = await factory();
      const clock = clockAt(at('06:00'));
      const plan = new CarePlan({
        store: h.store,
        clock,
        logger: pino({ level: 'silent' }),
        config: { alerts: { lateAfterMinutes: 15, missedAfterMinutes: 60, liveHorizonMinutes: 360 } },
      });
      const r = await plan.importPlan({
        areaId: 'north',
        fromDate: D,
        toDate: D,
        dryRun: false,
        actor: 'coord',
        source: 'api',
        rows,
      });
      expect(r.ok).toBe(true);
      return { h, clock, plan, versionId: r.planVersionId! };
    }

    it('keeps registries and answers them by area', async () => {
      h = await factory();
      await h.store.upsertRegistry(
        {
          areas: [{ areaId: 'north', name: 'Norr', lateAfterMinutes: 20, missedAfterMinutes: null }],
          clients: [
            { clientRef: 'k-1', areaId: 'north' },
            { clientRef: 'k-2', areaId: 'south' },
          ].map((c) => ({
            ...c,
            teamId: null,
            providerId: 'p1',
            birthYear: null,
            kkikEligible: null,
            decisionTypes: [],
            careContactStaffRef: null,
            palliative: false,
            activeFrom: '2026-01-01',
            activeTo: null,
            absences: [],
          })),
          serviceCodes: [{ code: 'SC1', label: 'Dusch', kind: 'personal-care', standardMinutes: 20 }],
        },
        1_000,
      );
      expect((await h.store.listAreas()).map((a) => [a.areaId, a.lateAfterMinutes])).toEqual([['north', 20]]);
      expect((await h.store.listClients()).map((c) => c.clientRef)).toEqual(['k-1', 'k-2']);
      expect((await h.store.listClients('south')).map((c) => c.clientRef)).toEqual(['k-2']);
      expect((await h.store.listServiceCodes()).map((c) => c.code)).toEqual(['SC1']);
      // an upsert replaces
      await h.store.upsertRegistry(
        { areas: [{ areaId: 'north', name: 'N', lateAfterMinutes: 5, missedAfterMinutes: 9 }] },
        2_000,
      );
      expect((await h.store.listAreas()).map((a) => [a.name, a.missedAfterMinutes])).toEqual([['N', 9]]);
    });

    it('replaces an area plan by version; an id active in another area is refused and nothing is kept', async () => {
      const { h, plan, versionId } = await setup();
      expect((await h.store.plansOfVersion(versionId)).map((p) => p.plannedVisitId)).toEqual([
        'pv-a',
        'pv-c',
        'pv-b',
      ]);
      const again = await plan.importPlan({
        areaId: 'north',
        fromDate: D,
        toDate: D,
        dryRun: false,
        actor: 'coord',
        source: 'api',
        rows: rows.slice(0, 2),
      });
      expect(again).toMatchObject({ ok: true, replaced: 3 });
      const versions = await h.store.planVersions('north');
      expect(versions.map((v) => [v.visitCount, v.supersedes])).toEqual([
        [3, []],
        [2, [versionId]],
      ]);
      const active = await h.store.activePlans({ fromMs: at('00:00'), toMs: at('23:00') });
      expect(active.map((p) => p.plannedVisitId)).toEqual(['pv-a', 'pv-b']);
      expect((await h.store.plannedVisit('pv-c'))?.plannedVisitId ?? null).toBe(null);
      const conflict = await plan.importPlan({
        areaId: 'south',
        fromDate: D,
        toDate: D,
        dryRun: false,
        actor: 'coord',
        source: 'api',
        rows: [{ plannedVisitId: 'pv-a', clientRef: 'k-9', date: D, start: '10:00', plannedMinutes: 30 }],
      });
      expect(conflict.ok).toBe(false);
      expect(conflict.errors[0]?.reason).toContain('area north');
      expect((await h.store.planVersions()).length).toBe(2);
      expect(await h.store.clientsWithPlans({ fromMs: at('00:00'), toMs: at('23:00') })).toEqual([
        'k-1',
        'k-2',
      ]);
    });

    it('matches executed visits as they change, re-matches the old place of a corrected one', async () => {
      const { h, plan, clock } = await setup();
      await h.putVisit({
        readerId: 'r1',
        visitId: 'v1',
        clientRef: 'k-1',
        startedAtMs: at('08:05'),
        updatedAtMs: 10,
      });
      await h.putVisit({
        readerId: 'r1',
        visitId: 'v2',
        clientRef: 'k-3',
        startedAtMs: at('13:00'),
        updatedAtMs: 11,
      });
      clock.set(at('14:00'));
      expect(await plan.processVisitChanges()).toBe(2);
      const m = await plan.matches({ fromMs: at('00:00'), toMs: at('23:00') });
      expect(m.map((x) => [x.plannedVisitId, x.executedKeys, x.status])).toEqual([
        ['pv-a', ['r1/v1'], 'matched'],
        ['pv-c', [], 'missed'],
        ['pv-b', [], 'missed'],
      ]);
      expect((await h.store.unplanned({ fromMs: at('00:00'), toMs: at('23:00') })).map((u) => u.key)).toEqual(
        ['r1/v2'],
      );
      expect(await h.store.getCursor()).toEqual({ updatedAtMs: 11, key: 'r1/v2' });
      // the visit was corrected to another client: k-1's plan is missed again
      await h.putVisit({
        readerId: 'r1',
        visitId: 'v1',
        clientRef: 'k-3',
        startedAtMs: at('08:35'),
        updatedAtMs: 12,
      });
      expect(await h.store.previousMatchOf(['r1/v1', 'r9/none'])).toEqual([
        { key: 'r1/v1', clientRef: 'k-1', timeMs: at('08:05') },
      ]);
      expect(await plan.processVisitChanges()).toBe(1);
      const m2 = await plan.matches({ fromMs: at('00:00'), toMs: at('23:00') });
      expect(m2.map((x) => [x.plannedVisitId, x.executedKeys])).toEqual([
        ['pv-a', []],
        ['pv-c', ['r1/v1']],
        ['pv-b', []],
      ]);
      const changed = await h.store.changedVisits(null, 10);
      expect(changed.visits.map((v) => [v.visitId, v.updatedAtMs])).toEqual([
        ['v2', 11],
        ['v1', 12],
      ]);
      expect((await h.store.changedVisits(changed.cursor, 10)).visits).toEqual([]);
    });

    it('raises each late/missed alert once, queues its event once by key, clears it when the visit starts', async () => {
      const { h, plan, clock } = await setup();
      clock.set(at('08:10'));
      expect((await plan.tick()).raise).toEqual([]);
      clock.set(at('08:16'));
      const k = (a: Alert) => `${a.plannedVisitId}:${a.kind}`;
      expect((await plan.tick()).raise.map(k)).toEqual(['pv-a:late']);
      expect((await plan.tick()).raise).toEqual([]);
      clock.set(at('09:01'));
      expect((await plan.tick()).raise.map(k)).toEqual(['pv-a:missed', 'pv-c:late']);
      await h.putVisit({
        readerId: 'r1',
        visitId: 'v1',
        clientRef: 'k-1',
        startedAtMs: at('09:20'),
        updatedAtMs: 20,
      });
      clock.set(at('09:21'));
      const c = await plan.tick();
      expect(c.clear.map((x) => `${x.plannedVisitId}:${x.kind}:${x.clearedBy}`).sort()).toEqual([
        'pv-a:late:visit-started',
        'pv-a:missed:visit-started',
      ]);
      expect(await h.store.openAlertCounts()).toEqual({ late: 2, missed: 0, understaffed: 0 });
      expect((await h.store.alerts({ open: true })).map(k).sort()).toEqual(['pv-b:late', 'pv-c:late']);
      expect((await h.store.alerts({})).length).toBe(4);
      expect(await h.outboxKeys()).toEqual([
        'pa1:pv-a:late:raised',
        'pa1:pv-a:missed:raised',
        'pa1:pv-c:late:raised',
        'pa1:pv-b:late:raised',
        'pa1:pv-a:late:cleared',
        'pa1:pv-a:missed:cleared',
      ]);
    });

    it('an alert tick that decides to raise an alert raised before changes nothing (the key dedupes)', async () => {
      const { h } = await setup();
      const alert: Alert = {
        plannedVisitId: 'pv-a',
        clientRef: 'k-1',
        areaId: 'north',
        kind: 'late',
        raisedAtMs: at('08:16'),
        clearedAtMs: null,
        clearedBy: null,
        reasonCode: null,
      };
      const range = { fromMs: at('00:00'), toMs: at('23:00') };
      const first = await h.store.alertTick(range, () => ({ raise: [alert], clear: [] }));
      expect(first.raise.length).toBe(1);
      // as a second instance would, blind to the open alert (two ticks overlapping)
      const second = await h.store.alertTick(range, () => ({
        raise: [{ ...alert, raisedAtMs: at('08:17') }],
        clear: [],
      }));
      expect(second.raise).toEqual([]);
      // cleared and decided again: still not raised a second time
      await h.store.alertTick(range, () => ({
        raise: [],
        clear: [
          { plannedVisitId: 'pv-a', kind: 'late', clearedAtMs: at('08:20'), clearedBy: 'visit-started' },
        ],
      }));
      expect((await h.store.alertTick(range, () => ({ raise: [alert], clear: [] }))).raise).toEqual([]);
      expect(await h.outboxKeys()).toEqual(['pa1:pv-a:late:raised', 'pa1:pv-a:late:cleared']);
      expect((await h.store.alerts({})).map((a) => [a.raisedAtMs, a.clearedBy])).toEqual([
        [at('08:16'), 'visit-started'],
      ]);
    });

    it('a reason set on a planned visit clears its alerts and shows in the matches', async () => {
      const { h, plan, clock } = await setup();
      clock.set(at('08:16'));
      await plan.tick();
      expect(
        await plan.setReason({ plannedVisitId: 'nope', reasonCode: 'other', actor: 'c', note: '' }),
      ).toBe(false);
      expect(
        await plan.setReason({
          plannedVisitId: 'pv-a',
          reasonCode: 'client-cancelled',
          actor: 'c',
          note: 'n',
        }),
      ).toBe(true);
      const a = await h.store.alerts({});
      expect(a.map((x) => [x.plannedVisitId, x.kind, x.clearedBy, x.reasonCode])).toEqual([
        ['pv-a', 'late', 'reason-set', 'client-cancelled'],
      ]);
      const m = await plan.matches({ fromMs: at('00:00'), toMs: at('23:00') });
      expect(m.find((x) => x.plannedVisitId === 'pv-a')?.reasonCode).toBe('client-cancelled');
    });

    it('the day view over it: planned visits with live status, visits and open alerts, narrowed by scope', async () => {
      const { h, plan, clock } = await setup();
      const client = (clientRef: string, providerId: string) => ({
        clientRef,
        areaId: 'north',
        teamId: null,
        providerId,
        birthYear: null,
        kkikEligible: null,
        decisionTypes: [],
        careContactStaffRef: null,
        palliative: false,
        activeFrom: '2026-01-01',
        activeTo: null,
        absences: [],
      });
      await plan.upsertRegistry({
        areas: [{ areaId: 'north', name: 'Norr', lateAfterMinutes: null, missedAfterMinutes: null }],
        clients: [client('k-1', 'p1'), client('k-2', 'p1'), client('k-3', 'p2')],
      });
      await h.putVisit({
        readerId: 'r1',
        visitId: 'v1',
        clientRef: 'k-1',
        startedAtMs: at('08:05'),
        updatedAtMs: 30,
      });
      clock.set(at('09:20'));
      await plan.tick();
      const deps: DayViewDeps = { plan, ...h.day, now: () => clock.now() };
      const all = await buildDayView(deps, null, { date: D });
      if (!all.ok) throw new Error(all.error);
      expect(all.view.planned.map((p) => [p.plannedVisitId, p.status, p.overdue, p.executedKeys])).toEqual([
        ['pv-a', 'matched', false, ['r1/v1']],
        ['pv-c', 'pending', true, []],
        ['pv-b', 'pending', true, []],
      ]);
      expect(all.view.visits.map((v) => `${v.readerId}/${v.visitId}`)).toEqual(['r1/v1']);
      expect(all.view.alerts.map((a) => `${a.plannedVisitId}:${a.kind}`).sort()).toEqual([
        'pv-b:late',
        'pv-c:late',
      ]);
      expect(all.view.counts).toEqual({ planned: 3, started: 1, late: 0, missed: 0, openAlerts: 2 });
      const p1 = await buildDayView(deps, { areas: ['north'], provider: 'p1' }, { date: D });
      if (!p1.ok) throw new Error(p1.error);
      expect(p1.view.planned.map((p) => p.plannedVisitId)).toEqual(['pv-a', 'pv-b']);
      expect(p1.view.alerts.map((a) => a.plannedVisitId)).toEqual(['pv-b']);
      expect(p1.view.visits.length).toBe(1);
      const p2 = await buildDayView(deps, { areas: ['north'], provider: 'p2' }, { date: D });
      if (!p2.ok) throw new Error(p2.error);
      expect(p2.view.planned.map((p) => p.plannedVisitId)).toEqual(['pv-c']);
      expect(p2.view.visits).toEqual([]);
      expect(
        await buildDayView(deps, { areas: ['south'], provider: null }, { date: D, area: 'north' }),
      ).toMatchObject({
        ok: false,
        status: 404,
      });
    });
  });
}
