/**
 * Matching executed visits to planned ones (pure, deterministic).
 *
 * Per client: a planned visit can take an executed visit that started (or, with no start, ended) within
 * [planned start − windowBefore, planned start + windowAfter]. Among all ways to pair them that keep time
 * order (an earlier plan never takes a later visit than a later plan), the one with the MOST pairs wins,
 * then the one with the smallest total distance to the planned starts; remaining ties go to the order of
 * (planned start, planned visit id) and (visit time, reader/visit id), so the result depends only on the
 * input, never on the order it arrived in. A double-staffed plan takes up to two visits of different staff
 * (of two different cards when a staff member is unknown). Computed per segment: the client's timeline is
 * cut wherever nothing happens for longer than the larger window, so no pair can cross a cut.
 */
import {
  executedKey,
  type ExecutedVisit,
  type Match,
  type MatchStatus,
  type MissedReasonCode,
  type PlanForMatch,
  type PlanMatch,
} from './model.js';
import { DEFAULT_TIME_ZONE, localDateOf } from './time.js';

export interface MatchConfig {
  /** How early a visit may start and still count for a plan (minutes). */
  windowBeforeMinutes: number;
  /** How late a visit may start and still count for a plan (minutes); after it, no visit = missed. */
  windowAfterMinutes: number;
  /** A visit that starts more than this after the planned start is late (minutes; per area). */
  lateAfterMinutes: number;
  /** Time zone of local dates. */
  timeZone: string;
}

export const DEFAULT_MATCH_CONFIG: MatchConfig = {
  windowBeforeMinutes: 90,
  windowAfterMinutes: 120,
  lateAfterMinutes: 15,
  timeZone: DEFAULT_TIME_ZONE,
};

export type { PlanForMatch, PlanMatch } from '../store/care-model.js';

export interface ClientMatchResult {
  plans: PlanMatch[];
  /** Every executed visit of the input with the plan it went to (null = unplanned). */
  visits: {
    key: string;
    clientRef: string;
    timeMs: number;
    localDate: string;
    plannedVisitId: string | null;
  }[];
}

const MIN = 60_000;
const PAIR = 1e9; // one more pair outweighs any distance (distances are seconds, far below this)

/** The time a visit is matched on: its start, or its end when no start is known. */
export const visitTime = (v: Pick<ExecutedVisit, 'startedAtMs' | 'endedAtMs'>): number | null =>
  v.startedAtMs ?? v.endedAtMs;

const sameWorker = (a: ExecutedVisit, b: ExecutedVisit): boolean =>
  a.staffRef !== null && b.staffRef !== null ? a.staffRef === b.staffRef : a.cardRef === b.cardRef;

/** Status of a planned visit from its match, the reason code and the time now. */
export function planStatus(
  m: { executedCount: number; staffCount: number; lateMinutes: number | null; windowEndMs: number },
  reason: MissedReasonCode | null,
  lateAfterMinutes: number,
  nowMs: number,
): MatchStatus {
  if (m.executedCount > 0) {
    if (m.executedCount < m.staffCount) return 'understaffed';
    return (m.lateMinutes ?? 0) > lateAfterMinutes ? 'late' : 'matched';
  }
  if (reason !== null) return 'missed';
  return nowMs < m.windowEndMs ? 'pending' : 'missed';
}

interface Item {
  kind: 'p' | 'v';
  t: number;
  idx: number;
}

/**
 * Matches one client's planned and executed visits. `plans` and `visits` must all belong to the client
 * (visits without a time are ignored); `reasons` are the reason codes set on planned visits.
 */
