/**
 * A fixture municipality: two areas, two providers, seven clients, eight staff, a plan and the visits of 14
 * days from a Monday. Every figure the tests expect is worked out by hand from what is written here (see
 * reports.test.ts). Local times are turned into UTC by this file's own rule for Europe/Stockholm in 2026
 * (summer time 2026-03-29 01:00Z .. 2026-10-25 01:00Z), independent of the code under test.
 *
 * Clients (area, born, decisions):
 *  c1 A 1940 personal care, care contact s1: 08:00 s1 (30 planned, 30 made); 19:00 s2 (40 planned,
 *     PC+SV, 50 made; day 2 by substitute s4; day 3 late, 19:20); day 3 a safety-alarm response 14:00 by s3;
 *     Mondays (days 0, 7) nurse n1 12:00-12:15 unplanned.
 *  c2 A 1935 palliative, no care contact: 09:00 double staffed s1 09:00-09:45 + s3 09:01-09:46 (45 planned);
 *     day 9 only s1 (understaffed); 20:00 s2 30 min (day 11 by s4); day 4 s4 23:30-00:20 unplanned
 *     (crosses midnight); day 6 s4 01:30-03:30 local unplanned (on 2026-03-29 that is 60 minutes).
 *  c3 B 1950, care contact s5: 08:00 s5 30 min (day 6 by s4 at 07:30-08:00; day 7 delivered 3 days late;
 *     day 10 uncorrectable clock); 18:00 s6 30 min (day 1 auto-closed, then corrected to 18:30; day 8 an
 *     unknown card); day 9 a 12:00 service visit missed (client cancelled); Wednesdays (days 2, 9) rehab r1
 *     10:00-10:45 unplanned.
 *  c4 B 1970 (under 65): 09:00 and 17:00 s5, 20 min (day 0 09:00 only 2 min).
 *  c5 A 1938, only safety alarm + meal delivery: 11:00 meal delivery s3 10 min.
 *  c6 B 1930, in hospital days 7-10: 10:00 and 16:00 s6 15 min; missed (in hospital) during the stay.
 *  c7 A 1944: 10:00 and 17:00 s3 20 min; day 5 17:00 missed (staff ill).
 * Withdrawn taps (a coordinator marked them as mistakes; `corrections` with `withdrawn`), counted nowhere:
 *  day 12 s6 at c1's reader 15:00-15:20 (would be an unplanned visit and a fourth staff member for c1);
 *  day 12 s4 joining c2's 09:00 double-staffed group 09:02-09:03 (would add a staff minute and a counted visit).
 */
import type { Match, PlannedVisit } from '../../gateway/src/care/model.js';
import type { VisitCorrection } from '../../gateway/src/reports/memory-source.js';
import type { Registries, ReportVisit } from '../../gateway/src/reports/source.js';

const DAY = 86_400_000;
export const dateAt = (monday: string, day: number): string =>
  new Date(Date.parse(`${monday}T00:00:00Z`) + day * DAY).toISOString().slice(0, 10);

/** Local Stockholm wall time (2026) → UTC ms, by the published rule. */
export function at(date: string, hhmm: string): number {
  const [hh, mm] = hhmm.split(':').map(Number) as [number, number];
  let offsetH: number;
  if (date < '2026-03-29' || date > '2026-10-25') offsetH = 1;
  else if (date === '2026-03-29') offsetH = hh < 2 ? 1 : 2;
  else if (date === '2026-10-25') offsetH = hh < 3 ? 2 : 1;
  else offsetH = 2;
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  return Date.UTC(y, m - 1, d, hh, mm) - offsetH * 3_600_000;
}

export const registries = (monday: string): Registries => ({
  providers: [
    { providerId: 'P1', name: 'Kommunen', kind: 'municipal' },
    { providerId: 'P2', name: 'Omsorg AB', kind: 'lov' },
  ],
  areas: [
    { areaId: 'A', name: 'Norr', lateAfterMinutes: null, missedAfterMinutes: null },
    { areaId: 'B', name: 'Söder', lateAfterMinutes: null, missedAfterMinutes: null },
  ],
  teams: [
    { teamId: 'TA', areaId: 'A', name: 'Norr 1' },
    { teamId: 'TB', areaId: 'B', name: 'Söder 1' },
  ],
  clients: [
    client('c1', 'A', 'TA', 'P1', 1940, ['personal-care', 'service'], { careContactStaffRef: 's1' }),
    client('c2', 'A', 'TA', 'P1', 1935, ['personal-care'], { palliative: true }),
    client('c3', 'B', 'TB', 'P2', 1950, ['personal-care', 'service'], { careContactStaffRef: 's5' }),
    client('c4', 'B', 'TB', 'P2', 1970, ['service']),
    client('c5', 'A', 'TA', 'P1', 1938, ['safety-alarm', 'meal-delivery']),
    client('c6', 'B', 'TB', 'P2', 1930, ['personal-care'], {
      absences: [{ from: dateAt(monday, 7), to: dateAt(monday, 10), kind: 'hospital' }],
    }),
    client('c7', 'A', 'TA', 'P1', 1944, ['personal-care']),
  ],
  staff: [
    staff('s1', 'TA', 'A', 'care'),
    staff('s2', 'TA', 'A', 'care'),
    staff('s3', 'TA', 'A', 'care'),
    staff('s4', 'TA', 'A', 'substitute'),
    staff('s5', 'TB', 'B', 'care'),
    staff('s6', 'TB', 'B', 'care'),
    staff('n1', null, null, 'licensed-health'),
    staff('r1', null, null, 'rehab'),
  ],
  serviceCodes: [
    { code: 'PC', label: 'Personlig omvårdnad', kind: 'personal-care', standardMinutes: 30 },
    { code: 'SV', label: 'Service', kind: 'service', standardMinutes: 20 },
    { code: 'LARM', label: 'Trygghetslarm', kind: 'safety-alarm', standardMinutes: null },
    { code: 'MAT', label: 'Matdistribution', kind: 'meal-delivery', standardMinutes: 10 },
  ],
});

