/**
 * Runs a report against a ReportSource: one unit of work per report (the registries, then the plan, the
 * matches and the executed visits of the report's UTC window), then the pure computation.
 */
import {
  continuity,
  continuityCellParams,
  continuityFromCells,
  continuityPeriod,
  monthlyRows,
  type ContinuityParams,
  type ContinuityReport,
  type MonthlyRow,
} from './continuity.js';
import {
  executedFromCells,
  executedVsPlanned,
  type ExecutedParams,
  type ExecutedReport,
} from './executed.js';
import { Lookup } from './facts.js';
import { dataQuality, dataQualityFromCells, type DataQuality } from './quality.js';
import { collect, type Registries, type ReportSource, type ReportVisit, type TapCount } from './source.js';
import { doubleStaffing, type StaffingParams, type StaffingReport } from './staffing.js';
import { addDays, firstMondayOf, monthsBetween, type ReportClock } from './time.js';
import type { Match, PlannedVisit } from '../care/model.js';
import type { QualityCell } from '../store/report-types.js';

export interface Facts {
  registries: Registries;
  planned: PlannedVisit[];
  matches: Match[];
  executed: ReportVisit[];
  taps: TapCount[] | null;
}

/** Every fact of the local dates [fromDate, toDate]. */
export async function loadFacts(
  source: ReportSource,
  fromDate: string,
  toDate: string,
  clock: ReportClock,
): Promise<Facts> {
  const w = clock.window(fromDate, toDate);
  const [registries, planned, matches, executed, taps] = await Promise.all([
    source.registries(),
    collect(source.planned(w)),
    collect(source.matches(w)),
    collect(source.executed(w)),
    source.tapAssurance ? source.tapAssurance(w) : Promise.resolve(null),
  ]);
  return { registries, planned, matches, executed, taps };
}

export async function runExecuted(
  source: ReportSource,
  params: ExecutedParams,
  clock: ReportClock,
): Promise<ExecutedReport> {
  if (source.executedCells) {
    // Aggregated by the source (SQL): the same cells executedVsPlanned computes from the facts.
    const w = clock.window(params.fromDate, params.toDate);
    const [registries, cells, taps] = await Promise.all([
      source.registries(),
      source.executedCells(w, params, clock, null),
      source.tapAssurance ? source.tapAssurance(w) : Promise.resolve(null),
    ]);
    return executedFromCells(cells, registries, taps, params, clock);
  }
  return executedVsPlanned(await loadFacts(source, params.fromDate, params.toDate, clock), params, clock);
}

export async function runContinuity(
  source: ReportSource,
  params: ContinuityParams,
  clock: ReportClock,
): Promise<ContinuityReport> {
  const { fromDate, toDate } = continuityPeriod(params);
  if (source.continuityCells) {
    // Aggregated by the source (SQL): the same cells `continuity` computes from the facts.
    const cp = continuityCellParams(params);
    const w = clock.window(fromDate, toDate);
    const [registries, cells, taps] = await Promise.all([
      source.registries(),
      source.continuityCells(w, cp, clock, null),
      source.tapAssurance ? source.tapAssurance(w) : Promise.resolve(null),
    ]);
    return continuityFromCells(cells, registries, taps, params, clock);
  }
  return continuity(await loadFacts(source, fromDate, toDate, clock), params, clock);
}

export interface MonthlyParams {
  fromMonth: string;
  toMonth: string;
  threshold?: number;
  lateDeliveryHours?: number;
}

export interface MonthlyReport {
  kind: 'continuity-monthly';
  params: Required<Omit<MonthlyParams, 'lateDeliveryHours'>> & { timeZone: string };
  notes: string[];
  rows: MonthlyRow[];
  quality: DataQuality;
}

