import { describe, expect, it } from 'vitest';
import { DEFAULT_MATCH_CONFIG, matchClient, type PlanForMatch } from '../../gateway/src/care/matching.js';
import type { ExecutedVisit, MissedReasonCode } from '../../gateway/src/care/model.js';
import { localToUtcMs } from '../../gateway/src/care/time.js';

const TZ = 'Europe/Stockholm';
const at = (date: string, time: string): number => localToUtcMs(date, time, TZ);

const plan = (id: string, date: string, time: string, staffCount: 1 | 2 = 1): PlanForMatch => ({
  plannedVisitId: id,
  clientRef: 'k1',
  areaId: 'a1',
  localDate: date,
  localStart: time,
  startMs: at(date, time),
  plannedMinutes: 30,
  serviceCodes: [],
  staffCount,
  plannedStaffRefs: [],
  planVersionId: 1,
});

const visit = (
  id: string,
  startMs: number | null,
  staff: string,
  endMs: number | null = null,
): ExecutedVisit => ({
  readerId: 'r1',
  visitId: id,
  clientRef: 'k1',
  staffRef: staff,
  cardRef: `c-${staff}`,
  groupId: null,
  state: endMs === null ? 'open' : 'closed',
  startedAtMs: startMs,
  endedAtMs: endMs,
  endReason: endMs === null ? null : 'tap',
  timeQuality: 'synced',
  anomalies: [],
  corrected: false,
  updatedAtMs: 0,
});

interface Case {
  name: string;
  plans: PlanForMatch[];
  visits: ExecutedVisit[];
  now: number;
  reasons?: Record<string, MissedReasonCode>;
  /** plannedVisitId -> [status, executed visit ids, lateMinutes] */
  expect: Record<string, [string, string[], number | null]>;
  unplanned: string[];
  /** localDate expected for the given plan or unplanned visit */
  dates?: Record<string, string>;
}