function client(
  clientRef: string,
  areaId: string,
  teamId: string,
  providerId: string,
  birthYear: number,
  decisionTypes: string[],
  extra: Partial<Registries['clients'][number]> = {},
): Registries['clients'][number] {
  return {
    clientRef,
    areaId,
    teamId,
    providerId,
    birthYear,
    kkikEligible: null,
    decisionTypes,
    careContactStaffRef: null,
    palliative: false,
    activeFrom: '2025-01-01',
    activeTo: null,
    absences: [],
    ...extra,
  };
}

function staff(
  staffRef: string,
  teamId: string | null,
  areaId: string | null,
  category: Registries['staff'][number]['category'],
): Registries['staff'][number] {
  return { staffRef, teamId, areaId, category, activeFrom: '2025-01-01', activeTo: null };
}

export interface Fixture {
  registries: Registries;
  planned: PlannedVisit[];
  matches: Match[];
  visits: ReportVisit[];
  corrections: VisitCorrection[];
}

type Code = PlannedVisit['serviceCodes'][number];
const PC = (std: number, granted: number | null): Code => ({
  code: 'PC',
  standardMinutes: std,
  grantedMinutes: granted,
});
const SV = (std: number, granted: number | null): Code => ({
  code: 'SV',
  standardMinutes: std,
  grantedMinutes: granted,
});

