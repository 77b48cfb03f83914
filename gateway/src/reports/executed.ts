/**
 * Executed vs planned (utförd vs planerad, and beviljad where granted minutes are known), grouped by any
 * of client, team, area, provider and service code, per day, ISO week, month or the whole range.
 *
 * Rules (docs/reports.md says the same, with a worked example):
 * - Planned figures come from planned visits whose local date is in the range; a planned visit belongs to
 *   its planned local date.
 * - Executed figures come from occasions (a visit, or a double-staffed group of visits at one reader) that
 *   started in the range, in local time; an occasion crossing midnight counts wholly in the day it started.
 * - An occasion's length is the span from its first start to its last end (client time); staff minutes
 *   add up every staff member's own visit. An occasion whose length is unknown (a stop the gateway closed
 *   itself and no one corrected, an open visit, a stop without a start) counts as a visit but adds no
 *   minutes: `executedWithoutMinutes` says how many.
 * - An occasion matched to a planned visit takes its service codes; minutes are split over the codes by
 *   standard minutes (equally when none are known). Unplanned occasions have service code '(unplanned)'.
 * - Team, area and provider are the client's.
 */
import type { Match, MissedReasonCode, PlannedVisit } from '../care/model.js';
import {
  codeWeights,
  Lookup,
  median,
  type Occasion,
  occasionsOf,
  percentile,
  plannedByExecuted,
  round,
  UNKNOWN,
} from './facts.js';
import type { Registries, ReportVisit, TapCount } from './source.js';
import { dataQuality, type DataQuality } from './quality.js';
import { isoWeek, type ReportClock } from './time.js';

export type Period = 'day' | 'week' | 'month' | 'range';
export type Dimension = 'client' | 'team' | 'area' | 'provider' | 'serviceCode';
export const DIMENSIONS: readonly Dimension[] = ['client', 'team', 'area', 'provider', 'serviceCode'];

export interface ExecutedParams {
  fromDate: string;
  toDate: string;
  period: Period;
  groupBy: readonly Dimension[];
  lateDeliveryHours?: number;
}

export interface ExecutedRow {
  period: string;
  clientRef: string | null;
  teamId: string | null;
  areaId: string | null;
  providerId: string | null;
  serviceCode: string | null;
  plannedVisits: number;
  plannedMinutes: number;
  /** Sum of the granted minutes known on planned visits; null when none is known. */
  grantedMinutes: number | null;
  executedVisits: number;
  executedMinutes: number;
  executedStaffMinutes: number;
  executedWithoutMinutes: number;
  /** executedMinutes / plannedMinutes; null without planned minutes. */
  ratio: number | null;
  matched: number;
  late: number;
  missed: number;
  understaffed: number;
  pending: number;
  unplanned: number;
  missedClientCancelled: number;
  missedClientInHospital: number;
  missedStaffIll: number;
  missedOther: number;
  missedNoReason: number;
}

export interface Differences {
  /** Planned visits with a matched occasion of known length. */
  count: number;
  meanMinutes: number | null;
  medianMinutes: number | null;
  p10Minutes: number | null;
  p90Minutes: number | null;
  /** Executed − planned minutes per visit, in bins. */
  bins: Array<{ bin: string; count: number }>;
}

export interface ExecutedReport {
  kind: 'executed-vs-planned';
  params: ExecutedParams & { timeZone: string };
  notes: string[];
  rows: ExecutedRow[];
  total: ExecutedRow;
  differences: Differences;
  quality: DataQuality;
}

export const DIFF_BINS = ['< -15', '-15 to -5', '-5 to +5', '+5 to +15', '> +15'] as const;
const binOf = (d: number): number => (d < -15 ? 0 : d < -5 ? 1 : d <= 5 ? 2 : d <= 15 ? 3 : 4);

export const EXECUTED_NOTES = [
  'Local time; an occasion crossing midnight counts wholly in the day it started.',
  'Executed minutes are client time (first start to last end of an occasion); staff minutes add every staff visit.',
  'Occasions of unknown length (uncorrected auto-closed stop, open visit, stop without start) count as visits without minutes.',
  'Minutes of a visit with several service codes are split by standard minutes (equally when unknown).',
];

function periodOf(date: string, period: Period, p: ExecutedParams): string {
  switch (period) {
    case 'day':
      return date;
    case 'week':
      return isoWeek(date);
    case 'month':
      return date.slice(0, 7);
    case 'range':
      return `${p.fromDate}..${p.toDate}`;
  }
}

