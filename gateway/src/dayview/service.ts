import type { DataScope } from '../auth/scope.js';
import type { PlanMatch } from '../care/matching.js';
import type { CarePlan } from '../care/service.js';
import type { VisitRow } from '../visits/repo.js';

/** What the live day view shows for one local day and the caller's areas. */
export interface DayView {
  date: string;
  timeZone: string;
  areas: { areaId: string; name: string }[];
  planned: {
    plannedVisitId: string;
    areaId: string;
    clientRef: string;
    plannedStart: string;
    staffCount: 1 | 2;
    status: PlanMatch['status'];
    lateMinutes: number | null;
    reasonCode: PlanMatch['reasonCode'];
    /**
     * Not started and past the area's late threshold (the late alert's moment): late now, whether or not a
     * late alert is open (an alert is raised once per planned visit, so a visit withdrawn after clearing
     * one leaves none).
     */
    overdue: boolean;
    /** Executed visits matched to it (`readerId/visitId` keys as the plan stores them). */
    executedKeys: string[];
  }[];
  visits: {
    readerId: string;
    visitId: string;
    clientRef: string | null;
    staffRef: string | null;
    state: 'open' | 'closed';
    startedAt: string | null;
    endedAt: string | null;
    endReason: string | null;
  }[];
  alerts: { plannedVisitId: string; areaId: string; clientRef: string; kind: string; raisedAt: string }[];
  counts: { planned: number; started: number; late: number; missed: number; openAlerts: number };
  generatedAt: string;
}

export interface DayViewDeps {
  plan: Pick<CarePlan, 'matches' | 'dateRangeMs' | 'config'> & {
    store: Pick<CarePlan['store'], 'alerts' | 'listAreas'>;
  };
  /**
   * Visits started in [fromMs, toMs) of in-scope clients (null scope: every client), at most `limit`
   * (SQLite answers at once, PostgreSQL with a promise: store/postgres/care.ts PgCareScopeReader).
   */
  visits: (
    scope: DataScope | null,
    fromMs: number,
    toMs: number,
    limit: number,
  ) => VisitRow[] | Promise<VisitRow[]>;
  /** Client refs of a scope (to narrow by provider, and an admin's area filter). */
  clients: (scope: DataScope) => Set<string> | Promise<Set<string>>;
  now: () => number;
}

export type DayViewResult = { ok: true; view: DayView } | { ok: false; status: 400 | 404; error: string };

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const MAX_VISITS = 5000;

/** The local date of `ms` in `timeZone`, YYYY-MM-DD. */
export function localDate(ms: number, timeZone: string): string {
  return new Intl.DateTimeFormat('sv-SE', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(new Date(ms));
}

/**
 * Builds the day view: planned visits with their live status (pending, matched, late, missed,
 * understaffed), the visits started that day, and open alerts, for the areas the caller may see (all
 * for an admin), optionally one of them. Every list is read per area or per scope inside the query.
 */
export async function buildDayView(
  d: DayViewDeps,
  scope: DataScope | null,
  q: { date?: string | undefined; area?: string | undefined },
): Promise<DayViewResult> {
  const tz = d.plan.config.timeZone;
  const now = d.now();
  const date = q.date ?? localDate(now, tz);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || Number.isNaN(Date.parse(date))) {
    return { ok: false, status: 400, error: 'date: give YYYY-MM-DD (default: today)' };
  }
  const known = await d.plan.store.listAreas();
  const mine = scope === null ? known : known.filter((a) => scope.areas.includes(a.areaId));
  if (q.area !== undefined && !mine.some((a) => a.areaId === q.area)) {
    return { ok: false, status: 404, error: 'no such area among yours' };
  }
  const areas = q.area === undefined ? mine : mine.filter((a) => a.areaId === q.area);
  const { fromMs, toMs } = d.plan.dateRangeMs(date, date);
  // Provider-bound callers, and an admin looking at one area, are narrowed by client.
  const narrowed =
    scope !== null && (scope.provider !== null || q.area !== undefined)
      ? await d.clients({ areas: areas.map((a) => a.areaId), provider: scope.provider })
      : scope === null && q.area !== undefined
        ? await d.clients({ areas: [q.area], provider: null })
        : null;
  const keep = (clientRef: string | null) =>
    narrowed === null || (clientRef !== null && narrowed.has(clientRef));

  const planned: DayView['planned'] = [];
  const alerts: DayView['alerts'] = [];
  for (const a of areas) {
    const matches = await d.plan.matches({ fromMs, toMs, areaId: a.areaId });
    const lateAfterMs = (a.lateAfterMinutes ?? d.plan.config.alerts.lateAfterMinutes) * 60_000;
    const ids = new Set<string>();
    for (const m of matches) {
      if (!keep(m.clientRef)) continue;
      ids.add(m.plannedVisitId);
      planned.push({
        plannedVisitId: m.plannedVisitId,
        areaId: m.areaId,
        clientRef: m.clientRef,
        plannedStart: new Date(m.startMs).toISOString(),
        staffCount: m.staffCount,
        status: m.status,
        lateMinutes: m.lateMinutes,
        reasonCode: m.reasonCode,
        overdue: m.status === 'pending' && m.executedKeys.length === 0 && now >= m.startMs + lateAfterMs,
        executedKeys: m.executedKeys,
      });
    }
    for (const al of await d.plan.store.alerts({ open: true, areaId: a.areaId, limit: 5000 })) {
      if (!ids.has(al.plannedVisitId)) continue;
      alerts.push({
        plannedVisitId: al.plannedVisitId,
        areaId: al.areaId,
        clientRef: al.clientRef,
        kind: al.kind,
        raisedAt: new Date(al.raisedAtMs).toISOString(),
      });
    }
  }
  planned.sort(
    (x, y) =>
      x.plannedStart.localeCompare(y.plannedStart) || x.plannedVisitId.localeCompare(y.plannedVisitId),
  );
  const visitScope = scope === null ? null : { areas: areas.map((a) => a.areaId), provider: scope.provider };
  const visits = (
    areas.length === 0 && scope !== null ? [] : await d.visits(visitScope, fromMs, toMs, MAX_VISITS)
  )
    .filter((v) => keep(v.clientRef))
    .map((v) => ({
      readerId: v.readerId,
      visitId: v.visitId,
      clientRef: v.clientRef,
      staffRef: v.staffRef,
      state: v.state,
      startedAt: iso(v.startedAtMs),
      endedAt: iso(v.endedAtMs),
      endReason: v.endReason,
    }));
  return {
    ok: true,
    view: {
      date,
      timeZone: tz,
      areas: areas.map((a) => ({ areaId: a.areaId, name: a.name })),
      planned,
      visits,
      alerts,
      counts: {
        planned: planned.length,
        started: planned.filter((p) => p.executedKeys.length > 0).length,
        late: planned.filter((p) => p.status === 'late').length,
        missed: planned.filter((p) => p.status === 'missed').length,
        openAlerts: alerts.length,
      },
      generatedAt: new Date(now).toISOString(),
    },
  };
}
