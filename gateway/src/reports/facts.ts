/**
 * Shared pieces of every report: registry lookups, visits grouped into occasions (a double-staffed visit is
 * one occasion with two staff visits), the length of an occasion and which planned visit it belongs to.
 * Pure: no I/O, no clock.
 */
import type { Client, Match, PlannedVisit, ServiceCode, Staff } from '../care/model.js';
import { executedKey } from '../care/model.js';
import { alarmOrMealOnly, NOT_HOME_CARE_KINDS } from '../store/report-rules.js';
import type { Registries, ReportVisit } from '../store/report-types.js';

export { NOT_HOME_CARE_KINDS };

export class Lookup {
  readonly clients = new Map<string, Client>();
  readonly staff = new Map<string, Staff>();
  readonly codes = new Map<string, ServiceCode>();
  readonly teamArea = new Map<string, string>();

  constructor(readonly reg: Registries) {
    for (const c of reg.clients) this.clients.set(c.clientRef, c);
    for (const s of reg.staff) this.staff.set(s.staffRef, s);
    for (const c of reg.serviceCodes) this.codes.set(c.code, c);
    for (const t of reg.teams) this.teamArea.set(t.teamId, t.areaId);
  }
}

/** Label used where a dimension is unknown (a reader with no client, a client not in the registry). */
export const UNKNOWN = '(unknown)';

/**
 * The visits that count, and those withdrawn as mistaken taps (a coordinator's `withdrawn` correction): a
 * withdrawn visit is in no figure of any report (not an occasion, not a staff member met, not a visit of a
 * double-staffed group); data quality counts it as withdrawn.
 */
export function splitWithdrawn(visits: readonly ReportVisit[]): {
  counted: readonly ReportVisit[];
  withdrawn: ReportVisit[];
} {
  if (!visits.some((v) => v.withdrawn === true)) return { counted: visits, withdrawn: [] };
  const counted: ReportVisit[] = [];
  const withdrawn: ReportVisit[] = [];
  for (const v of visits) (v.withdrawn === true ? withdrawn : counted).push(v);
  return { counted, withdrawn };
}

/** A visit's occasion key: its group (double staffing) or itself. */
export const occasionKey = (v: ReportVisit): string => `${v.readerId}/${v.groupId ?? v.visitId}`;

/**
 * The length of a staff visit in ms, or null when it is not known: no start, no end yet, or a stop that the
 * gateway closed itself (auto-close: the worker forgot to tap out) and no one has corrected.
 */
export function visitLengthMs(v: ReportVisit): number | null {
  if (v.startedAtMs === null || v.endedAtMs === null) return null;
  if (v.endReason === 'auto-close' && !v.corrected) return null;
  return Math.max(0, v.endedAtMs - v.startedAtMs);
}

export interface Occasion {
  key: string;
  readerId: string;
  clientRef: string | null;
  /** Earliest start among its visits (null if none has a start). */
  startMs: number | null;
  /** Span from the first start to the last end, or null if any visit's length is unknown. */
  lengthMs: number | null;
  /** Sum of the staff visits' lengths, or null if any is unknown. */
  staffMs: number | null;
  visits: ReportVisit[];
  /** Distinct staff (staffRef, or the card for an unknown card). */
  people: number;
  plannedVisitId: string | null;
}

/**
 * Groups visits into occasions and links each to its planned visit: through the visit's own link when the
 * source gave one, else through the matches (`plannedOf`, built only when needed).
 */
export function occasionsOf(
  visits: readonly ReportVisit[],
  plannedOf: Map<string, string> | (() => Map<string, string>),
): Occasion[] {
  let linkMap: Map<string, string> | undefined = typeof plannedOf === 'function' ? undefined : plannedOf;
  const planOf = (v: ReportVisit): string | undefined => {
    if (v.plannedVisitId !== undefined) return v.plannedVisitId ?? undefined;
    linkMap ??= (plannedOf as () => Map<string, string>)();
    return linkMap.get(executedKey(v));
  };
  const out: Occasion[] = [];
  const byKey = new Map<string, ReportVisit[]>();
  for (const v of visits) {
    if (v.groupId === null) {
      // The common case: a visit alone is its own occasion (no grouping map, no set).
      const len = visitLengthMs(v);
      out.push({
        key: `${v.readerId}/${v.visitId}`,
        readerId: v.readerId,
        clientRef: v.clientRef,
        startMs: v.startedAtMs,
        lengthMs: len === null || v.startedAtMs === null ? null : v.endedAtMs! - v.startedAtMs,
        staffMs: len,
        visits: [v],
        people: 1,
        plannedVisitId: planOf(v) ?? null,
      });
      continue;
    }
    const k = occasionKey(v);
    const list = byKey.get(k);
    if (list) list.push(v);
    else byKey.set(k, [v]);
  }
  for (const [key, vs] of byKey) {
    let start: number | null = null;
    let end: number | null = null;
    let staffMs: number | null = 0;
    let plannedVisitId: string | null = null;
    const people = new Set<string>();
    for (const v of vs) {
      if (v.startedAtMs !== null && (start === null || v.startedAtMs < start)) start = v.startedAtMs;
      const len = visitLengthMs(v);
      if (len === null) staffMs = null;
      else {
        if (staffMs !== null) staffMs += len;
        if (end === null || v.endedAtMs! > end) end = v.endedAtMs;
      }
      people.add(v.staffRef ?? `card:${v.cardRef}`);
      const p = planOf(v);
      if (p !== undefined && (plannedVisitId === null || p < plannedVisitId)) plannedVisitId = p;
    }
    const first = vs[0]!;
    out.push({
      key,
      readerId: first.readerId,
      clientRef: vs.find((v) => v.clientRef !== null)?.clientRef ?? null,
      startMs: start,
      lengthMs: staffMs === null || start === null || end === null ? null : end - start,
      staffMs,
      visits: vs,
      people: people.size,
      plannedVisitId,
    });
  }
  return out;
}

/** executedKey → plannedVisitId, from the matches (an executed visit belongs to at most one plan). */
export function plannedByExecuted(matches: readonly Match[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const x of matches) {
    if (x.plannedVisitId === null) continue;
    for (const k of x.executedKeys) {
      const prev = m.get(k);
      if (prev === undefined || x.plannedVisitId < prev) m.set(k, x.plannedVisitId);
    }
  }
  return m;
}

/** Is the planned visit only a safety-alarm response or a meal delivery (by its service codes' kinds)? */
export function isAlarmOrMealOnly(p: Pick<PlannedVisit, 'serviceCodes'>, lookup: Lookup): boolean {
  return alarmOrMealOnly(p.serviceCodes, (code) => lookup.codes.get(code)?.kind);
}

/**
 * How a planned visit's minutes are split over its service codes: by standard minutes when they are known
 * and add up to more than zero, else equally. The weights add up to 1.
 */
export function codeWeights(p: Pick<PlannedVisit, 'serviceCodes'>): Array<[string, number]> {
  if (p.serviceCodes.length === 0) return [['(none)', 1]];
  const std = p.serviceCodes.map((c) => c.standardMinutes ?? 0);
  const total = std.reduce((a, b) => a + b, 0);
  return p.serviceCodes.map((c, i) => [c.code, total > 0 ? std[i]! / total : 1 / p.serviceCodes.length]);
}

/** Median of a list of numbers (the mean of the two middle values for an even count); null if empty. */
export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = Float64Array.from(xs).sort();
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100); null if empty. */
export function percentile(xs: readonly number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const round = (x: number, decimals = 2): number => {
  const f = 10 ** decimals;
  return Math.round(x * f) / f;
};
