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
 * - A withdrawn visit (a tap a coordinator marked as a mistake) counts nowhere; data quality counts it apart.
 */
import type { Match, MissedReasonCode, PlannedVisit } from '../care/model.js';
import {
  codeWeights,
  Lookup,
  occasionsOf,
  plannedByExecuted,
  round,
  splitWithdrawn,
  UNKNOWN,
} from './facts.js';
import { dataQualityFromCells, qualityCellsOf, type DataQuality } from './quality.js';
import type {
  Dimension,
  ExecutedCell,
  ExecutedCells,
  ExecutedParams,
  MissedField,
  Period,
  PlannedCell,
  Registries,
  ReportVisit,
  ServiceCodes,
  TapCount,
} from '../store/report-types.js';
import { isoWeek, type ReportClock } from './time.js';
import { DIFF_BINS, diffRanks } from '../store/report-rules.js';

export type {
  DiffSummary,
  Dimension,
  ExecutedCell,
  ExecutedCells,
  ExecutedParams,
  MissedField,
  Period,
  PlannedCell,
  ServiceCodes,
} from '../store/report-types.js';

export const DIMENSIONS: readonly Dimension[] = ['client', 'team', 'area', 'provider', 'serviceCode'];

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

const binOf = (d: number): number => (d < -15 ? 0 : d < -5 ? 1 : d <= 5 ? 2 : d <= 15 ? 3 : 4);

