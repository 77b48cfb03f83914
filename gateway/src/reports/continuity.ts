/**
 * Staff continuity, the national measure (personalkontinuitet, KKiK, published through Kolada): the number
 * of different staff a home-care client meets during 14 days, Monday to Sunday twice.
 *
 * Population: clients 65 or older (by birth year, or the integrator's explicit flag) whose decision is not
 * only safety alarm / meal delivery / relief / escort, active and living at home for the whole period (no
 * hospital or short-term-stay absence overlapping it), with two or more home-care visits on every day.
 * Counted: distinct staff who started a visit between 07:00 and 22:00 local time. Not counted: visits that
 * are only safety-alarm responses or meal deliveries (by the matched planned visit's service codes), and
 * licensed health and rehab staff (home nursing). A double-staffed occasion is one visit for the two-a-day
 * rule and two staff for the count. A withdrawn visit (a tap marked as a mistake) counts nowhere.
 */
import { hasCountingDecision, is65Plus, isActiveOn, type Match, type PlannedVisit } from '../care/model.js';
import {
  isAlarmOrMealOnly,
  Lookup,
  median,
  occasionsOf,
  plannedByExecuted,
  round,
  splitWithdrawn,
} from './facts.js';
import { dataQualityFromCells, qualityCellsOf, type DataQuality } from './quality.js';
import type {
  ContinuityCellParams,
  ContinuityCells,
  ContinuityDayCell,
  Registries,
  ReportVisit,
  TapCount,
} from '../store/report-types.js';
import { addDays, datesBetween, isoWeekday, type ReportClock } from './time.js';
import { EXCLUDED_CATEGORIES } from '../store/report-rules.js';

export { EXCLUDED_CATEGORIES };

export interface ContinuityParams {
  /** First day of the period: a Monday. */
  fromDate: string;
  /** Length in days (14 in the national measure). */
  days?: number;
  /** Counted window, local 'HH:MM' [from, to). */
  countFrom?: string;
  countTo?: string;
  lateDeliveryHours?: number;
}

export type ExclusionReason =
  | 'not-active-whole-period'
  | 'age-unknown'
  | 'under-65'
  | 'only-alarm-meal-relief-escort'
  | 'not-at-home'
  | 'too-few-visits';

export interface Exclusion {
  clientRef: string;
  areaId: string;
  reason: ExclusionReason;
  detail: string;
}

export interface ContinuityClient {
  clientRef: string;
  areaId: string;
  staff: number;
  /** Staff counted if each double-staffed occasion counted only its first staff member. */
  staffWithoutDoubleStaffing: number;
  palliative: boolean;
  doubleStaffedOccasions: number;
  /** Staff visits in the counted window; of them by the named care contact (null without a contact). */
  countedVisits: number;
  careContactVisits: number | null;
}

export interface AreaFigure {
  areaId: string;
  clients: number;
  mean: number | null;
  median: number | null;
}

export interface ContinuityReport {
  kind: 'continuity';
  params: Required<Omit<ContinuityParams, 'lateDeliveryHours'>> & { toDate: string; timeZone: string };
  notes: string[];
  clients: number;
  /** The published figure: the mean over clients in the measure, 1 decimal. */
  mean: number | null;
  median: number | null;
  distribution: Array<{ staff: number; clients: number }>;
  byArea: AreaFigure[];
  rows: ContinuityClient[];
  excluded: Exclusion[];
  excludedByReason: Record<ExclusionReason, number>;
  breakdown: {
    clientsWithDoubleStaffing: number;
    meanWithoutDoubleStaffing: number | null;
    /** mean − meanWithoutDoubleStaffing. */
    doubleStaffingRaise: number | null;
    palliativeClients: number;
    meanWithoutPalliative: number | null;
    /** mean − meanWithoutPalliative. */
    palliativeRaise: number | null;
  };
  careContact: {
    clientsWithContact: number;
    clientsWithoutContact: number;
    countedVisits: number;
    byContact: number;
    /** byContact / countedVisits over clients with a named contact; null if none. */
    share: number | null;
    byArea: Array<{ areaId: string; countedVisits: number; byContact: number; share: number | null }>;
  };
  quality: DataQuality;
}

