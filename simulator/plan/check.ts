/**
 * The plan checks (pure): compares the gateway's matches, unplanned visits and the plan alerts that reached
 * the backend with what the simulated staff did (`PlannedOutcome`). Thresholds within `toleranceMs` of an
 * arrival are not judged (ticks every 30 s; taps reach the gateway a few virtual seconds later).
 */
import type { VisitEvent } from '../../protocol/index.js';
import type { CheckResult } from '../checker.js';
import type { PlannedOutcome, UnplannedOutcome } from './types.js';

const MIN = 60_000;

/** A match as GET /api/plan/matches returns it (the fields the checks read). */
export interface ApiMatch {
  plannedVisitId: string;
  clientRef: string;
  status: string;
  executedKeys: string[];
  lateMinutes: number | null;
  reasonCode: string | null;
  windowEndMs: number;
}
export interface ApiUnplanned {
  key: string;
  clientRef: string;
  timeMs: number;
}

export interface PlanCheckInput {
  outcomes: readonly PlannedOutcome[];
  unplanned: readonly UnplannedOutcome[];
  matches: readonly ApiMatch[];
  apiUnplanned: readonly ApiUnplanned[];
  /** Every event the backend recorded (first delivery per key); plan alerts are picked out. */
  received: readonly VisitEvent[];
  thresholds: { lateAfterMinutes: number; missedAfterMinutes: number };
  /** When the checks run (virtual); every plan window must have closed by then. */
  nowMs: number;
  toleranceMs?: number;
}

export interface PlanSummary {
  planned: number;
  executed: number;
  late: number;
  missed: number;
  missedWithReason: number;
  understaffed: number;
  unplanned: number;
  covered: number;
  alertsRaised: Record<string, number>;
  alertsCleared: number;
}

type Raised = Extract<VisitEvent, { type: 'plan.alert.raised' }>;
type Cleared = Extract<VisitEvent, { type: 'plan.alert.cleared' }>;

const MAX_LISTED = 20;
function result(name: string, ok: boolean, summary: string, failures: string[]): CheckResult {
  const listed = failures.slice(0, MAX_LISTED);
  if (failures.length > MAX_LISTED) listed.push(`… ${failures.length - MAX_LISTED} more`);
  return { name, severity: 'invariant', ok, summary, failures: listed };
}

export function summarisePlan(input: PlanCheckInput): PlanSummary {
  const raised = input.received.filter((e): e is Raised => e.type === 'plan.alert.raised');
  const alertsRaised: Record<string, number> = {};
  for (const e of raised) alertsRaised[e.kind] = (alertsRaised[e.kind] ?? 0) + 1;
  const by = (s: string) => input.matches.filter((m) => m.status === s).length;
  return {
    planned: input.matches.length,
    executed: input.matches.filter((m) => m.executedKeys.length > 0).length,
    late: by('late'),
    missed: by('missed'),
    missedWithReason: input.matches.filter((m) => m.status === 'missed' && m.reasonCode !== null).length,
    understaffed: by('understaffed'),
    unplanned: input.apiUnplanned.length,
    covered: input.outcomes.filter((o) => o.covered && o.outcome === 'made').length,
    alertsRaised,
    alertsCleared: input.received.filter((e) => e.type === 'plan.alert.cleared').length,
  };
}