export function matchClient(
  clientRef: string,
  plansIn: readonly PlanForMatch[],
  visitsIn: readonly ExecutedVisit[],
  opts: {
    config: MatchConfig;
    nowMs: number;
    reasons?: ReadonlyMap<string, MissedReasonCode>;
    lateAfterFor?: (areaId: string) => number;
  },
): ClientMatchResult {
  const cfg = opts.config;
  const before = cfg.windowBeforeMinutes * MIN;
  const after = cfg.windowAfterMinutes * MIN;
  const plans = [...plansIn].sort(
    (a, b) =>
      a.startMs - b.startMs ||
      (a.plannedVisitId < b.plannedVisitId ? -1 : a.plannedVisitId > b.plannedVisitId ? 1 : 0),
  );
  const visits = visitsIn
    .filter((v) => visitTime(v) !== null)
    .map((v) => ({ v, t: visitTime(v)!, key: executedKey(v) }))
    .sort((a, b) => a.t - b.t || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

  const items: Item[] = [
    ...plans.map((p, idx) => ({ kind: 'p' as const, t: p.startMs, idx })),
    ...visits.map((x, idx) => ({ kind: 'v' as const, t: x.t, idx })),
  ].sort((a, b) => a.t - b.t || (a.kind === b.kind ? a.idx - b.idx : a.kind === 'p' ? -1 : 1));

  const assigned = new Map<number, number[]>(); // plan idx -> visit idxs
  const gap = Math.max(before, after);
  let segStart = 0;
  for (let k = 1; k <= items.length; k++) {
    if (k === items.length || items[k]!.t - items[k - 1]!.t > gap) {
      const seg = items.slice(segStart, k);
      const pIdx = seg.filter((x) => x.kind === 'p').map((x) => x.idx);
      const vIdx = seg.filter((x) => x.kind === 'v').map((x) => x.idx);
      if (pIdx.length && vIdx.length) solveSegment(pIdx, vIdx);
      segStart = k;
    }
  }

  function solveSegment(pIdx: number[], vIdx: number[]): void {
    const n = pIdx.length;
    const m = vIdx.length;
    const dist = (pi: number, vj: number): number | null => {
      const p = plans[pIdx[pi]!]!;
      const t = visits[vIdx[vj]!]!.t;
      return t >= p.startMs - before && t <= p.startMs + after
        ? Math.round(Math.abs(t - p.startMs) / 1000)
        : null;
    };
    const W = m + 1;
    const score = new Float64Array((n + 1) * W).fill(-Infinity);
    const back: Array<{ from: number; take: number[] } | undefined> = [];
    score[0] = 0;
    const relax = (from: number, to: number, s: number, take: number[]): void => {
      if (s > score[to]!) {
        score[to] = s;
        back[to] = { from, take };
      }
    };
    for (let i = 0; i <= n; i++) {
      for (let j = 0; j <= m; j++) {
        const here = i * W + j;
        const s = score[here]!;
        if (s === -Infinity) continue;
        if (i < n) {
          const p = plans[pIdx[i]!]!;
          const d1 = j < m ? dist(i, j) : null;
          if (d1 !== null) relax(here, (i + 1) * W + j + 1, s + PAIR - d1, [j]);
          if (d1 !== null && p.staffCount === 2) {
            const first = visits[vIdx[j]!]!.v;
            for (let k = j + 1; k < Math.min(m, j + 4); k++) {
              const d2 = dist(i, k);
              if (d2 === null || sameWorker(first, visits[vIdx[k]!]!.v)) continue;
              relax(here, (i + 1) * W + k + 1, s + 2 * PAIR - d1 - d2, [j, k]);
            }
          }
          relax(here, (i + 1) * W + j, s, []);
        }
        if (j < m) relax(here, i * W + j + 1, s, []);
      }
    }
    // Walk back from (n, m).
    let at = n * W + m;
    while (at !== 0) {
      const b = back[at]!;
      const fi = Math.floor(b.from / W);
      const fj = b.from % W;
      const ti = Math.floor(at / W);
      if (ti === fi + 1 && b.take.length) {
        assigned.set(
          pIdx[fi]!,
          b.take.map((x) => vIdx[x]!),
        );
      }
      void fj;
      at = b.from;
    }
  }

  const planOf = new Map<number, string>();
  const out: PlanMatch[] = plans.map((p, idx) => {
    const vs = assigned.get(idx) ?? [];
    for (const v of vs) planOf.set(v, p.plannedVisitId);
    const first = vs.length ? visits[vs[0]!]!.t : null;
    const lateMinutes = first === null ? null : Math.round((first - p.startMs) / MIN) || 0;
    const windowEndMs = p.startMs + after;
    const reason = opts.reasons?.get(p.plannedVisitId) ?? null;
    const lateAfter = opts.lateAfterFor?.(p.areaId) ?? cfg.lateAfterMinutes;
    return {
      plannedVisitId: p.plannedVisitId,
      clientRef,
      areaId: p.areaId,
      startMs: p.startMs,
      staffCount: p.staffCount,
      windowEndMs,
      localDate: p.localDate,
      executedKeys: vs.map((v) => visits[v]!.key),
      lateMinutes,
      reasonCode: reason,
      status: planStatus(
        { executedCount: vs.length, staffCount: p.staffCount, lateMinutes, windowEndMs },
        reason,
        lateAfter,
        opts.nowMs,
      ),
    };
  });
  return {
    plans: out,
    visits: visits.map((x, idx) => ({
      key: x.key,
      clientRef,
      timeMs: x.t,
      localDate: localDateOf(x.t, cfg.timeZone),
      plannedVisitId: planOf.get(idx) ?? null,
    })),
  };
}

/** Unplanned visits of a result as `Match` rows. */
export const unplannedMatches = (r: ClientMatchResult): Match[] =>
  r.visits
    .filter((v) => v.plannedVisitId === null)
    .map((v) => ({
      plannedVisitId: null,
      clientRef: v.clientRef,
      status: 'unplanned' as const,
      executedKeys: [v.key],
      lateMinutes: null,
      reasonCode: null,
      localDate: v.localDate,
    }));
