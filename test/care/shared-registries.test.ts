import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { CarePlan } from '../../gateway/src/care/service.js';
import { localToUtcMs } from '../../gateway/src/care/time.js';
import { createSqliteCareStore } from '../../gateway/src/store/sqlite/care.js';
import { careFixture, putVisit, type CareFixture } from './helpers.js';

const D = '2026-11-10';
const at = (time: string) => localToUtcMs(D, time, 'Europe/Stockholm');

/**
 * Several instances share the care tables on PostgreSQL (gateway/pg-instance.ts sets a sweep gate): an
 * instance that did not change an area's thresholds itself still matches with the new ones. Here two
 * CarePlans on one SQLite file stand for two instances; the one with a sweep gate reads the registries
 * again before an import.
 */
describe('care plan registries shared by instances', () => {
  let f: CareFixture | undefined;
  afterEach(() => f?.close());

  it("an import on another instance matches with the area's thresholds set elsewhere", async () => {
    f = careFixture(at('06:00'));
    const other = new CarePlan({
      store: createSqliteCareStore({ db: f.db }),
      clock: f.clock,
      logger: pino({ level: 'silent' }),
      sweepGate: () => Promise.resolve(false), // not the sweeper
    });
    await other.loadAreas(); // at start: no areas yet
    await f.plan.upsertRegistry({
      areas: [{ areaId: 'north', name: 'Norr', lateAfterMinutes: 30, missedAfterMinutes: null }],
    });
    putVisit(f.db, { readerId: 'r1', visitId: 'v1', clientRef: 'k-1', startedAtMs: at('08:20') }, 1);
    f.clock.set(at('08:25'));
    const r = await other.importPlan({
      areaId: 'north',
      fromDate: D,
      toDate: D,
      dryRun: false,
      actor: 'coord',
      source: 'api',
      rows: [{ plannedVisitId: 'pv-1', clientRef: 'k-1', date: D, start: '08:00', plannedMinutes: 30 }],
    });
    expect(r.ok).toBe(true);
    const m = await other.matches({ fromMs: at('00:00'), toMs: at('23:00') });
    // 20 minutes after the start: on time under the area's 30, late under the default 15
    expect(m.map((x) => [x.plannedVisitId, x.lateMinutes, x.status])).toEqual([['pv-1', 20, 'matched']]);
  });
});
