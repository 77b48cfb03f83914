/**
 * Property tests over the fixture municipality plus random extra visits: figures do not depend on the order
 * taps arrived in; continuity never counts a staff member twice; executed minutes per area add up to the
 * total. And a re-run after a correction changes exactly the figures the corrected visit is part of.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { continuity } from '../../gateway/src/reports/continuity.js';
import { executedVsPlanned, type Period } from '../../gateway/src/reports/executed.js';
import { MemoryReportSource } from '../../gateway/src/reports/memory-source.js';
import { dataQuality } from '../../gateway/src/reports/quality.js';
import { Lookup } from '../../gateway/src/reports/facts.js';
import { loadFacts, runContinuity, runExecuted, runStaffing } from '../../gateway/src/reports/run.js';
import type { ReportVisit } from '../../gateway/src/reports/source.js';
import { doubleStaffing } from '../../gateway/src/reports/staffing.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import { buildFixture } from './fixture.js';

const MONDAY = '2026-03-23';
const TO = '2026-04-05';
const clock = new ReportClock();
const START = Date.parse('2026-03-22T23:00:00Z'); // local midnight starting 2026-03-23
const SPAN_MIN = 14 * 24 * 60 - 60; // the period has a 23-hour day

const STAFF = ['s1', 's2', 's3', 's4', 's5', 's6', 'n1', 'r1', null] as const;
const CLIENTS = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', null] as const;

/** Extra visits at whole minutes: some double-staffed, some auto-closed, some late, some corrected, some withdrawn. */
const extraVisit = fc.record({
  client: fc.constantFrom(...CLIENTS),
  staff: fc.constantFrom(...STAFF),
  startMin: fc.integer({ min: 0, max: SPAN_MIN }),
  len: fc.integer({ min: 0, max: 180 }),
  autoClose: fc.boolean(),
  corrected: fc.boolean(),
  lateDays: fc.integer({ min: 0, max: 4 }),
  uncorrected: fc.boolean(),
  double: fc.boolean(),
  /** A coordinator withdrew the tap as a mistake (about one in five). */
  withdrawn: fc.integer({ min: 0, max: 4 }).map((x) => x === 0),
});

type Extra = typeof extraVisit extends fc.Arbitrary<infer T> ? T : never;

function materialise(extras: Extra[]): ReportVisit[] {
  const out: ReportVisit[] = [];
  extras.forEach((x, i) => {
    const startedAtMs = START + x.startMin * 60_000;
    const endedAtMs = startedAtMs + x.len * 60_000;
    const v: ReportVisit = {
      readerId: `rd-${x.client ?? 'none'}`,
      visitId: `x${i}`,
      clientRef: x.client,
      staffRef: x.staff,
      cardRef: `card-${x.staff ?? `u${i}`}`,
      groupId: x.double ? `x${i}` : null,
      state: 'closed',
      startedAtMs,
      endedAtMs,
      endReason: x.autoClose ? 'auto-close' : 'tap',
      timeQuality: x.uncorrected ? 'uncorrected' : 'synced',
      anomalies: [],
      corrected: x.corrected,
      updatedAtMs: endedAtMs,
      receivedAtMs: endedAtMs + x.lateDays * 86_400_000,
      // Of a double-staffed pair, the first or the second tap is withdrawn.
      ...(x.withdrawn && (!x.double || i % 2 === 0) ? { withdrawn: true } : {}),
    };
    out.push(v);
    if (x.double)
      out.push({
        ...v,
        visitId: `x${i}b`,
        staffRef: x.staff === 's1' ? 's2' : 's1',
        cardRef: 'card-second',
        startedAtMs: startedAtMs + 60_000,
        withdrawn: x.withdrawn && i % 2 === 1,
      });
  });
  return out;
}

/** A permutation of xs driven by random keys. */
const permute = <T>(xs: readonly T[], keys: number[]): T[] =>
  xs
    .map((x, i) => ({ x, k: keys[i % Math.max(1, keys.length)]! * 1_000_003 + i }))
    .sort((a, b) => a.k - b.k)
    .map((e) => e.x);

