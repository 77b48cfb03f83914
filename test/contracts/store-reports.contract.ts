import { describe, expect, it } from 'vitest';
import type { Match, PlannedVisit } from '../../gateway/src/care/model.js';
import { applyCorrections, MemoryReportSource } from '../../gateway/src/reports/memory-source.js';
import { runExecuted, runQuality } from '../../gateway/src/reports/run.js';
import {
  collect,
  type Registries,
  type ReportSource,
  type ReportVisit,
} from '../../gateway/src/reports/source.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import { buildFixture } from '../reports/fixture.js';

/**
 * The reports' read port (gateway/src/reports/source.ts `ReportSource`) over a real store: the fixture
 * municipality of test/reports/fixture.ts (its corrections applied, two taps withdrawn) written into the
 * engine's own tables (visits, events, visit_audit, visit_corrections, the care plan's tables), then read
 * back through the port. Run over SQLite and PostgreSQL (store-reports.contract.test.ts).
 */
export interface ReportFactsInput {
  registries: Registries;
  planned: readonly PlannedVisit[];
  matches: readonly Match[];
  /** Corrections applied; `withdrawn` / `corrected` say which visit_corrections / visit_audit rows to write. */
  visits: readonly ReportVisit[];
}

export type ReportStoreFactory = (
  facts: ReportFactsInput | { visitsOnly: readonly ReportVisit[] },
  clock: ReportClock,
) => Promise<{ source: ReportSource; close(): Promise<void> }>;

export const MONDAY = '2026-03-23';
export const TO = '2026-04-05';

export function describeReportSourceContract(engine: string, make: ReportStoreFactory): void {
  const clock = new ReportClock();
  const f = buildFixture(MONDAY);
  const visits = applyCorrections(f.visits, f.corrections);
  const key = (v: { readerId: string; visitId: string }) => `${v.readerId}/${v.visitId}`;
  const sorted = <T extends { readerId: string; visitId: string }>(xs: T[]) =>
    xs.sort((a, b) => (key(a) < key(b) ? -1 : 1));
  // the link to the planned visit is the source's own business (it may carry it or not)
  const unlinked = (xs: ReportVisit[]) => xs.map(({ plannedVisitId: _p, ...v }) => v);

  describe(`ReportSource contract (${engine})`, () => {
    it('reads a window’s executed visits as recorded: corrections applied, withdrawn taps marked, late delivery, paging', async () => {
      const s = await make({ visitsOnly: visits }, clock);
      try {
        const w = clock.window(MONDAY, TO);
        const got = sorted(await collect(s.source.executed(w)));
        expect(got).toHaveLength(195); // 193 that count and 2 withdrawn taps
        expect(got.filter((v) => v.withdrawn === true)).toHaveLength(2);
        expect(unlinked(got)).toEqual(unlinked(sorted(await collect(new MemoryReportSource(f).executed(w)))));
        // only 2026-03-29 (the DST day)
        const day = clock.window('2026-03-29', '2026-03-29');
        expect((await collect(s.source.executed(day))).map(key).sort()).toEqual(
          (await collect(new MemoryReportSource(f).executed(day))).map(key).sort(),
        );
        // without the care plan: executed time only, quality still counted
        const r = await runExecuted(
          s.source,
          { fromDate: MONDAY, toDate: TO, period: 'range', groupBy: [] },
          clock,
        );
        expect(r.total).toMatchObject({
          plannedVisits: 0,
          executedVisits: 180,
          executedMinutes: 4785,
          unplanned: 180,
        });
        expect(r.quality.total).toMatchObject({
          visits: 193,
          corrected: 1,
          lateDelivered: 1,
          unknownCard: 1,
          withdrawn: 2,
        });
      } finally {
        await s.close();
      }
    });

    it('reads the registries, the plan and its matches of a window', async () => {
      const s = await make(
        { registries: f.registries, planned: f.planned, matches: f.matches, visits },
        clock,
      );
      try {
        const reg = await s.source.registries();
        const byKey = <T>(xs: T[], k: (x: T) => string) => [...xs].sort((a, b) => (k(a) < k(b) ? -1 : 1));
        expect(byKey(reg.clients, (c) => c.clientRef)).toEqual(
          byKey(f.registries.clients, (c) => c.clientRef),
        );
        expect(byKey(reg.staff, (c) => c.staffRef)).toEqual(byKey(f.registries.staff, (c) => c.staffRef));
        const w = clock.window(MONDAY, TO);
        const planned = await collect(s.source.planned(w));
        expect(planned.map((p) => p.plannedVisitId).sort()).toEqual(
          f.planned
            .filter((p) => p.startMs >= w.fromMs && p.startMs < w.toMs)
            .map((p) => p.plannedVisitId)
            .sort(),
        );
        const matches = await collect(s.source.matches(w));
        const missed = matches
          .filter((m) => m.status === 'missed')
          .map((m) => [m.plannedVisitId, m.reasonCode]);
        expect(missed.length).toBeGreaterThan(0);
        expect(missed.sort()).toEqual(
          f.matches
            .filter((m) => m.status === 'missed')
            .map((m) => [m.plannedVisitId, m.reasonCode])
            .sort(),
        );
        const q = await runQuality(s.source, { fromDate: MONDAY, toDate: TO }, clock);
        expect(q.quality.total).toMatchObject({ visits: 193, withdrawn: 2 });
        expect(q.quality.assurance.recorded).toBe(false);
      } finally {
        await s.close();
      }
    });
  });
}