const emptyRow = (): ExecutedRow => ({
  period: '',
  clientRef: null,
  teamId: null,
  areaId: null,
  providerId: null,
  serviceCode: null,
  plannedVisits: 0,
  plannedMinutes: 0,
  grantedMinutes: null,
  executedVisits: 0,
  executedMinutes: 0,
  executedStaffMinutes: 0,
  executedWithoutMinutes: 0,
  ratio: null,
  matched: 0,
  late: 0,
  missed: 0,
  understaffed: 0,
  pending: 0,
  unplanned: 0,
  missedClientCancelled: 0,
  missedClientInHospital: 0,
  missedStaffIll: 0,
  missedOther: 0,
  missedNoReason: 0,
});

type MissedField =
  'missedClientCancelled' | 'missedClientInHospital' | 'missedStaffIll' | 'missedOther' | 'missedNoReason';
const MISSED_FIELD: Record<MissedReasonCode, MissedField> = {
  'client-cancelled': 'missedClientCancelled',
  'client-in-hospital': 'missedClientInHospital',
  'staff-ill': 'missedStaffIll',
  other: 'missedOther',
};

export interface ExecutedFacts {
  registries: Registries;
  /** Tap assurance counts (data quality); null/absent when not recorded. */
  taps?: readonly TapCount[] | null;
  planned: readonly PlannedVisit[];
  matches: readonly Match[];
  executed: readonly ReportVisit[];
}

export function executedVsPlanned(
  facts: ExecutedFacts,
  params: ExecutedParams,
  clock: ReportClock,
): ExecutedReport {
  const lookup = new Lookup(facts.registries);
  const by = new Set(params.groupBy);
  const rows = new Map<string, ExecutedRow>();
  const total = emptyRow();
  total.period = `${params.fromDate}..${params.toDate}`;

  // Row keys are built from cached parts (a period per date, the dimensions per client): no row object is
  // made for a key that exists already.
  const periods = new Map<string, string>();
  const clientParts = new Map<string | null, string>();
  const rowFor = (date: string, clientRef: string | null, code: string | null): ExecutedRow => {
    let period = periods.get(date);
    if (period === undefined) periods.set(date, (period = periodOf(date, params.period, params)));
    let cp = clientParts.get(clientRef);
    if (cp === undefined) {
      const c = clientRef === null ? undefined : lookup.clients.get(clientRef);
      cp = [
        by.has('client') ? (clientRef ?? UNKNOWN) : '',
        by.has('team') ? (c?.teamId ?? UNKNOWN) : '',
        by.has('area') ? (c?.areaId ?? UNKNOWN) : '',
        by.has('provider') ? (c?.providerId ?? UNKNOWN) : '',
      ].join('\u0000');
      clientParts.set(clientRef, cp);
    }
    const key = `${period}\u0000${cp}\u0000${by.has('serviceCode') ? (code ?? UNKNOWN) : ''}`;
    const existing = rows.get(key);
    if (existing) return existing;
    const c = clientRef === null ? undefined : lookup.clients.get(clientRef);
    const r = emptyRow();
    r.period = period;
    if (by.has('client')) r.clientRef = clientRef ?? UNKNOWN;
    if (by.has('team')) r.teamId = c?.teamId ?? UNKNOWN;
    if (by.has('area')) r.areaId = c?.areaId ?? UNKNOWN;
    if (by.has('provider')) r.providerId = c?.providerId ?? UNKNOWN;
    if (by.has('serviceCode')) r.serviceCode = code ?? UNKNOWN;
    rows.set(key, r);
    return r;
  };
  const NO_SPLIT: Array<[string | null, number]> = [[null, 1]];
  const UNPLANNED: Array<[string | null, number]> = [['(unplanned)', 1]];
  const weights = new Map<PlannedVisit['serviceCodes'], Array<[string, number]>>();
  const splits = (p: PlannedVisit | undefined): Array<[string | null, number]> => {
    if (!by.has('serviceCode')) return NO_SPLIT;
    if (p === undefined) return UNPLANNED;
    let w = weights.get(p.serviceCodes);
    if (w === undefined) weights.set(p.serviceCodes, (w = codeWeights(p)));
    return w;
  };

  // Planned side.
  const plannedById = new Map<string, PlannedVisit>();
  const inRange = (d: string) => d >= params.fromDate && d <= params.toDate;
  const matchOf = new Map<string, Match>();
  for (const m of facts.matches) if (m.plannedVisitId !== null) matchOf.set(m.plannedVisitId, m);
  for (const p of facts.planned) {
    plannedById.set(p.plannedVisitId, p);
    if (!inRange(p.localDate)) continue;
    const granted = p.serviceCodes.some((c) => c.grantedMinutes !== null)
      ? p.serviceCodes.reduce((a, c) => a + (c.grantedMinutes ?? 0), 0)
      : null;
    const m = matchOf.get(p.plannedVisitId);
    for (const [code, w] of splits(p)) addPlanned(rowFor(p.localDate, p.clientRef, code), p, w, m, granted);
    addPlanned(total, p, 1, m, granted);
  }

  // Executed side.
  const occasions = occasionsOf(facts.executed, () => plannedByExecuted(facts.matches));
  const diffs: number[] = [];
  const usedVisits: ReportVisit[] = [];
  for (const o of occasions) {
    if (o.startMs === null) {
      // A stop without a start: no time to place it by; data quality counts it.
      usedVisits.push(...o.visits);
      continue;
    }
    const date = clock.localDate(o.startMs);
    if (!inRange(date)) continue;
    usedVisits.push(...o.visits);
    const p = o.plannedVisitId === null ? undefined : plannedById.get(o.plannedVisitId);
    for (const [code, w] of splits(p)) addOccasion(rowFor(date, o.clientRef, code), o, w, p === undefined);
    addOccasion(total, o, 1, p === undefined);
    if (p !== undefined && o.lengthMs !== null) diffs.push(o.lengthMs / 60_000 - p.plannedMinutes);
  }

  const finish = (r: ExecutedRow): ExecutedRow => ({
    ...r,
    plannedMinutes: round(r.plannedMinutes),
    grantedMinutes: r.grantedMinutes === null ? null : round(r.grantedMinutes),
    executedMinutes: round(r.executedMinutes / 60_000),
    executedStaffMinutes: round(r.executedStaffMinutes / 60_000),
    ratio: r.plannedMinutes > 0 ? round(r.executedMinutes / 60_000 / r.plannedMinutes, 4) : null,
  });
  const bins = DIFF_BINS.map((bin) => ({ bin, count: 0 }));
  for (const d of diffs) bins[binOf(d)]!.count++;
  const sortedRows = [...rows.values()].map(finish).sort(compareRows);
  return {
    kind: 'executed-vs-planned',
    params: { ...params, timeZone: clock.timeZone },
    notes: EXECUTED_NOTES,
    rows: sortedRows,
    total: finish(total),
    differences: {
      count: diffs.length,
      meanMinutes: diffs.length ? round(diffs.reduce((a, b) => a + b, 0) / diffs.length) : null,
      medianMinutes: median(diffs),
      p10Minutes: percentile(diffs, 10),
      p90Minutes: percentile(diffs, 90),
      bins,
    },
    quality: dataQuality(usedVisits, lookup, params.lateDeliveryHours, facts.taps),
  };
}

