/**
 * Live alerts (pure): which late / missed / understaffed alerts should be open at `nowMs`, as raise and
 * clear changes against the ones that are open. Each (planned visit, kind) is raised at most once.
 */
import type { Alert, AlertKind } from './model.js';
import type { AlertChange, AlertInput } from './store.js';

export interface AlertThresholds {
  /** Minutes after the planned start before `late` (and `understaffed`). */
  lateAfterMinutes: number;
  /** Minutes after the planned start before `missed`. */
  missedAfterMinutes: number;
}

export interface AlertConfig extends AlertThresholds {
  /**
   * An alert is raised only if its moment (planned start + threshold) lies within this many minutes
   * before now: importing a past plan, or a gateway that was down for a day, does not flood the backend.
   */
  liveHorizonMinutes: number;
}

export const DEFAULT_ALERT_CONFIG: AlertConfig = {
  lateAfterMinutes: 15,
  missedAfterMinutes: 120,
  liveHorizonMinutes: 360,
};

const MIN = 60_000;

export function decideAlerts(
  input: AlertInput,
  nowMs: number,
  cfg: AlertConfig,
  thresholdsFor: (areaId: string) => AlertThresholds = () => cfg,
): AlertChange {
  const raise: Alert[] = [];
  const clear: AlertChange['clear'] = [];
  const openBy = new Map<string, Alert[]>();
  for (const a of input.open) openBy.set(a.plannedVisitId, [...(openBy.get(a.plannedVisitId) ?? []), a]);

  for (const p of input.plans) {
    const t = thresholdsFor(p.areaId);
    const m = input.matches.get(p.plannedVisitId);
    const n = m?.executedKeys.length ?? 0;
    const reason = input.reasons.get(p.plannedVisitId) ?? null;
    const want = new Map<AlertKind, number>(); // kind -> moment
    if (n === 0 && reason === null) {
      want.set('late', p.startMs + t.lateAfterMinutes * MIN);
      want.set('missed', p.startMs + t.missedAfterMinutes * MIN);
    }
    if (p.staffCount === 2 && n === 1) want.set('understaffed', p.startMs + t.lateAfterMinutes * MIN);
    const open = openBy.get(p.plannedVisitId) ?? [];
    for (const [kind, at] of want) {
      if (at > nowMs || at < nowMs - cfg.liveHorizonMinutes * MIN) continue;
      if (open.some((a) => a.kind === kind)) continue;
      raise.push({
        plannedVisitId: p.plannedVisitId,
        clientRef: p.clientRef,
        areaId: p.areaId,
        kind,
        raisedAtMs: nowMs,
        clearedAtMs: null,
        clearedBy: null,
        reasonCode: null,
      });
    }
    for (const a of open) {
      if (want.has(a.kind)) continue;
      const by =
        reason !== null && n === 0
          ? 'reason-set'
          : a.kind === 'understaffed'
            ? n >= 2
              ? 'second-staff'
              : 'plan-changed'
            : n > 0
              ? 'visit-started'
              : 'plan-changed';
      clear.push({
        plannedVisitId: a.plannedVisitId,
        kind: a.kind,
        clearedAtMs: nowMs,
        clearedBy: by,
        reasonCode: reason,
      });
    }
  }
  for (const a of input.goneOpen) {
    clear.push({
      plannedVisitId: a.plannedVisitId,
      kind: a.kind,
      clearedAtMs: nowMs,
      clearedBy: 'plan-changed',
    });
  }
  return { raise, clear };
}