const base = buildFixture(MONDAY);
const PERIODS: Period[] = ['day', 'week', 'month', 'range'];

describe('report properties', () => {
  it('figures are invariant to the order visits, plans and matches arrive in', () => {
    fc.assert(
      fc.property(
        fc.array(extraVisit, { maxLength: 40 }),
        fc.array(fc.integer({ min: 0, max: 1_000_000 }), { minLength: 1, maxLength: 50 }),
        fc.constantFrom(...PERIODS),
        (extras, keys, period) => {
          const visits = [...base.visits, ...materialise(extras)];
          const facts = {
            registries: base.registries,
            planned: base.planned,
            matches: base.matches,
            executed: visits,
          };
          const shuffled = {
            registries: base.registries,
            planned: permute(base.planned, keys),
            matches: permute(base.matches, [...keys].reverse()),
            executed: permute(visits, keys),
          };
          const p = { fromDate: MONDAY, toDate: TO, period, groupBy: ['area', 'client'] as const };
          expect(executedVsPlanned(shuffled, p, clock)).toEqual(executedVsPlanned(facts, p, clock));
          expect(continuity(shuffled, { fromDate: MONDAY }, clock)).toEqual(
            continuity(facts, { fromDate: MONDAY }, clock),
          );
          expect(doubleStaffing(shuffled, p, clock)).toEqual(doubleStaffing(facts, p, clock));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('continuity never counts a staff member twice, and counts exactly the eligible staff of the window', () => {
    fc.assert(
      fc.property(fc.array(extraVisit, { maxLength: 60 }), (extras) => {
        const visits = [...base.visits, ...materialise(extras)];
        const facts = {
          registries: base.registries,
          planned: base.planned,
          matches: base.matches,
          executed: visits,
        };
        const r = continuity(facts, { fromDate: MONDAY }, clock);
        const lookup = new Lookup(base.registries);
        // The safety-alarm response (c1, 14:00 on day 3) is known as such only through its match.
        const alarm = new Set(
          base.matches.filter((m) => m.plannedVisitId?.endsWith('14:00')).flatMap((m) => m.executedKeys),
        );
        // Every other visit a second time (another visit id, same staff, same time): nobody is counted twice.
        const twice = continuity(
          {
            ...facts,
            executed: [
              ...visits,
              ...visits
                .filter((v) => !alarm.has(`${v.readerId}/${v.visitId}`))
                .map((v) => ({ ...v, visitId: `${v.visitId}-again`, groupId: null })),
            ],
          },
          { fromDate: MONDAY },
          clock,
        );
        for (const row of r.rows) {
          const eligible = new Set(
            visits
              .filter((v) => v.clientRef === row.clientRef && v.staffRef !== null && v.startedAtMs !== null)
              .filter((v) => v.withdrawn !== true)
              .filter((v) => !alarm.has(`${v.readerId}/${v.visitId}`))
              .filter((v) => !['licensed-health', 'rehab'].includes(lookup.staff.get(v.staffRef!)!.category))
              .filter((v) => {
                const l = clock.local(v.startedAtMs!);
                return l.date >= MONDAY && l.date <= TO && l.minuteOfDay >= 420 && l.minuteOfDay < 1320;
              })
              .map((v) => v.staffRef),
          );
          expect(row.staff).toBe(eligible.size);
          expect(twice.rows.find((x) => x.clientRef === row.clientRef)?.staff).toBe(row.staff);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('executed and planned minutes per area add up to the total, for every period', () => {
    fc.assert(
      fc.property(fc.array(extraVisit, { maxLength: 60 }), fc.constantFrom(...PERIODS), (extras, period) => {
        const facts = {
          registries: base.registries,
          planned: base.planned,
          matches: base.matches,
          executed: [...base.visits, ...materialise(extras)],
        };
        const r = executedVsPlanned(
          facts,
          { fromDate: MONDAY, toDate: TO, period, groupBy: ['area'] },
          clock,
        );
        const sum = (k: 'executedMinutes' | 'executedStaffMinutes' | 'plannedMinutes' | 'executedVisits') =>
          r.rows.reduce((s, x) => s + x[k], 0);
        expect(sum('executedMinutes')).toBe(r.total.executedMinutes);
        expect(sum('executedStaffMinutes')).toBe(r.total.executedStaffMinutes);
        expect(sum('plannedMinutes')).toBe(r.total.plannedMinutes);
        expect(sum('executedVisits')).toBe(r.total.executedVisits);
        // The quality beside it counts every visit the report used.
        const q = dataQuality(facts.executed, new Lookup(base.registries));
        expect(r.quality.byArea.reduce((s, x) => s + x.visits, 0)).toBe(r.quality.total.visits);
        expect(r.quality.total.visits).toBeLessThanOrEqual(q.total.visits);
      }),
      { numRuns: 60 },
    );
  });
});

/** Every leaf path whose value differs between a and b. */
function changedPaths(a: unknown, b: unknown, path = ''): string[] {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null)
    return Object.is(a, b) ? [] : [path];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].flatMap((k) =>
    changedPaths(
      (a as Record<string, unknown>)[k],
      (b as Record<string, unknown>)[k],
      path ? `${path}.${k}` : k,
    ),
  );
}

const withdrawals = base.corrections.filter((c) => c.withdrawn === true);
const timeCorrections = base.corrections.filter((c) => c.withdrawn !== true);

describe('a re-run after a correction', () => {
  const before = new MemoryReportSource({ ...base, corrections: withdrawals });
  const after = new MemoryReportSource({ ...base, corrections: base.corrections });

  it('facts: only the corrected visit differs', async () => {
    const [x, y] = await Promise.all([
      loadFacts(before, MONDAY, TO, clock),
      loadFacts(after, MONDAY, TO, clock),
    ]);
    const diff = x.executed.flatMap((v, i) => changedPaths(v, y.executed[i]).map((p) => `${v.visitId}.${p}`));
    expect(diff).toEqual([
      '2026-03-24T18:00-s6.endedAtMs',
      '2026-03-24T18:00-s6.endReason',
      '2026-03-24T18:00-s6.corrected',
    ]);
  });

  it('executed vs planned: exactly area B, the total, the differences and the quality of that visit change', async () => {
    const p = { fromDate: MONDAY, toDate: TO, period: 'range', groupBy: ['area'] } as const;
    const [x, y] = await Promise.all([runExecuted(before, p, clock), runExecuted(after, p, clock)]);
    // Before: c3's 03-24 evening was auto-closed (length unknown): B 1742 minutes, one visit without minutes.
    expect(x.rows[1]).toMatchObject({ areaId: 'B', executedMinutes: 1742, executedWithoutMinutes: 1 });
    expect(changedPaths(x, y).sort()).toEqual(
      [
        'rows.1.executedMinutes',
        'rows.1.executedStaffMinutes',
        'rows.1.executedWithoutMinutes',
        'rows.1.ratio',
        'total.executedMinutes',
        'total.executedStaffMinutes',
        'total.executedWithoutMinutes',
        'total.ratio',
        'differences.count',
        'differences.bins.2.count',
        'quality.total.autoClosed',
        'quality.total.corrected',
        'quality.total.shares.autoClosed',
        'quality.total.shares.corrected',
        'quality.byArea.1.autoClosed',
        'quality.byArea.1.corrected',
        'quality.byArea.1.shares.autoClosed',
        'quality.byArea.1.shares.corrected',
        'quality.byReader.2.autoClosed',
        'quality.byReader.2.corrected',
        'quality.byReader.2.shares.autoClosed',
        'quality.byReader.2.shares.corrected',
      ].sort(),
    );
  });

  it('continuity and double staffing: only the quality changes (the visit was counted either way)', async () => {
    const [cx, cy] = await Promise.all([
      runContinuity(before, { fromDate: MONDAY }, clock),
      runContinuity(after, { fromDate: MONDAY }, clock),
    ]);
    expect(changedPaths(cx, cy).every((p) => p.startsWith('quality.'))).toBe(true);
    expect(changedPaths(cx, cy)).toContain('quality.total.corrected');
    const sp = { fromDate: MONDAY, toDate: TO };
    const [sx, sy] = await Promise.all([runStaffing(before, sp, clock), runStaffing(after, sp, clock)]);
    expect(changedPaths(sx, sy).every((p) => p.startsWith('quality.'))).toBe(true);
  });
});

describe('a re-run after withdrawing two taps (day 12: s6 at c1, 15:00-15:20; s4 joining c2’s 09:00 pair, 09:02-09:03)', () => {
  const before = new MemoryReportSource({ ...base, corrections: timeCorrections });
  const after = new MemoryReportSource({ ...base, corrections: base.corrections });

  it('facts: only the two withdrawn visits differ (marked withdrawn and corrected)', async () => {
    const [x, y] = await Promise.all([
      loadFacts(before, MONDAY, TO, clock),
      loadFacts(after, MONDAY, TO, clock),
    ]);
    const diff = x.executed.flatMap((v, i) => changedPaths(v, y.executed[i]).map((p) => `${v.visitId}.${p}`));
    expect(diff.sort()).toEqual(
      [
        '2026-04-04T15:00-s6.corrected',
        '2026-04-04T15:00-s6.withdrawn',
        '2026-04-04T09:02-s4.corrected',
        '2026-04-04T09:02-s4.withdrawn',
      ].sort(),
    );
  });

  it('executed vs planned: area A and the total lose an unplanned visit, 20 minutes and 21 staff minutes; quality counts 2 withdrawn', async () => {
    const p = { fromDate: MONDAY, toDate: TO, period: 'range', groupBy: ['area'] } as const;
    const [x, y] = await Promise.all([runExecuted(before, p, clock), runExecuted(after, p, clock)]);
    // Before (counted): area A 102 + 1 occasions, 3013 + 20 minutes, 3585 + 20 + 1 staff minutes, 4 + 1
    // unplanned; the 09:02-09:03 tap lies inside the pair's 09:00-09:46 span (client time unchanged).
    expect(x.rows[0]).toMatchObject({
      areaId: 'A',
      executedVisits: 103,
      executedMinutes: 3033,
      executedStaffMinutes: 3606,
      unplanned: 5,
      ratio: 1.1069, // 3033 / 2740
    });
    expect(y.rows[0]).toMatchObject({
      executedVisits: 102,
      executedMinutes: 3013,
      executedStaffMinutes: 3585,
      unplanned: 4,
    });
    expect(x.quality.total).toMatchObject({ visits: 195, withdrawn: 0 });
    expect(y.quality.total).toMatchObject({ visits: 193, withdrawn: 2 });
    expect(y.quality.total.shares.withdrawn).toBe(0.0103); // 2 / 195 recorded
    expect(changedPaths(x, y).sort()).toEqual(
      [
        'rows.0.executedVisits',
        'rows.0.executedMinutes',
        'rows.0.executedStaffMinutes',
        'rows.0.ratio',
        'rows.0.unplanned',
        'total.executedVisits',
        'total.executedMinutes',
        'total.executedStaffMinutes',
        'total.ratio',
        'total.unplanned',
        // 193 instead of 195 visits: the shares of the non-zero counts move (1/195 = 0.0051, 1/193 = 0.0052).
        'quality.total.visits',
        'quality.total.withdrawn',
        'quality.total.shares.corrected',
        'quality.total.shares.unknownCard',
        'quality.total.shares.uncorrectableTime',
        'quality.total.shares.lateDelivered',
        'quality.total.shares.withdrawn',
        'quality.byArea.0.visits',
        'quality.byArea.0.withdrawn',
        'quality.byArea.0.shares.withdrawn',
        'quality.byReader.0.visits',
        'quality.byReader.0.withdrawn',
        'quality.byReader.0.shares.withdrawn',
        'quality.byReader.1.visits',
        'quality.byReader.1.withdrawn',
        'quality.byReader.1.shares.withdrawn',
      ].sort(),
    );
  });

  it('continuity: c1 meets s6 only while the tap counts; c2’s pair stays a pair and s4 was met anyway', async () => {
    const [x, y] = await Promise.all([
      runContinuity(before, { fromDate: MONDAY }, clock),
      runContinuity(after, { fromDate: MONDAY }, clock),
    ]);
    // Before: c1 s1, s2, s4, s6 = 4 (29 counted visits); c2 s1, s3, s2, s4 = 4 (42 counted visits); c3 3.
    expect(x.rows.map((r) => [r.clientRef, r.staff, r.staffWithoutDoubleStaffing, r.countedVisits])).toEqual([
      ['c1', 4, 4, 29],
      ['c2', 4, 3, 42],
      ['c3', 3, 3, 27],
    ]);
    expect(y.rows.map((r) => [r.clientRef, r.staff, r.staffWithoutDoubleStaffing, r.countedVisits])).toEqual([
      ['c1', 3, 3, 28],
      ['c2', 4, 3, 41],
      ['c3', 3, 3, 27],
    ]);
    // Before: mean 11 / 3 = 3.7, median 4; without double staffing (4 + 3 + 3) / 3 = 3.3; without the
    // palliative c2 (4 + 3) / 2 = 3.5. After: the fixture's 3.3, 3, 3.0, 3.0 (reports.test.ts).
    expect([x.mean, x.median, x.breakdown.doubleStaffingRaise, x.breakdown.palliativeRaise]).toEqual([
      3.7, 4, 0.4, 0.2,
    ]);
    expect([y.mean, y.median, y.breakdown.doubleStaffingRaise, y.breakdown.palliativeRaise]).toEqual([
      3.3, 3, 0.3, 0.3,
    ]);
    // Distribution 3: 1, 4: 2 before; 3: 2, 4: 1 after. Care contact: c1's 29 counted visits before (14 by
    // s1, as after), 28 after.
    expect(x.careContact).toMatchObject({ countedVisits: 56, byContact: 27, share: 0.4821 });
    expect(y.careContact).toMatchObject({ countedVisits: 55, byContact: 27, share: 0.4909 });
    const changed = changedPaths(x, y);
    expect(changed.filter((p) => !p.startsWith('quality.')).sort()).toEqual(
      [
        'mean',
        'median',
        'distribution.0.clients',
        'distribution.1.clients',
        'byArea.0.mean',
        'byArea.0.median',
        'rows.0.staff',
        'rows.0.staffWithoutDoubleStaffing',
        'rows.0.countedVisits',
        'rows.1.countedVisits',
        'breakdown.meanWithoutDoubleStaffing',
        'breakdown.doubleStaffingRaise',
        'breakdown.meanWithoutPalliative',
        'breakdown.palliativeRaise',
        'careContact.countedVisits',
        'careContact.share',
        'careContact.byArea.0.countedVisits',
        'careContact.byArea.0.share',
      ].sort(),
    );
    expect(y.quality.total).toMatchObject({ withdrawn: 2 });
  });

  it('double staffing: one occasion fewer in area A; the pair with a withdrawn third tap is still one double-staffed occasion', async () => {
    const sp = { fromDate: MONDAY, toDate: TO };
    const [x, y] = await Promise.all([runStaffing(before, sp, clock), runStaffing(after, sp, clock)]);
    expect(x.total).toMatchObject({ executedOccasions: 181, executedDouble: 13, understaffed: 1 });
    expect(y.total).toMatchObject({ executedOccasions: 180, executedDouble: 13, understaffed: 1 });
    expect(
      changedPaths(x, y)
        .filter((p) => !p.startsWith('quality.'))
        .sort(),
    ).toEqual(
      [
        'rows.0.executedOccasions',
        'rows.0.executedDoubleShare',
        'total.executedOccasions',
        'total.executedDoubleShare',
      ].sort(),
    );
  });
});