export function runPlanChecks(input: PlanCheckInput): CheckResult[] {
  const tol = input.toleranceMs ?? 2 * MIN;
  const { lateAfterMinutes: lateAfter, missedAfterMinutes: missedAfter } = input.thresholds;
  const matchOf = new Map(input.matches.map((m) => [m.plannedVisitId, m]));
  const raised = input.received.filter((e): e is Raised => e.type === 'plan.alert.raised');
  const cleared = input.received.filter((e): e is Cleared => e.type === 'plan.alert.cleared');
  const raisedBy = new Map<string, Raised[]>();
  for (const e of raised)
    raisedBy.set(`${e.plannedVisitId}:${e.kind}`, [
      ...(raisedBy.get(`${e.plannedVisitId}:${e.kind}`) ?? []),
      e,
    ]);
  const clearedBy = new Map<string, Cleared[]>();
  for (const e of cleared)
    clearedBy.set(`${e.plannedVisitId}:${e.kind}`, [
      ...(clearedBy.get(`${e.plannedVisitId}:${e.kind}`) ?? []),
      e,
    ]);
  const out: CheckResult[] = [];

  // 1. Every planned visit ends matched, late, understaffed, or missed (with a reason, or alerted): none pending.
  {
    const f: string[] = [];
    for (const o of input.outcomes) {
      const m = matchOf.get(o.plannedVisitId);
      if (!m) f.push(`${o.plannedVisitId}: planned by the simulator but not in the gateway's matches`);
      else if (m.status === 'pending' || m.windowEndMs > input.nowMs)
        f.push(`${o.plannedVisitId}: still ${m.status} after its window`);
      else if (m.status === 'missed' && m.reasonCode === null && !raisedBy.has(`${o.plannedVisitId}:missed`))
        f.push(`${o.plannedVisitId}: missed with no reason and no missed alert`);
    }
    for (const m of input.matches)
      if (!input.outcomes.some((o) => o.plannedVisitId === m.plannedVisitId))
        f.push(`${m.plannedVisitId}: a match for a visit the plan did not have`);
    out.push(
      result('plan-every-visit-resolved', f.length === 0, `${input.matches.length} planned visits`, f),
    );
  }

  // 2. No executed visit matched twice.
  {
    const seen = new Map<string, string>();
    const f: string[] = [];
    for (const m of input.matches)
      for (const k of m.executedKeys) {
        const prev = seen.get(k);
        if (prev) f.push(`${k} matched to ${prev} and ${m.plannedVisitId}`);
        seen.set(k, m.plannedVisitId);
      }
    for (const u of input.apiUnplanned)
      if (seen.has(u.key)) f.push(`${u.key} both unplanned and matched to ${seen.get(u.key)}`);
    out.push(
      result('plan-no-visit-matched-twice', f.length === 0, `${seen.size} executed visits matched`, f),
    );
  }

  // 3. Each planned visit's status is what the staff did.
  {
    const f: string[] = [];
    let judged = 0;
    for (const o of input.outcomes) {
      const m = matchOf.get(o.plannedVisitId);
      if (!m) continue;
      const want = expectedStatus(o, lateAfter, tol);
      if (want.length === 1) judged++;
      const reasonOk = o.outcome !== 'client-absent' || m.reasonCode === 'client-in-hospital';
      if (!want.includes(m.status) || m.executedKeys.length !== o.arrivalsMs.length || !reasonOk)
        f.push(
          `${o.plannedVisitId}: simulator ${o.outcome}${o.arrivalsMs.length ? ` (${o.arrivalsMs.map((a) => `${Math.round((a - o.startMs) / MIN)} min`).join(', ')} after the start, staff ${o.staffCount})` : ''}; gateway ${m.status} with ${m.executedKeys.length} visit(s), reason ${m.reasonCode ?? '-'}`,
        );
    }
    out.push(
      result(
        'plan-status-as-simulated',
        f.length === 0,
        `${judged} exact, ${input.outcomes.length - judged} within a minute or two of the late threshold (late or matched)`,
        f,
      ),
    );
  }

  // 4. Alerts: every one the schedule caused reached the backend once; none invented.
  {
    const f: string[] = [];
    const expectedKeys = new Set<string>();
    for (const o of input.outcomes) {
      const first = o.arrivalsMs[0] ?? Infinity;
      const second = o.staffCount === 2 ? (o.arrivalsMs[1] ?? Infinity) : -Infinity;
      const want = (kind: string, momentMs: number, byMs: number): void => {
        const key = `${o.plannedVisitId}:${kind}`;
        const got = raisedBy.get(key) ?? [];
        if (got.length > 1) f.push(`${key}: raised ${got.length} times at the backend`);
        if (byMs > momentMs + tol) {
          expectedKeys.add(key);
          if (!got.length)
            f.push(
              `${key}: the simulator caused it (nobody by ${Math.round((momentMs - o.startMs) / MIN)} min) but no alert reached the backend`,
            );
          if (byMs !== Infinity && !(clearedBy.get(key) ?? []).length)
            f.push(
              `${key}: not cleared though the visit came ${Math.round((byMs - o.startMs) / MIN)} min after the start`,
            );
          if (byMs === Infinity && (clearedBy.get(key) ?? []).length)
            f.push(`${key}: cleared though nobody came`);
        } else if (byMs < momentMs - tol) {
          if (got.length)
            f.push(
              `${key}: raised but the simulator's staff came ${Math.round((byMs - o.startMs) / MIN)} min after the start`,
            );
        } else if (got.length) expectedKeys.add(key); // within the tolerance: either is right
      };
      if (o.outcome === 'client-absent') {
        for (const kind of ['late', 'missed', 'understaffed'])
          if (raisedBy.has(`${o.plannedVisitId}:${kind}`))
            f.push(`${o.plannedVisitId}:${kind}: raised for a client in hospital`);
        continue;
      }
      want('late', o.startMs + lateAfter * MIN, first);
      want('missed', o.startMs + missedAfter * MIN, first);
      // Understaffed needs one staff member alone past the moment: a second arriving within a tick of the
      // first (after the moment) may or may not be seen alone.
      if (o.staffCount === 2 && o.arrivalsMs.length >= 1)
        want('understaffed', Math.max(o.startMs + lateAfter * MIN, first), second);
      else if (raisedBy.has(`${o.plannedVisitId}:understaffed`))
        f.push(
          `${o.plannedVisitId}:understaffed raised but the simulator sent ${o.arrivalsMs.length} of ${o.staffCount}`,
        );
    }
    for (const e of raised) {
      const key = `${e.plannedVisitId}:${e.kind}`;
      if (!expectedKeys.has(key) && !f.some((x) => x.startsWith(key)))
        f.push(`${key}: raised at the backend, not caused by the simulator`);
    }
    const caused = input.outcomes.filter((o) => o.outcome !== 'made' && o.outcome !== 'client-absent').length;
    out.push(
      result(
        'plan-alerts-as-caused',
        f.length === 0,
        `${raised.length} raised, ${cleared.length} cleared; ${caused} visits the simulator left unmade, each alerted missed`,
        f,
      ),
    );
  }

  // 5. Unplanned visits: exactly the ones the simulator made with no plan.
  {
    const f: string[] = [];
    const left = [...input.apiUnplanned];
    for (const u of input.unplanned) {
      const i = left.findIndex((a) => a.clientRef === u.clientRef && Math.abs(a.timeMs - u.startMs) <= 5_000);
      if (i < 0)
        f.push(`${u.clientRef} at ${new Date(u.startMs).toISOString()}: unplanned visit not reported`);
      else left.splice(i, 1);
    }
    for (const a of left) f.push(`${a.key} (${a.clientRef}): reported unplanned, the simulator planned it`);
    out.push(
      result('plan-unplanned-as-made', f.length === 0, `${input.unplanned.length} unplanned visits`, f),
    );
  }
  return out;
}

/** Allowed statuses for what the simulator did (two when the arrival is too close to the threshold). */
function expectedStatus(o: PlannedOutcome, lateAfter: number, tol: number): string[] {
  if (o.outcome !== 'made') return ['missed'];
  if (o.arrivalsMs.length < o.staffCount) return ['understaffed'];
  const late = o.arrivalsMs[0]! - (o.startMs + lateAfter * MIN);
  // The match rounds to whole minutes: allow a minute either side besides the tolerance.
  if (Math.abs(late) <= Math.max(tol, MIN)) return ['late', 'matched'];
  return late > 0 ? ['late'] : ['matched'];
}