/**
 * A planned visit counts once in every row it touches (with a service-code split, once per code); its
 * minutes are weighted by the code's share, so minutes add up to the total and visit counts per code may not.
 */
function addPlanned(
  r: ExecutedRow,
  p: PlannedVisit,
  w: number,
  m: Match | undefined,
  granted: number | null,
) {
  r.plannedVisits++;
  r.plannedMinutes += p.plannedMinutes * w;
  if (granted !== null) r.grantedMinutes = (r.grantedMinutes ?? 0) + granted * w;
  const status = m?.status ?? 'pending';
  switch (status) {
    case 'matched':
      r.matched++;
      break;
    case 'late':
      r.late++;
      break;
    case 'missed':
      r.missed++;
      r[m?.reasonCode ? MISSED_FIELD[m.reasonCode] : 'missedNoReason']++;
      break;
    case 'understaffed':
      r.understaffed++;
      break;
    case 'pending':
    case 'unplanned':
      r.pending++;
      break;
  }
}

/** Executed minutes are accumulated in ms (exact integers without a service-code split), converted at the end. */
function addOccasion(r: ExecutedRow, o: Occasion, w: number, unplanned: boolean) {
  r.executedVisits++;
  if (unplanned) r.unplanned++;
  if (o.lengthMs === null || o.staffMs === null) r.executedWithoutMinutes++;
  else {
    r.executedMinutes += o.lengthMs * w;
    r.executedStaffMinutes += o.staffMs * w;
  }
}

const keyOf = (r: ExecutedRow) => [
  r.period,
  r.areaId ?? '',
  r.providerId ?? '',
  r.teamId ?? '',
  r.clientRef ?? '',
  r.serviceCode ?? '',
];
function compareRows(a: ExecutedRow, b: ExecutedRow): number {
  const ka = keyOf(a);
  const kb = keyOf(b);
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
  return 0;
}
