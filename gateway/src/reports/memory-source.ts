/**
 * An in-memory ReportSource for fixtures and tests. Corrections are applied here, as every source must:
 * the latest correction of a visit (by `atMs`) wins, the visit is marked `corrected`, a corrected end
 * becomes `endReason: 'manual'`, and a withdrawal marks it `withdrawn`.
 */
import type { Match, PlannedVisit } from '../care/model.js';
import { executedKey } from '../care/model.js';
import type { ReportSource } from './source.js';
import type { Registries, ReportVisit, UtcWindow } from '../store/report-types.js';

export interface VisitCorrection {
  readerId: string;
  visitId: string;
  atMs: number;
  startedAtMs?: number;
  endedAtMs?: number;
  staffRef?: string;
  /** The tap was a mistake: the visit is withdrawn (counts in no figure, only in data quality). */
  withdrawn?: true;
  reason: string;
}

export interface MemoryFacts {
  registries: Registries;
  planned: PlannedVisit[];
  matches: Match[];
  visits: ReportVisit[];
  corrections?: VisitCorrection[];
}

export function applyCorrections(
  visits: readonly ReportVisit[],
  corrections: readonly VisitCorrection[],
): ReportVisit[] {
  const latest = new Map<string, VisitCorrection[]>();
  for (const c of [...corrections].sort((a, b) => a.atMs - b.atMs)) {
    const k = executedKey(c);
    latest.set(k, [...(latest.get(k) ?? []), c]);
  }
  return visits.map((v) => {
    const cs = latest.get(executedKey(v));
    if (!cs) return v;
    let out: ReportVisit = { ...v, corrected: true };
    for (const c of cs) {
      if (c.startedAtMs !== undefined) out = { ...out, startedAtMs: c.startedAtMs };
      if (c.endedAtMs !== undefined)
        out = { ...out, endedAtMs: c.endedAtMs, endReason: 'manual', state: 'closed' };
      if (c.staffRef !== undefined) out = { ...out, staffRef: c.staffRef };
      if (c.withdrawn) out = { ...out, withdrawn: true };
    }
    return out;
  });
}

const CHUNK = 1000;
async function* chunks<T>(xs: readonly T[]): AsyncIterable<readonly T[]> {
  for (let i = 0; i < xs.length; i += CHUNK) yield xs.slice(i, i + CHUNK);
  await Promise.resolve();
}

export class MemoryReportSource implements ReportSource {
  constructor(private readonly facts: MemoryFacts) {}

  registries(): Promise<Registries> {
    return Promise.resolve(this.facts.registries);
  }

  private visitsIn(w: UtcWindow): ReportVisit[] {
    return applyCorrections(this.facts.visits, this.facts.corrections ?? []).filter((v) => {
      const t = v.startedAtMs ?? v.endedAtMs;
      return t !== null && t >= w.fromMs && t < w.toMs;
    });
  }

  planned(w: UtcWindow): AsyncIterable<readonly PlannedVisit[]> {
    return chunks(this.facts.planned.filter((p) => p.startMs >= w.fromMs && p.startMs < w.toMs));
  }

  matches(w: UtcWindow): AsyncIterable<readonly Match[]> {
    const planned = new Set(
      this.facts.planned
        .filter((p) => p.startMs >= w.fromMs && p.startMs < w.toMs)
        .map((p) => p.plannedVisitId),
    );
    const visits = new Set(this.visitsIn(w).map(executedKey));
    return chunks(
      this.facts.matches.filter((m) =>
        m.plannedVisitId !== null ? planned.has(m.plannedVisitId) : m.executedKeys.some((k) => visits.has(k)),
      ),
    );
  }

  executed(w: UtcWindow): AsyncIterable<readonly ReportVisit[]> {
    return chunks(this.visitsIn(w));
  }
}
