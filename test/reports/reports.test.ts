/**
 * The fixture municipality (fixture.ts), 14 days from Monday 2026-03-23 across the change to summer time
 * (Sunday 2026-03-29): every figure below is worked out by hand from the fixture's description. The two
 * taps withdrawn as mistakes (day 12) count in no figure, only as `withdrawn` in data quality.
 */
import { describe, expect, it } from 'vitest';
import { MemoryReportSource } from '../../gateway/src/reports/memory-source.js';
import {
  runContinuity,
  runExecuted,
  runMonthly,
  runQuality,
  runStaffing,
} from '../../gateway/src/reports/run.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import type { ReportVisit } from '../../gateway/src/reports/source.js';
import { at, buildFixture, type Fixture } from './fixture.js';

const MONDAY = '2026-03-23';
const TO = '2026-04-05';
const clock = new ReportClock('Europe/Stockholm');
const sourceOf = (f: Fixture, withCorrections = true) =>
  new MemoryReportSource({ ...f, corrections: withCorrections ? f.corrections : [] });

describe('executed vs planned (fixture municipality)', () => {
  it('per area over the range: sums, granted, ratio, statuses, reason codes', async () => {
    const r = await runExecuted(
      sourceOf(buildFixture(MONDAY)),
      { fromDate: MONDAY, toDate: TO, period: 'range', groupBy: ['area'] },
      clock,
    );
    const [a, b] = r.rows;
    // Area A = c1 + c2 + c5 + c7.
    //   planned: c1 14*30 + 14*40 + 10 = 990 (29 visits); c2 14*45 + 14*30 = 1050 (28); c5 14*10 = 140 (14);
    //   c7 28*20 = 560 (28) → 99 visits, 2740 min. Granted: c1 14*30 + 14*(25+15) = 980 (alarm unknown);
    //   c2 1050; c5 unknown; c7 560 → 2590.
    //   executed occasions: c1 14 + 14 + 1 + 2 nurse = 31; c2 14 + 14 + 2 = 30; c5 14; c7 27 → 102.
    //   minutes: c1 14*30 + 14*50 + 10 + 2*15 = 1160; c2 13*46 + 45 + 14*30 + 50 + 60 = 1173; c5 140; c7 540 → 3013.
    //   staff minutes: c2 13*90 + 45 + 420 + 110 = 1745 → 1160 + 1745 + 140 + 540 = 3585.
    expect(a).toMatchObject({
      period: `${MONDAY}..${TO}`,
      areaId: 'A',
      plannedVisits: 99,
      plannedMinutes: 2740,
      grantedMinutes: 2590,
      executedVisits: 102,
      executedMinutes: 3013,
      executedStaffMinutes: 3585,
      executedWithoutMinutes: 0,
      ratio: 1.0996, // 3013 / 2740
      matched: 96, // 29 - 1 late; 28 - 1 understaffed; 14; 28 - 1 missed
      late: 1,
      understaffed: 1,
      missed: 1,
      missedStaffIll: 1,
      unplanned: 4, // c1 nurse x2, c2 night x2 (s6's tap at c1 on day 12 was withdrawn: not counted)
      pending: 0,
    });
    // Area B = c3 + c4 + c6. planned: c3 28*30 + 20 = 860 (29); c4 28*20 = 560 (28); c6 28*15 = 420 (28)
    //   → 85 visits, 1840 min, granted 1840. executed: c3 28*30 + 2*45 rehab = 930 (30 occasions);
    //   c4 27*20 + 2 = 542 (28); c6 20*15 = 300 (20) → 78 occasions, 1772 min.
    expect(b).toMatchObject({
      areaId: 'B',
      plannedVisits: 85,
      plannedMinutes: 1840,
      grantedMinutes: 1840,
      executedVisits: 78,
      executedMinutes: 1772,
      executedStaffMinutes: 1772,
      ratio: 0.963, // 1772 / 1840 = 0.96304
      matched: 76,
      missed: 9,
      missedClientCancelled: 1,
      missedClientInHospital: 8,
      unplanned: 2,
    });
    expect(r.rows).toHaveLength(2);
    expect(r.total).toMatchObject({
      plannedVisits: 184,
      plannedMinutes: 4580,
      grantedMinutes: 4430,
      executedVisits: 180,
      executedMinutes: 4785,
      executedStaffMinutes: 5357,
      ratio: 1.0448, // 4785 / 4580 = 1.04476
      matched: 172,
      late: 1,
      missed: 10,
      understaffed: 1,
      unplanned: 6,
    });
    // Differences, executed − planned per matched planned visit (174): c4's 2-minute visit −18; c1's
    // evenings +10 (14); c2's double-staffed mornings +1 (13, span 09:00-09:46); the rest 0 (146).
    expect(r.differences).toEqual({
      count: 174,
      meanMinutes: 0.78, // (140 + 13 - 18) / 174
      medianMinutes: 0,
      p10Minutes: 0,
      p90Minutes: 1,
      bins: [
        { bin: '< -15', count: 1 },
        { bin: '-15 to -5', count: 0 },
        { bin: '-5 to +5', count: 159 },
        { bin: '+5 to +15', count: 14 },
        { bin: '> +15', count: 0 },
      ],
    });
    expect(r.notes.join(' ')).toMatch(/crossing midnight counts wholly in the day it started/);
  });

  it('per day: a visit crossing midnight counts in its start day; the DST day counts real minutes', async () => {
    const r = await runExecuted(
      sourceOf(buildFixture(MONDAY)),
      { fromDate: '2026-03-27', toDate: '2026-03-29', period: 'day', groupBy: ['client'] },
      clock,
    );
    const c2 = (d: string) => r.rows.find((x) => x.clientRef === 'c2' && x.period === d)!;
    // 03-27: morning 46 + evening 30 + 23:30-00:20 (50) = 126 in three occasions.
    expect(c2('2026-03-27')).toMatchObject({ executedVisits: 3, executedMinutes: 126, unplanned: 1 });
    // 03-28: only the morning and the evening.
    expect(c2('2026-03-28')).toMatchObject({ executedVisits: 2, executedMinutes: 76 });
    // 03-29 (clocks go forward at 02:00): 01:30-03:30 local is 60 real minutes.
    expect(c2('2026-03-29')).toMatchObject({ executedVisits: 3, executedMinutes: 46 + 30 + 60 });
    expect(r.params.timeZone).toBe('Europe/Stockholm');
  });

  it('autumn DST day: 01:30-03:30 local on 2026-10-25 is 180 minutes; a visit from 23:50 counts the day before', async () => {
    const f = buildFixture(MONDAY);
    const mk = (visitId: string, from: number, to: number): ReportVisit => ({
      ...f.visits[0]!,
      visitId,
      startedAtMs: from,
      endedAtMs: to,
      updatedAtMs: to,
      receivedAtMs: to,
    });
    const visits = [
      mk('oct-a', at('2026-10-25', '01:30'), at('2026-10-25', '03:30')),
      mk('oct-b', at('2026-10-24', '23:50'), at('2026-10-25', '00:10')),
    ];
    const r = await runExecuted(
      new MemoryReportSource({ registries: f.registries, planned: [], matches: [], visits }),
      { fromDate: '2026-10-24', toDate: '2026-10-25', period: 'day', groupBy: [] },
      clock,
    );
    expect(r.rows.map((x) => [x.period, x.executedMinutes, x.unplanned])).toEqual([
      ['2026-10-24', 20, 1],
      ['2026-10-25', 180, 1],
    ]);
  });

  it('by service code: minutes split by standard minutes, unplanned apart, and they add up to the total', async () => {
    const r = await runExecuted(
      sourceOf(buildFixture(MONDAY)),
      { fromDate: MONDAY, toDate: TO, period: 'range', groupBy: ['serviceCode'] },
      clock,
    );
    const code = (c: string) => r.rows.find((x) => x.serviceCode === c)!;
    // c1 evenings (PC 30 + SV 20 standard → 0.6 / 0.4 of 40 planned, 50 made) and the SV-only visits.
    // SV planned: c1 14*16 + c3 20 + c4 560 + c6 420 = 1224; executed: c1 14*20 + c4 542 + c6 300 = 1122.
    expect(code('SV')).toMatchObject({ plannedMinutes: 1224, executedMinutes: 1122 });
    expect(code('(unplanned)')).toMatchObject({
      plannedVisits: 0,
      executedVisits: 6,
      executedMinutes: 30 + 110 + 90,
    });
    const sum = (k: 'plannedMinutes' | 'executedMinutes') => r.rows.reduce((s, x) => s + x[k], 0);
    expect(sum('plannedMinutes')).toBeCloseTo(4580, 6);
    expect(sum('executedMinutes')).toBeCloseTo(4785, 6);
  });
});