export const CONTINUITY_NOTES = [
  'Population: 65+, a decision beyond safety alarm/meal delivery/relief/escort, active and at home the whole period, two or more home-care visits every day.',
  'Counted: distinct staff starting a visit 07:00-22:00 local time; licensed health and rehab staff and safety-alarm/meal-delivery visits are not counted.',
  'A double-staffed occasion is one visit for the two-a-day rule; both staff count.',
  'Unplanned visits count as home-care visits (their service is unknown).',
  'Visits withdrawn as mistaken taps count nowhere (not for the two-a-day rule, not as staff met).',
];

const minutesOf = (hhmm: string): number => {
  const m = /^([01]\d|2[0-4]):([0-5]\d)$/.exec(hhmm);
  if (!m) throw new Error(`bad time "${hhmm}": write it as HH:MM, e.g. 07:00`);
  return +m[1]! * 60 + +m[2]!;
};

export interface ContinuityFacts {
  registries: Registries;
  /** Tap assurance counts (data quality); null/absent when not recorded. */
  taps?: readonly TapCount[] | null;
  planned: readonly PlannedVisit[];
  matches: readonly Match[];
  executed: readonly ReportVisit[];
}

interface Acc {
  staff: number;
  firstStaff: number;
  occasionsPerDay: Map<string, number>;
  doubleStaffed: number;
  counted: number;
  byContact: number;
}

export function continuityPeriod(params: ContinuityParams): { fromDate: string; toDate: string } {
  if (isoWeekday(params.fromDate) !== 1)
    throw new Error(
      `the continuity period starts on a Monday; ${params.fromDate} is not one (use e.g. ${addDays(params.fromDate, (8 - isoWeekday(params.fromDate)) % 7)})`,
    );
  return { fromDate: params.fromDate, toDate: addDays(params.fromDate, (params.days ?? 14) - 1) };
}

/** The cells' parameters of a report's parameters (checks the period and the counted hours). */
export function continuityCellParams(params: ContinuityParams): ContinuityCellParams {
  const { fromDate, toDate } = continuityPeriod(params);
  return {
    fromDate,
    toDate,
    countFromMinute: minutesOf(params.countFrom ?? '07:00'),
    countToMinute: minutesOf(params.countTo ?? '22:00'),
    ...(params.lateDeliveryHours === undefined ? {} : { lateDeliveryHours: params.lateDeliveryHours }),
  };
}

/** The continuity cells from facts in memory. */
export function continuityCellsOf(
  facts: Omit<ContinuityFacts, 'taps'>,
  p: ContinuityCellParams,
  clock: ReportClock,
): ContinuityCells {
  const { fromDate, toDate, countFromMinute: cFrom, countToMinute: cTo } = p;
  const lookup = new Lookup(facts.registries);
  const planned = new Map<string, PlannedVisit>();
  for (const pv of facts.planned) planned.set(pv.plannedVisitId, pv);

  const days = new Map<string, ContinuityDayCell>();
  const met = new Map<
    string,
    { staff: Set<string>; first: Set<string>; counted: number; byContact: number }
  >();
  const metBy = (clientRef: string) => {
    let m = met.get(clientRef);
    if (!m) met.set(clientRef, (m = { staff: new Set(), first: new Set(), counted: 0, byContact: 0 }));
    return m;
  };

  const used: ReportVisit[] = [];
  const { counted, withdrawn } = splitWithdrawn(facts.executed);
  for (const o of occasionsOf(counted, () => plannedByExecuted(facts.matches))) {
    if (o.startMs === null || o.clientRef === null) continue;
    const { date } = clock.local(o.startMs);
    if (date < fromDate || date > toDate) continue;
    used.push(...o.visits);
    const pv = o.plannedVisitId === null ? undefined : planned.get(o.plannedVisitId);
    if (pv !== undefined && isAlarmOrMealOnly(pv, lookup)) continue;
    // Visits by home-nursing staff are not home-care visits and their staff are not counted.
    const care = o.visits.filter(
      (v) => !EXCLUDED_CATEGORIES.includes(lookup.staff.get(v.staffRef ?? '')?.category ?? ''),
    );
    if (care.length === 0) continue;
    const dk = `${o.clientRef}\u0000${date}`;
    let d = days.get(dk);
    if (!d) days.set(dk, (d = { clientRef: o.clientRef, date, occasions: 0, doubleStaffed: 0 }));
    d.occasions++;
    if (new Set(care.map((v) => v.staffRef ?? v.cardRef)).size > 1) d.doubleStaffed++;
    const inWindow = care
      .filter((v) => v.startedAtMs !== null && v.staffRef !== null)
      .filter((v) => {
        const m = clock.local(v.startedAtMs!).minuteOfDay;
        return m >= cFrom && m < cTo;
      })
      .sort((x, y) => x.startedAtMs! - y.startedAtMs! || (x.staffRef! < y.staffRef! ? -1 : 1));
    if (inWindow.length === 0) continue;
    const m = metBy(o.clientRef);
    const contact = lookup.clients.get(o.clientRef)?.careContactStaffRef ?? null;
    for (const v of inWindow) {
      m.staff.add(v.staffRef!);
      m.counted++;
      if (contact !== null && v.staffRef === contact) m.byContact++;
    }
    m.first.add(inWindow[0]!.staffRef!);
  }
  // Withdrawn visits only in data quality, after the counted ones (the same rule for which visits are used).
  for (const v of withdrawn) {
    if (v.startedAtMs === null || v.clientRef === null) continue;
    const { date } = clock.local(v.startedAtMs);
    if (date >= fromDate && date <= toDate) used.push(v);
  }
  return {
    days: [...days.values()],
    clients: [...met].map(([clientRef, m]) => ({
      clientRef,
      staff: m.staff.size,
      firstStaff: m.first.size,
      counted: m.counted,
      byContact: m.byContact,
    })),
    quality: qualityCellsOf(used, p.lateDeliveryHours),
  };
}