/** The measure each month per area, over the 14 days from the month's first Monday. */
export async function runMonthly(
  source: ReportSource,
  params: MonthlyParams,
  clock: ReportClock,
): Promise<MonthlyReport> {
  const threshold = params.threshold ?? 15;
  if (source.continuityCells && source.qualityCells) return monthlyFromCells(source, params, clock);
  const perMonth: Array<{ month: string; report: ContinuityReport }> = [];
  const used: ReportVisit[] = [];
  let taps: TapCount[] | null = null;
  let registries: Registries | undefined;
  for (const month of monthsBetween(params.fromMonth, params.toMonth)) {
    const fromDate = firstMondayOf(month);
    const facts = await loadFacts(source, fromDate, addDays(fromDate, 13), clock);
    registries = facts.registries;
    used.push(...facts.executed);
    if (facts.taps !== null) (taps ??= []).push(...facts.taps);
    perMonth.push({
      month,
      report: continuity(facts, { fromDate, lateDeliveryHours: params.lateDeliveryHours }, clock),
    });
  }
  return {
    kind: 'continuity-monthly',
    params: { fromMonth: params.fromMonth, toMonth: params.toMonth, threshold, timeZone: clock.timeZone },
    notes: monthlyNotes(threshold),
    rows: monthlyRows(perMonth, threshold),
    quality: dataQuality(
      used,
      new Lookup(registries ?? (await source.registries())),
      params.lateDeliveryHours,
      taps,
    ),
  };
}

/** The monthly follow-up from cells the source aggregates (SQL): the same report as from facts in memory. */
async function monthlyFromCells(
  source: ReportSource,
  params: MonthlyParams,
  clock: ReportClock,
): Promise<MonthlyReport> {
  const threshold = params.threshold ?? 15;
  const registries = await source.registries();
  const perMonth: Array<{ month: string; report: ContinuityReport }> = [];
  const quality: QualityCell[] = [];
  let taps: TapCount[] | null = null;
  for (const [i, month] of monthsBetween(params.fromMonth, params.toMonth).entries()) {
    const p = { fromDate: firstMondayOf(month), lateDeliveryHours: params.lateDeliveryHours };
    const cp = continuityCellParams(p);
    const w = clock.window(cp.fromDate, cp.toDate);
    const [cells, q, t] = await Promise.all([
      source.continuityCells!(w, cp, clock, null),
      source.qualityCells!(w, params.lateDeliveryHours, null),
      source.tapAssurance ? source.tapAssurance(w) : Promise.resolve(null),
    ]);
    if (t !== null) (taps ??= []).push(...t);
    // The months' visits one after the other, as the in-memory way concatenates them.
    const m = String(i).padStart(6, '0');
    for (const c of q) quality.push({ ...c, ord: `${m}:${String(c.ord).padStart(16, '0')}` });
    perMonth.push({ month, report: continuityFromCells(cells, registries, t, p, clock) });
  }
  return {
    kind: 'continuity-monthly',
    params: { fromMonth: params.fromMonth, toMonth: params.toMonth, threshold, timeZone: clock.timeZone },
    notes: monthlyNotes(threshold),
    rows: monthlyRows(perMonth, threshold),
    quality: dataQualityFromCells(quality, new Lookup(registries), params.lateDeliveryHours, taps),
  };
}

const monthlyNotes = (threshold: number): string[] => [
  'Each month: the national measure over the 14 days from the first Monday of the month, per area.',
  `A month is marked for analysis when an area's mean is above ${threshold}.`,
];

export async function runStaffing(
  source: ReportSource,
  params: StaffingParams,
  clock: ReportClock,
): Promise<StaffingReport> {
  return doubleStaffing(await loadFacts(source, params.fromDate, params.toDate, clock), params, clock);
}

export interface QualityReport {
  kind: 'data-quality';
  params: { fromDate: string; toDate: string; lateDeliveryHours: number; timeZone: string };
  quality: DataQuality;
}

export async function runQuality(
  source: ReportSource,
  params: { fromDate: string; toDate: string; lateDeliveryHours?: number },
  clock: ReportClock,
): Promise<QualityReport> {
  const w = clock.window(params.fromDate, params.toDate);
  const [registries, executed, taps] = await Promise.all([
    source.registries(),
    collect(source.executed(w)),
    source.tapAssurance ? source.tapAssurance(w) : Promise.resolve(null),
  ]);
  const quality = dataQuality(executed, new Lookup(registries), params.lateDeliveryHours, taps);
  return {
    kind: 'data-quality',
    params: { ...params, lateDeliveryHours: quality.lateDeliveryHours, timeZone: clock.timeZone },
    quality,
  };
}