describe('continuity, the national 14-day measure (fixture municipality)', () => {
  it('population, exclusions, mean and median, per area, breakdown, care contact', async () => {
    const r = await runContinuity(sourceOf(buildFixture(MONDAY)), { fromDate: MONDAY }, clock);
    expect(r.params).toMatchObject({ fromDate: MONDAY, toDate: TO, countFrom: '07:00', countTo: '22:00' });
    // c1: s1, s2, substitute s4 (nurse n1 not counted; the alarm response by s3 not counted; s6's tap on
    //     day 12 was withdrawn as a mistake) = 3.
    // c2: s1, s3 (double staffing), s2, s4 (evening day 11) = 4; the night visits start outside 07-22.
    // c3: s5, s6, s4 (07:30 on the DST Sunday: inside the window only in summer time) = 3; rehab r1 and the
    //     unknown card not counted.
    expect(r.rows.map((x) => [x.clientRef, x.staff, x.staffWithoutDoubleStaffing])).toEqual([
      ['c1', 3, 3],
      ['c2', 4, 3],
      ['c3', 3, 3],
    ]);
    expect(r.clients).toBe(3);
    expect(r.mean).toBe(3.3); // 10 / 3
    expect(r.median).toBe(3);
    expect(r.distribution).toEqual([
      { staff: 3, clients: 2 },
      { staff: 4, clients: 1 },
    ]);
    expect(r.byArea).toEqual([
      { areaId: 'A', clients: 2, mean: 3.5, median: 3.5 },
      { areaId: 'B', clients: 1, mean: 3, median: 3 },
    ]);
    expect(r.excluded).toEqual([
      { clientRef: 'c4', areaId: 'B', reason: 'under-65', detail: 'born 1970' },
      {
        clientRef: 'c5',
        areaId: 'A',
        reason: 'only-alarm-meal-relief-escort',
        detail: 'safety-alarm,meal-delivery',
      },
      { clientRef: 'c6', areaId: 'B', reason: 'not-at-home', detail: 'hospital 2026-03-30..2026-04-02' },
      {
        clientRef: 'c7',
        areaId: 'A',
        reason: 'too-few-visits',
        detail: 'fewer than 2 visits on 1 day(s), first 2026-03-28',
      },
    ]);
    expect(r.excludedByReason).toMatchObject({ 'under-65': 1, 'not-at-home': 1, 'too-few-visits': 1 });
    // Without double staffing c2 keeps s1 (first at 09:00), s2, s4 = 3 → mean 3.0: raise 0.3.
    // Without the palliative client c2: (3 + 3) / 2 = 3.0: raise 0.3.
    expect(r.breakdown).toEqual({
      clientsWithDoubleStaffing: 1,
      meanWithoutDoubleStaffing: 3,
      doubleStaffingRaise: 0.3,
      palliativeClients: 1,
      meanWithoutPalliative: 3,
      palliativeRaise: 0.3,
    });
    expect(r.rows.find((x) => x.clientRef === 'c2')).toMatchObject({
      doubleStaffedOccasions: 13,
      countedVisits: 41,
    });
    // Care contact: c1 28 counted visits, 14 by s1; c3 27 (the unknown card not counted), 13 by s5.
    expect(r.careContact).toEqual({
      clientsWithContact: 2,
      clientsWithoutContact: 1,
      countedVisits: 55,
      byContact: 27,
      share: 0.4909,
      byArea: [
        { areaId: 'A', countedVisits: 28, byContact: 14, share: 0.5 },
        { areaId: 'B', countedVisits: 27, byContact: 13, share: 0.4815 },
      ],
    });
  });

  it('refuses a period that does not start on a Monday, naming one that does', async () => {
    await expect(
      runContinuity(sourceOf(buildFixture(MONDAY)), { fromDate: '2026-03-25' }, clock),
    ).rejects.toThrow(/starts on a Monday.*2026-03-30/);
  });

  it('monthly per area over the 14 days from the first Monday, marking months above the threshold', async () => {
    const f = buildFixture('2026-04-06'); // the first Monday of April
    const def = await runMonthly(sourceOf(f), { fromMonth: '2026-03', toMonth: '2026-04' }, clock);
    // March's window (2026-03-02..15) has no visits: no area rows.
    expect(def.rows.map((x) => [x.month, x.areaId, x.clients, x.mean, x.analyse])).toEqual([
      ['2026-04', 'A', 2, 3.5, false],
      ['2026-04', 'B', 1, 3, false],
    ]);
    const low = await runMonthly(
      sourceOf(f),
      { fromMonth: '2026-04', toMonth: '2026-04', threshold: 3.2 },
      clock,
    );
    expect(low.rows.map((x) => [x.areaId, x.analyse])).toEqual([
      ['A', true],
      ['B', false],
    ]);
    expect(low.rows[0]).toMatchObject({ fromDate: '2026-04-06', toDate: '2026-04-19', threshold: 3.2 });
  });
});