export function continuity(
  facts: ContinuityFacts,
  params: ContinuityParams,
  clock: ReportClock,
): ContinuityReport {
  return continuityFromCells(
    continuityCellsOf(facts, continuityCellParams(params), clock),
    facts.registries,
    facts.taps,
    params,
    clock,
  );
}

/** The report from its cells (from memory or from SQL). */
export function continuityFromCells(
  cells: ContinuityCells,
  registries: Registries,
  taps: readonly TapCount[] | null | undefined,
  params: ContinuityParams,
  clock: ReportClock,
): ContinuityReport {
  const { fromDate, toDate } = continuityPeriod(params);
  const days = params.days ?? 14;
  const countFrom = params.countFrom ?? '07:00';
  const countTo = params.countTo ?? '22:00';
  const lookup = new Lookup(registries);

  const acc = new Map<string, Acc>();
  const accOf = (clientRef: string): Acc => {
    let a = acc.get(clientRef);
    if (!a)
      acc.set(
        clientRef,
        (a = {
          staff: 0,
          firstStaff: 0,
          occasionsPerDay: new Map(),
          doubleStaffed: 0,
          counted: 0,
          byContact: 0,
        }),
      );
    return a;
  };
  for (const d of cells.days) {
    const a = accOf(d.clientRef);
    a.occasionsPerDay.set(d.date, (a.occasionsPerDay.get(d.date) ?? 0) + d.occasions);
    a.doubleStaffed += d.doubleStaffed;
  }
  for (const c of cells.clients) {
    const a = accOf(c.clientRef);
    a.staff += c.staff;
    a.firstStaff += c.firstStaff;
    a.counted += c.counted;
    a.byContact += c.byContact;
  }

  const dates = datesBetween(fromDate, toDate);
  const rows: ContinuityClient[] = [];
  const excluded: Exclusion[] = [];
  for (const c of [...registries.clients].sort((a, b) => (a.clientRef < b.clientRef ? -1 : 1))) {
    const ex = (reason: ExclusionReason, detail: string) =>
      excluded.push({ clientRef: c.clientRef, areaId: c.areaId, reason, detail });
    const age = is65Plus(c, fromDate);
    const a = acc.get(c.clientRef);
    if (!isActiveOn(c, fromDate) || !isActiveOn(c, toDate)) {
      ex('not-active-whole-period', `active ${c.activeFrom}..${c.activeTo ?? ''}`);
      continue;
    }
    if (age === null) {
      ex('age-unknown', 'no birth year and no explicit flag');
      continue;
    }
    if (!age) {
      ex('under-65', c.birthYear === null ? 'flag' : `born ${c.birthYear}`);
      continue;
    }
    if (!hasCountingDecision(c)) {
      ex('only-alarm-meal-relief-escort', c.decisionTypes.join(',') || 'no decision types');
      continue;
    }
    const away = c.absences.find((x) => x.from <= toDate && x.to >= fromDate);
    if (away) {
      ex('not-at-home', `${away.kind} ${away.from}..${away.to}`);
      continue;
    }
    const short = dates.filter((d) => (a?.occasionsPerDay.get(d) ?? 0) < 2);
    if (short.length > 0 || !a || a.occasionsPerDay.size === 0) {
      ex('too-few-visits', `fewer than 2 visits on ${short.length} day(s), first ${short[0] ?? fromDate}`);
      continue;
    }
    rows.push({
      clientRef: c.clientRef,
      areaId: c.areaId,
      staff: a.staff,
      staffWithoutDoubleStaffing: a.firstStaff,
      palliative: c.palliative,
      doubleStaffedOccasions: a.doubleStaffed,
      countedVisits: a.counted,
      careContactVisits: c.careContactStaffRef === null ? null : a.byContact,
    });
  }

  const mean = (xs: number[]) => (xs.length ? round(xs.reduce((s, x) => s + x, 0) / xs.length, 1) : null);
  const staffCounts = rows.map((r) => r.staff);
  const m = mean(staffCounts);
  const dist = new Map<number, number>();
  for (const s of staffCounts) dist.set(s, (dist.get(s) ?? 0) + 1);
  const areas = [...new Set(rows.map((r) => r.areaId))].sort();
  const withoutDouble = mean(rows.map((r) => r.staffWithoutDoubleStaffing));
  const withoutPall = mean(rows.filter((r) => !r.palliative).map((r) => r.staff));
  const withContact = rows.filter((r) => r.careContactVisits !== null);
  const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
  const ccShare = (rs: ContinuityClient[]) => {
    const counted = sum(rs.map((r) => r.countedVisits));
    const by = sum(rs.map((r) => r.careContactVisits ?? 0));
    return { countedVisits: counted, byContact: by, share: counted ? round(by / counted, 4) : null };
  };
  const excludedByReason = {
    'not-active-whole-period': 0,
    'age-unknown': 0,
    'under-65': 0,
    'only-alarm-meal-relief-escort': 0,
    'not-at-home': 0,
    'too-few-visits': 0,
  } satisfies Record<ExclusionReason, number>;
  for (const e of excluded) excludedByReason[e.reason]++;

  return {
    kind: 'continuity',
    params: { fromDate, toDate, days, countFrom, countTo, timeZone: clock.timeZone },
    notes: CONTINUITY_NOTES,
    clients: rows.length,
    mean: m,
    median: median(staffCounts),
    distribution: [...dist].sort(([a], [b]) => a - b).map(([staff, clients]) => ({ staff, clients })),
    byArea: areas.map((areaId) => {
      const xs = rows.filter((r) => r.areaId === areaId).map((r) => r.staff);
      return { areaId, clients: xs.length, mean: mean(xs), median: median(xs) };
    }),
    rows,
    excluded,
    excludedByReason,
    breakdown: {
      clientsWithDoubleStaffing: rows.filter((r) => r.doubleStaffedOccasions > 0).length,
      meanWithoutDoubleStaffing: withoutDouble,
      doubleStaffingRaise: m === null || withoutDouble === null ? null : round(m - withoutDouble, 1),
      palliativeClients: rows.filter((r) => r.palliative).length,
      meanWithoutPalliative: withoutPall,
      palliativeRaise: m === null || withoutPall === null ? null : round(m - withoutPall, 1),
    },
    careContact: {
      clientsWithContact: withContact.length,
      clientsWithoutContact: rows.length - withContact.length,
      ...ccShare(withContact),
      byArea: areas.map((areaId) => ({
        areaId,
        ...ccShare(withContact.filter((r) => r.areaId === areaId)),
      })),
    },
    quality: dataQualityFromCells(cells.quality, lookup, params.lateDeliveryHours, taps),
  };
}

export interface MonthlyRow extends AreaFigure {
  month: string;
  fromDate: string;
  toDate: string;
  threshold: number;
  /** mean > threshold: the unit manager analyses the month. */
  analyse: boolean;
}

/** The monthly follow-up: each month's measure (the 14 days from its first Monday) per area. */
export function monthlyRows(
  perMonth: Array<{ month: string; report: ContinuityReport }>,
  threshold = 15,
): MonthlyRow[] {
  const out: MonthlyRow[] = [];
  for (const { month, report } of perMonth)
    for (const a of report.byArea)
      out.push({
        month,
        fromDate: report.params.fromDate,
        toDate: report.params.toDate,
        ...a,
        threshold,
        analyse: a.mean !== null && a.mean > threshold,
      });
  return out;
}