const D = '2026-05-12';
const LATE_NOW = at('2026-06-01', '12:00');
const cases: Case[] = [
  {
    name: 'early arrival (40 minutes before the planned start)',
    plans: [plan('p1', D, '08:00')],
    visits: [visit('v1', at(D, '07:20'), 's1', at(D, '07:50'))],
    now: LATE_NOW,
    expect: { p1: ['matched', ['v1'], -40] },
    unplanned: [],
  },
  {
    name: 'two visits in one plan window: the nearer one matches, the other is unplanned',
    plans: [plan('p1', D, '08:00')],
    visits: [
      visit('v1', at(D, '08:05'), 's1', at(D, '08:30')),
      visit('v2', at(D, '08:40'), 's1', at(D, '09:00')),
    ],
    now: LATE_NOW,
    expect: { p1: ['matched', ['v1'], 5] },
    unplanned: ['v2'],
  },
  {
    name: 'two plans and two visits in overlapping windows: time order kept, both matched',
    plans: [plan('p1', D, '08:00'), plan('p2', D, '08:30')],
    visits: [visit('v1', at(D, '08:20'), 's1'), visit('v2', at(D, '08:50'), 's2')],
    now: LATE_NOW,
    expect: { p1: ['late', ['v1'], 20], p2: ['late', ['v2'], 20] },
    unplanned: [],
  },
  {
    name: 'a visit crossing midnight belongs to the day it started',
    plans: [plan('p1', D, '23:30')],
    visits: [
      visit('v1', at(D, '23:40'), 's1', at('2026-05-13', '00:20')),
      visit('v2', at('2026-05-13', '03:50'), 's1', at('2026-05-13', '04:10')),
    ],
    now: LATE_NOW,
    expect: { p1: ['matched', ['v1'], 10] },
    unplanned: ['v2'],
    dates: { p1: D, v2: '2026-05-13' },
  },
  {
    name: 'DST spring forward 2026-03-29: 07:30 CEST is 05:30Z; 02:30 does not exist and reads as 03:30',
    plans: [plan('p1', '2026-03-29', '07:30'), plan('p2', '2026-03-29', '02:30')],
    visits: [
      visit('v1', Date.parse('2026-03-29T05:32:00Z'), 's1'),
      visit('v2', Date.parse('2026-03-29T01:35:00Z'), 's2'),
    ],
    now: LATE_NOW,
    expect: { p1: ['matched', ['v1'], 2], p2: ['matched', ['v2'], 5] },
    unplanned: [],
  },
  {
    name: 'DST fall back 2026-10-25: 07:30 CET is 06:30Z; 02:30 exists twice and means the first',
    plans: [plan('p1', '2026-10-25', '07:30'), plan('p2', '2026-10-25', '02:30')],
    visits: [
      visit('v1', Date.parse('2026-10-25T06:40:00Z'), 's1'),
      visit('v2', Date.parse('2026-10-25T01:35:00Z'), 's2'), // the second 02:35 (CET)
    ],
    now: LATE_NOW,
    expect: { p1: ['matched', ['v1'], 10], p2: ['late', ['v2'], 65] },
    unplanned: [],
  },
  {
    name: 'double-staffed plan, one tap: understaffed',
    plans: [plan('p1', D, '09:00', 2)],
    visits: [visit('v1', at(D, '09:02'), 's1')],
    now: LATE_NOW,
    expect: { p1: ['understaffed', ['v1'], 2] },
    unplanned: [],
  },
  {
    name: 'double-staffed plan, two staff: matched',
    plans: [plan('p1', D, '09:00', 2)],
    visits: [visit('v1', at(D, '09:02'), 's1'), visit('v2', at(D, '09:03'), 's2')],
    now: LATE_NOW,
    expect: { p1: ['matched', ['v1', 'v2'], 2] },
    unplanned: [],
  },
  {
    name: 'double-staffed plan, three taps: two matched, the third unplanned',
    plans: [plan('p1', D, '09:00', 2)],
    visits: [
      visit('v1', at(D, '09:02'), 's1'),
      visit('v2', at(D, '09:03'), 's2'),
      visit('v3', at(D, '09:10'), 's3'),
    ],
    now: LATE_NOW,
    expect: { p1: ['matched', ['v1', 'v2'], 2] },
    unplanned: ['v3'],
  },
  {
    name: 'double-staffed plan, the same staff member twice: still understaffed',
    plans: [plan('p1', D, '09:00', 2)],
    visits: [visit('v1', at(D, '09:02'), 's1', at(D, '09:10')), visit('v2', at(D, '09:12'), 's1')],
    now: LATE_NOW,
    expect: { p1: ['understaffed', ['v1'], 2] },
    unplanned: ['v2'],
  },
  {
    name: 'no visit: pending inside the window, missed after it, missed with the reason set',
    plans: [plan('p1', D, '10:00'), plan('p2', D, '08:00'), plan('p3', D, '06:00')],
    visits: [],
    now: at(D, '10:30'),
    reasons: { p3: 'client-in-hospital' },
    expect: { p1: ['pending', [], null], p2: ['missed', [], null], p3: ['missed', [], null] },
    unplanned: [],
  },
  {
    name: 'a visit outside every window is unplanned',
    plans: [plan('p1', D, '08:00')],
    visits: [visit('v1', at(D, '13:00'), 's1')],
    now: LATE_NOW,
    expect: { p1: ['missed', [], null] },
    unplanned: ['v1'],
  },
  {
    name: 'a stop without a start matches on its end time',
    plans: [plan('p1', D, '08:00')],
    visits: [visit('v1', null, 's1', at(D, '08:25'))],
    now: LATE_NOW,
    expect: { p1: ['late', ['v1'], 25] },
    unplanned: [],
  },
];

const shuffle = <T>(xs: T[], seed: number): T[] => {
  const a = [...xs];
  let s = seed;
  for (let i = a.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
};

describe('matching: the hard cases', () => {
  for (const c of cases) {
    it(c.name, () => {
      const run = (plans: PlanForMatch[], visits: ExecutedVisit[]) =>
        matchClient('k1', plans, visits, {
          config: DEFAULT_MATCH_CONFIG,
          nowMs: c.now,
          reasons: new Map(Object.entries(c.reasons ?? {})),
        });
      const r = run(c.plans, c.visits);
      const got = Object.fromEntries(
        r.plans.map((p) => [
          p.plannedVisitId,
          [p.status, p.executedKeys.map((k) => k.split('/')[1]), p.lateMinutes],
        ]),
      );
      expect(got).toEqual(c.expect);
      expect(r.visits.filter((v) => v.plannedVisitId === null).map((v) => v.key.split('/')[1])).toEqual(
        c.unplanned,
      );
      for (const [id, date] of Object.entries(c.dates ?? {})) {
        const p = r.plans.find((x) => x.plannedVisitId === id);
        const v = r.visits.find((x) => x.key === `r1/${id}`);
        expect(p?.localDate ?? v?.localDate).toBe(date);
      }
      // Deterministic: the same answer whatever order the input came in.
      for (const seed of [1, 2, 3])
        expect(run(shuffle(c.plans, seed), shuffle(c.visits, seed + 7))).toEqual(r);
      // No executed visit matched twice.
      const keys = r.plans.flatMap((p) => p.executedKeys);
      expect(new Set(keys).size).toBe(keys.length);
    });
  }
});