export const EXECUTED_NOTES = [
  'Local time; an occasion crossing midnight counts wholly in the day it started.',
  'Executed minutes are client time (first start to last end of an occasion); staff minutes add every staff visit.',
  'Occasions of unknown length (uncorrected auto-closed stop, open visit, stop without start) count as visits without minutes.',
  'Minutes of a visit with several service codes are split by standard minutes (equally when unknown).',
  'Visits withdrawn as mistaken taps count nowhere; data quality shows how many.',
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

export const binOfDiff = binOf;
export { DIFF_BINS, diffRanks };

const newMissed = (): Record<MissedField, number> => ({
  missedClientCancelled: 0,
  missedClientInHospital: 0,
  missedStaffIll: 0,
  missedOther: 0,
  missedNoReason: 0,
});

/** The cells of executed vs planned from facts in memory. */
export function executedCellsOf(
  facts: ExecutedFacts,
  params: ExecutedParams,
  clock: ReportClock,
): ExecutedCells {
  const inRange = (d: string) => d >= params.fromDate && d <= params.toDate;
  const codesKey = new Map<ServiceCodes, string>();
  const keyOfCodes = (c: ServiceCodes) => {
    let k = codesKey.get(c);
    if (k === undefined) codesKey.set(c, (k = JSON.stringify(c)));
    return k;
  };

  // Planned side.
  const planned = new Map<string, PlannedCell>();
  const plannedById = new Map<string, PlannedVisit>();
  const matchOf = new Map<string, Match>();
  for (const m of facts.matches) if (m.plannedVisitId !== null) matchOf.set(m.plannedVisitId, m);
  for (const p of facts.planned) {
    plannedById.set(p.plannedVisitId, p);
    if (!inRange(p.localDate)) continue;
    const k = `${p.localDate}\u0000${p.clientRef}\u0000${keyOfCodes(p.serviceCodes)}`;
    let c = planned.get(k);
    if (c === undefined)
      planned.set(
        k,
        (c = {
          date: p.localDate,
          clientRef: p.clientRef,
          codes: p.serviceCodes,
          visits: 0,
          minutes: 0,
          matched: 0,
          late: 0,
          understaffed: 0,
          pending: 0,
          missed: 0,
          reasons: newMissed(),
        }),
      );
    c.visits++;
    c.minutes += p.plannedMinutes;
    const m = matchOf.get(p.plannedVisitId);
    switch (m?.status ?? 'pending') {
      case 'matched':
        c.matched++;
        break;
      case 'late':
        c.late++;
        break;
      case 'missed':
        c.missed++;
        if (m?.reasonCode) {
          const f = MISSED_FIELD[m.reasonCode];
          if (f !== undefined) c.reasons[f]++;
        } else c.reasons.missedNoReason++;
        break;
      case 'understaffed':
        c.understaffed++;
        break;
      case 'pending':
      case 'unplanned':
        c.pending++;
        break;
    }
  }

  // Executed side.
  const executed = new Map<string, ExecutedCell>();
  const { counted, withdrawn } = splitWithdrawn(facts.executed);
  const occasions = occasionsOf(counted, () => plannedByExecuted(facts.matches));
  const diffs: number[] = [];
  let sumLengthMs = 0;
  let sumPlannedMinutes = 0;
  const used: ReportVisit[] = [];
  for (const o of occasions) {
    if (o.startMs === null) {
      // A stop without a start: no time to place it by; data quality counts it.
      used.push(...o.visits);
      continue;
    }
    const date = clock.localDate(o.startMs);
    if (!inRange(date)) continue;
    used.push(...o.visits);
    const p = o.plannedVisitId === null ? undefined : plannedById.get(o.plannedVisitId);
    const k = `${date}\u0000${o.clientRef ?? '\u0001'}\u0000${p === undefined ? '' : keyOfCodes(p.serviceCodes)}`;
    let c = executed.get(k);
    if (c === undefined)
      executed.set(
        k,
        (c = {
          date,
          clientRef: o.clientRef,
          codes: p === undefined ? null : p.serviceCodes,
          occasions: 0,
          withoutMinutes: 0,
          lengthMs: 0,
          staffMs: 0,
        }),
      );
    c.occasions++;
    if (o.lengthMs === null || o.staffMs === null) c.withoutMinutes++;
    else {
      c.lengthMs += o.lengthMs;
      c.staffMs += o.staffMs;
    }
    if (p !== undefined && o.lengthMs !== null) {
      diffs.push(o.lengthMs / 60_000 - p.plannedMinutes);
      sumLengthMs += o.lengthMs;
      sumPlannedMinutes += p.plannedMinutes;
    }
  }
  // Withdrawn visits only in data quality, after the counted ones: placed by their own start.
  for (const v of withdrawn)
    if (v.startedAtMs === null || inRange(clock.localDate(v.startedAtMs))) used.push(v);
  const bins = DIFF_BINS.map(() => 0);
  for (const d of diffs) bins[binOf(d)]!++;
  const sorted = Float64Array.from(diffs).sort();
  const ranks = diffRanks(sorted.length);
  const at = (i: number) => sorted[i]!;
  return {
    planned: [...planned.values()],
    executed: [...executed.values()],
    diffs: {
      count: sorted.length,
      sumLengthMs,
      sumPlannedMinutes,
      median:
        sorted.length === 0
          ? null
          : ranks.median.length === 1
            ? at(ranks.median[0]!)
            : (at(ranks.median[0]!) + at(ranks.median[1]!)) / 2,
      p10: sorted.length === 0 ? null : at(ranks.p10),
      p90: sorted.length === 0 ? null : at(ranks.p90),
      bins,
    },
    quality: qualityCellsOf(used, params.lateDeliveryHours),
  };
}

export function executedVsPlanned(
  facts: ExecutedFacts,
  params: ExecutedParams,
  clock: ReportClock,
): ExecutedReport {
  return executedFromCells(
    executedCellsOf(facts, params, clock),
    facts.registries,
    facts.taps,
    params,
    clock,
  );
}

/** Cells in one fixed order (date, client, service codes), so sums add up the same way from any source. */
function cellOrder<T extends { date: string; clientRef: string | null; codesKey: string }>(
  a: T,
  b: T,
): number {
  if (a.date !== b.date) return a.date < b.date ? -1 : 1;
  const ca = a.clientRef ?? '';
  const cb = b.clientRef ?? '';
  if (ca !== cb) return ca < cb ? -1 : 1;
  if ((a.clientRef === null) !== (b.clientRef === null)) return a.clientRef === null ? -1 : 1;
  return a.codesKey < b.codesKey ? -1 : a.codesKey > b.codesKey ? 1 : 0;
}

/** The report from its cells (from memory or from SQL). */
export function executedFromCells(
  cells: ExecutedCells,
  registries: Registries,
  taps: readonly TapCount[] | null | undefined,
  params: ExecutedParams,
  clock: ReportClock,
): ExecutedReport {
  const lookup = new Lookup(registries);
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
  const splits = (codes: ServiceCodes | null): Array<[string | null, number]> => {
    if (!by.has('serviceCode')) return NO_SPLIT;
    if (codes === null) return UNPLANNED;
    return codeWeights({ serviceCodes: codes });
  };
  const codesKeys = new Map<ServiceCodes, string>();
  const codesKey = (c: ServiceCodes | null) => {
    if (c === null) return '';
    let k = codesKeys.get(c);
    if (k === undefined) codesKeys.set(c, (k = JSON.stringify(c)));
    return k;
  };
  const keyed = <T extends { date: string; clientRef: string | null; codes: ServiceCodes | null }>(
    xs: readonly T[],
  ) => xs.map((c) => ({ ...c, codesKey: codesKey(c.codes) })).sort(cellOrder);

  for (const c of keyed(cells.planned)) {
    const granted = c.codes.some((x) => x.grantedMinutes !== null)
      ? c.codes.reduce((a, x) => a + (x.grantedMinutes ?? 0), 0)
      : null;
    for (const [code, w] of splits(c.codes)) addPlanned(rowFor(c.date, c.clientRef, code), c, w, granted);
    addPlanned(total, c, 1, granted);
  }
  for (const c of keyed(cells.executed)) {
    for (const [code, w] of splits(c.codes)) addExecuted(rowFor(c.date, c.clientRef, code), c, w);
    addExecuted(total, c, 1);
  }

  const finish = (r: ExecutedRow): ExecutedRow => ({
    ...r,
    plannedMinutes: round(r.plannedMinutes),
    grantedMinutes: r.grantedMinutes === null ? null : round(r.grantedMinutes),
    executedMinutes: round(r.executedMinutes / 60_000),
    executedStaffMinutes: round(r.executedStaffMinutes / 60_000),
    ratio: r.plannedMinutes > 0 ? round(r.executedMinutes / 60_000 / r.plannedMinutes, 4) : null,
  });
  const d = cells.diffs;
  const sortedRows = [...rows.values()].map(finish).sort(compareRows);
  return {
    kind: 'executed-vs-planned',
    params: { ...params, timeZone: clock.timeZone },
    notes: EXECUTED_NOTES,
    rows: sortedRows,
    total: finish(total),
    differences: {
      count: d.count,
      meanMinutes: d.count ? round((d.sumLengthMs / 60_000 - d.sumPlannedMinutes) / d.count) : null,
      medianMinutes: d.median,
      p10Minutes: d.p10,
      p90Minutes: d.p90,
      bins: DIFF_BINS.map((bin, i) => ({ bin, count: d.bins[i] ?? 0 })),
    },
    quality: dataQualityFromCells(cells.quality, lookup, params.lateDeliveryHours, taps),
  };
}

/**
 * A planned cell counts its visits once in every row it touches (with a service-code split, once per code);
 * its minutes are weighted by the code's share, so minutes add up to the total and visit counts per code may not.
 */
function addPlanned(r: ExecutedRow, c: PlannedCell, w: number, granted: number | null) {
  r.plannedVisits += c.visits;
  r.plannedMinutes += c.minutes * w;
  if (granted !== null) r.grantedMinutes = (r.grantedMinutes ?? 0) + granted * c.visits * w;
  r.matched += c.matched;
  r.late += c.late;
  r.understaffed += c.understaffed;
  r.pending += c.pending;
  r.missed += c.missed;
  for (const f of MISSED_FIELDS) r[f] += c.reasons[f];
}

const MISSED_FIELDS: readonly MissedField[] = [
  'missedClientCancelled',
  'missedClientInHospital',
  'missedStaffIll',
  'missedOther',
  'missedNoReason',
];

/** Executed minutes are accumulated in ms (exact integers without a service-code split), converted at the end. */
function addExecuted(r: ExecutedRow, c: ExecutedCell, w: number) {
  r.executedVisits += c.occasions;
  if (c.codes === null) r.unplanned += c.occasions;
  r.executedWithoutMinutes += c.withoutMinutes;
  r.executedMinutes += c.lengthMs * w;
  r.executedStaffMinutes += c.staffMs * w;
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