export function buildFixture(monday: string): Fixture {
  const planned: PlannedVisit[] = [];
  const matches: Match[] = [];
  const visits: ReportVisit[] = [];
  const corrections: VisitCorrection[] = [];

  const visit = (
    clientRef: string,
    staffRef: string | null,
    date: string,
    from: string,
    to: string,
    extra: Partial<ReportVisit> & { endDate?: string } = {},
  ): ReportVisit => {
    const { endDate, ...rest } = extra;
    const startedAtMs = at(date, from);
    const endedAtMs = at(endDate ?? date, to);
    const v: ReportVisit = {
      readerId: `rd-${clientRef}`,
      visitId: `${date}T${from}-${staffRef ?? 'unknown'}`,
      clientRef,
      staffRef,
      cardRef: staffRef === null ? 'card-unknown' : `card-${staffRef}`,
      groupId: null,
      state: 'closed',
      startedAtMs,
      endedAtMs,
      endReason: 'tap',
      timeQuality: 'synced',
      anomalies: [],
      corrected: false,
      updatedAtMs: endedAtMs,
      receivedAtMs: endedAtMs + 60_000,
      ...rest,
    };
    visits.push(v);
    return v;
  };
  const key = (v: ReportVisit) => `${v.readerId}/${v.visitId}`;
  const plan = (
    clientRef: string,
    date: string,
    time: string,
    minutes: number,
    codes: Code[],
    made: ReportVisit[],
    m: Partial<Match> = {},
    staffCount: 1 | 2 = 1,
  ) => {
    const plannedVisitId = `${clientRef}-${date}-${time}`;
    planned.push({
      plannedVisitId,
      clientRef,
      localDate: date,
      localStart: time,
      startMs: at(date, time),
      plannedMinutes: minutes,
      serviceCodes: codes,
      staffCount,
      plannedStaffRefs: [],
      planVersionId: 1,
    });
    matches.push({
      plannedVisitId,
      clientRef,
      status: made.length ? 'matched' : 'missed',
      executedKeys: made.map(key),
      lateMinutes: made[0] ? Math.round((made[0].startedAtMs! - at(date, time)) / 60_000) : null,
      reasonCode: null,
      localDate: date,
      ...m,
    });
  };
  const unplanned = (v: ReportVisit, date: string) =>
    matches.push({
      plannedVisitId: null,
      clientRef: v.clientRef!,
      status: 'unplanned',
      executedKeys: [key(v)],
      lateMinutes: null,
      reasonCode: null,
      localDate: date,
    });

  for (let d = 0; d < 14; d++) {
    const date = dateAt(monday, d);
    const next = dateAt(monday, d + 1);
    // c1
    plan('c1', date, '08:00', 30, [PC(30, 30)], [visit('c1', 's1', date, '08:05', '08:35')]);
    if (d === 3)
      plan('c1', date, '19:00', 40, [PC(30, 25), SV(20, 15)], [visit('c1', 's2', date, '19:20', '20:10')], {
        status: 'late',
      });
    else
      plan(
        'c1',
        date,
        '19:00',
        40,
        [PC(30, 25), SV(20, 15)],
        [visit('c1', d === 2 ? 's4' : 's2', date, '19:00', '19:50')],
      );
    if (d === 3)
      plan(
        'c1',
        date,
        '14:00',
        10,
        [{ code: 'LARM', standardMinutes: null, grantedMinutes: null }],
        [visit('c1', 's3', date, '14:02', '14:12')],
      );
    if (d === 0 || d === 7) unplanned(visit('c1', 'n1', date, '12:00', '12:15'), date);
    if (d === 12) {
      const w = visit('c1', 's6', date, '15:00', '15:20');
      corrections.push({
        readerId: w.readerId,
        visitId: w.visitId,
        atMs: at(next, '08:00'),
        withdrawn: true,
        reason: 'tap-by-mistake',
      });
    }
    // c2
    const first = visit('c2', 's1', date, '09:00', '09:45');
    if (d === 9) plan('c2', date, '09:00', 45, [PC(45, 45)], [first], { status: 'understaffed' }, 2);
    else {
      const second = visit('c2', 's3', date, '09:01', '09:46', { groupId: first.visitId });
      first.groupId = first.visitId;
      if (d === 12) {
        const w = visit('c2', 's4', date, '09:02', '09:03', { groupId: first.visitId });
        corrections.push({
          readerId: w.readerId,
          visitId: w.visitId,
          atMs: at(next, '08:05'),
          withdrawn: true,
          reason: 'tap-by-mistake',
        });
      }
      plan('c2', date, '09:00', 45, [PC(45, 45)], [first, second], {}, 2);
    }
    plan(
      'c2',
      date,
      '20:00',
      30,
      [PC(30, 30)],
      [visit('c2', d === 11 ? 's4' : 's2', date, '20:00', '20:30')],
    );
    if (d === 4) unplanned(visit('c2', 's4', date, '23:30', '00:20', { endDate: next }), date);
    if (d === 6) unplanned(visit('c2', 's4', date, '01:30', '03:30'), date);
    // c3
    const morning =
      d === 6
        ? visit('c3', 's4', date, '07:30', '08:00')
        : visit(
            'c3',
            's5',
            date,
            '08:00',
            '08:30',
            d === 10 ? { timeQuality: 'uncorrected', anomalies: ['uncorrected-time'] } : {},
          );
    if (d === 7) morning.receivedAtMs = morning.endedAtMs! + 3 * DAY;
    plan('c3', date, '08:00', 30, [PC(30, 30)], [morning]);
    let evening: ReportVisit;
    if (d === 1) {
      evening = visit('c3', 's6', date, '18:00', '06:00', {
        endDate: next,
        endReason: 'auto-close',
        anomalies: ['missing-stop'],
      });
      corrections.push({
        readerId: evening.readerId,
        visitId: evening.visitId,
        atMs: at(next, '09:00'),
        endedAtMs: at(date, '18:30'),
        reason: 'forgot to tap out',
      });
    } else if (d === 8) evening = visit('c3', null, date, '18:00', '18:30', { anomalies: ['unknown-card'] });
    else evening = visit('c3', 's6', date, '18:00', '18:30');
    plan('c3', date, '18:00', 30, [PC(30, 30)], [evening]);
    if (d === 9) plan('c3', date, '12:00', 20, [SV(20, 20)], [], { reasonCode: 'client-cancelled' });
    if (d === 2 || d === 9) unplanned(visit('c3', 'r1', date, '10:00', '10:45'), date);
    // c4
    plan(
      'c4',
      date,
      '09:00',
      20,
      [SV(20, 20)],
      [visit('c4', 's5', date, '09:00', d === 0 ? '09:02' : '09:20')],
    );
    plan('c4', date, '17:00', 20, [SV(20, 20)], [visit('c4', 's5', date, '17:00', '17:20')]);
    // c5
    plan(
      'c5',
      date,
      '11:00',
      10,
      [{ code: 'MAT', standardMinutes: 10, grantedMinutes: null }],
      [visit('c5', 's3', date, '11:00', '11:10')],
    );
    // c6
    const away = d >= 7 && d <= 10;
    for (const t of ['10:00', '16:00'] as const) {
      const end = t === '10:00' ? '10:15' : '16:15';
      plan(
        'c6',
        date,
        t,
        15,
        [SV(20, 15)],
        away ? [] : [visit('c6', 's6', date, t, end)],
        away ? { reasonCode: 'client-in-hospital' } : {},
      );
    }
    // c7
    plan('c7', date, '10:00', 20, [PC(30, 20)], [visit('c7', 's3', date, '10:00', '10:20')]);
    if (d === 5) plan('c7', date, '17:00', 20, [PC(30, 20)], [], { reasonCode: 'staff-ill' });
    else plan('c7', date, '17:00', 20, [PC(30, 20)], [visit('c7', 's3', date, '17:00', '17:20')]);
  }
  return { registries: registries(monday), planned, matches, visits, corrections };
}