describe('double staffing and data quality (fixture municipality)', () => {
  it('planned vs executed double staffing and understaffed visits', async () => {
    const r = await runStaffing(sourceOf(buildFixture(MONDAY)), { fromDate: MONDAY, toDate: TO }, clock);
    expect(r.total).toMatchObject({
      plannedVisits: 184,
      plannedDouble: 14,
      plannedDoubleShare: 0.0761, // 14 / 184
      executedOccasions: 180,
      executedDouble: 13,
      executedDoubleShare: 0.0722, // 13 / 180
      understaffed: 1,
      unplannedDouble: 0,
    });
    expect(r.rows).toEqual([
      expect.objectContaining({
        areaId: 'A',
        plannedDoubleShare: 0.1414,
        executedDoubleShare: 0.1275,
        understaffed: 1,
      }),
      expect.objectContaining({ areaId: 'B', plannedDouble: 0, executedDouble: 0, understaffed: 0 }),
    ]);
  });

  it('quality beside the report: corrected, unknown card, uncorrectable clock, delivered days late; per area and reader', async () => {
    const r = await runQuality(sourceOf(buildFixture(MONDAY)), { fromDate: MONDAY, toDate: TO }, clock);
    // Staff visits: c1 31, c2 13*2 + 1 + 14 + 2 = 43, c3 30, c4 28, c5 14, c6 20, c7 27 = 193; and the two
    // withdrawn taps (at c1's and c2's readers, area A) apart: 2 of 195 recorded visits.
    expect(r.quality.total).toMatchObject({
      withdrawn: 2,
      visits: 193,
      autoClosed: 0,
      corrected: 1,
      unknownCard: 1,
      uncorrectableTime: 1,
      lateDelivered: 1,
      incomplete: 0,
    });
    expect(r.quality.total.shares.corrected).toBe(0.0052); // 1 / 193
    expect(r.quality.total.shares.withdrawn).toBe(0.0103); // 2 / 195
    expect(
      r.quality.byArea.map((x) => [x.areaId, x.visits, x.corrected, x.lateDelivered, x.withdrawn]),
    ).toEqual([
      ['A', 115, 0, 0, 2],
      ['B', 78, 1, 1, 0],
    ]);
    expect(r.quality.byReader.filter((x) => x.withdrawn > 0).map((x) => [x.readerId, x.visits])).toEqual([
      ['rd-c1', 31],
      ['rd-c2', 43],
    ]);
    expect(r.quality.byReader.find((x) => x.readerId === 'rd-c3')).toMatchObject({
      visits: 30,
      corrected: 1,
      unknownCard: 1,
      uncorrectableTime: 1,
      lateDelivered: 1,
    });
    // Every report carries the same quality of the visits it used.
    const e = await runExecuted(
      sourceOf(buildFixture(MONDAY)),
      { fromDate: MONDAY, toDate: TO, period: 'range', groupBy: [] },
      clock,
    );
    expect(e.quality).toEqual(r.quality);
  });
});
