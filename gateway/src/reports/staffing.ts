/**
 * Double staffing (dubbelbemanning): the share of planned visits that need two staff, the share of executed
 * occasions that had two or more, and the planned double-staffed visits that got fewer than two
 * (understaffed), per area and in total.
 */
import type { Match, PlannedVisit } from '../care/model.js';
import { executedKey } from '../care/model.js';
import { Lookup, occasionsOf, plannedByExecuted, round, splitWithdrawn, UNKNOWN } from './facts.js';
import { dataQuality, type DataQuality } from './quality.js';
import type { Registries, ReportVisit, TapCount } from '../store/report-types.js';
import type { ReportClock } from './time.js';

export interface StaffingParams {
  fromDate: string;
  toDate: string;
  lateDeliveryHours?: number;
}

export interface StaffingRow {
  areaId: string;
  plannedVisits: number;
  plannedDouble: number;
  plannedDoubleShare: number | null;
  executedOccasions: number;
  executedDouble: number;
  executedDoubleShare: number | null;
  /** Planned for two, made (at least one visit) by fewer than two distinct staff. */
  understaffed: number;
  /** Planned for one, made by two or more. */
  unplannedDouble: number;
}

export interface StaffingReport {
  kind: 'double-staffing';
  params: StaffingParams & { timeZone: string };
  notes: string[];
  rows: StaffingRow[];
  total: StaffingRow;
  quality: DataQuality;
}

export interface StaffingFacts {
  registries: Registries;
  /** Tap assurance counts (data quality); null/absent when not recorded. */
  taps?: readonly TapCount[] | null;
  planned: readonly PlannedVisit[];
  matches: readonly Match[];
  executed: readonly ReportVisit[];
}

export const STAFFING_NOTES = [
  'An occasion is one visit or a group of overlapping visits at one reader (double staffing); staff are counted by staff member, or by card when the card is unknown.',
  'Understaffed: a visit planned for two staff that was made, by fewer than two. Planned visits not made are missed, not understaffed.',
  'Visits withdrawn as mistaken taps count nowhere: a double-staffed visit with one tap withdrawn had one staff member.',
];

const empty = (areaId: string): StaffingRow => ({
  areaId,
  plannedVisits: 0,
  plannedDouble: 0,
  plannedDoubleShare: null,
  executedOccasions: 0,
  executedDouble: 0,
  executedDoubleShare: null,
  understaffed: 0,
  unplannedDouble: 0,
});

export function doubleStaffing(
  facts: StaffingFacts,
  params: StaffingParams,
  clock: ReportClock,
): StaffingReport {
  const lookup = new Lookup(facts.registries);
  const rows = new Map<string, StaffingRow>();
  const total = empty('(all)');
  const rowOf = (clientRef: string | null) => {
    const areaId = (clientRef !== null && lookup.clients.get(clientRef)?.areaId) || UNKNOWN;
    let r = rows.get(areaId);
    if (!r) rows.set(areaId, (r = empty(areaId)));
    return r;
  };
  const inRange = (d: string) => d >= params.fromDate && d <= params.toDate;
  const planned = new Map<string, PlannedVisit>();
  for (const p of facts.planned) {
    planned.set(p.plannedVisitId, p);
    if (!inRange(p.localDate)) continue;
    for (const r of [rowOf(p.clientRef), total]) {
      r.plannedVisits++;
      if (p.staffCount === 2) r.plannedDouble++;
    }
  }
  // People per planned visit, over all occasions matched to it (a second worker may come separately).
  let plannedOf: Map<string, string> | undefined;
  const linkMap = () => (plannedOf ??= plannedByExecuted(facts.matches));
  const peopleOfPlan = new Map<string, Set<string>>();
  const used: ReportVisit[] = [];
  const { counted, withdrawn } = splitWithdrawn(facts.executed);
  for (const o of occasionsOf(counted, linkMap)) {
    if (o.startMs === null || !inRange(clock.localDate(o.startMs))) continue;
    used.push(...o.visits);
    for (const r of [rowOf(o.clientRef), total]) {
      r.executedOccasions++;
      if (o.people >= 2) r.executedDouble++;
    }
    for (const v of o.visits) {
      const pid =
        v.plannedVisitId !== undefined ? (v.plannedVisitId ?? undefined) : linkMap().get(executedKey(v));
      if (pid === undefined) continue;
      let s = peopleOfPlan.get(pid);
      if (!s) peopleOfPlan.set(pid, (s = new Set()));
      s.add(v.staffRef ?? `card:${v.cardRef}`);
    }
  }
  // Withdrawn visits only in data quality, after the counted ones.
  for (const v of withdrawn)
    if (v.startedAtMs !== null && inRange(clock.localDate(v.startedAtMs))) used.push(v);
  for (const [pid, people] of peopleOfPlan) {
    const p = planned.get(pid);
    if (p === undefined || !inRange(p.localDate)) continue;
    for (const r of [rowOf(p.clientRef), total]) {
      if (p.staffCount === 2 && people.size < 2) r.understaffed++;
      if (p.staffCount === 1 && people.size >= 2) r.unplannedDouble++;
    }
  }
  const finish = (r: StaffingRow): StaffingRow => ({
    ...r,
    plannedDoubleShare: r.plannedVisits ? round(r.plannedDouble / r.plannedVisits, 4) : null,
    executedDoubleShare: r.executedOccasions ? round(r.executedDouble / r.executedOccasions, 4) : null,
  });
  return {
    kind: 'double-staffing',
    params: { ...params, timeZone: clock.timeZone },
    notes: STAFFING_NOTES,
    rows: [...rows.values()].sort((a, b) => (a.areaId < b.areaId ? -1 : 1)).map(finish),
    total: finish(total),
    quality: dataQuality(used, lookup, params.lateDeliveryHours, facts.taps),
  };
}
