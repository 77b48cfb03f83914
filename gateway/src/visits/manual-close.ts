import type { Clock } from '../../../protocol/index.js';
import type { SyncVisitTurns } from './engine.js';
import { keys } from './emit.js';
import type { VisitEmitter } from './emit.js';
import type { VisitRepo, VisitRow } from './repo.js';

export type ManualCloseResult =
  { ok: true; visit: VisitRow } | { ok: false; status: 404 | 409; error: string };

/**
 * An operator closes an open visit: in one transaction the visit is closed (endReason 'manual',
 * anomaly 'manual-close'), who/why/when goes to `visit_audit`, and visit.ended goes to the outbox
 * (key `vt1:manual:<visitId>`). A later device stop for that visit is recorded but not forwarded.
 */
export function closeVisitManually(
  deps: { turns: SyncVisitTurns; clock: Clock; repo: VisitRepo; emitter: VisitEmitter },
  req: { visitId: string; actor: string; reason: string },
): ManualCloseResult {
  return deps.turns.runTurn('all', (): ManualCloseResult => closeOpenVisit(deps, req));
}

/**
 * The close itself, inside a turn: the SQLite engine's (above) or a turn on PostgreSQL
 * (visits/tx-turns.ts `closeVisit`, over the turn's VisitTx).
 */
export function closeOpenVisit(
  deps: {
    clock: Clock;
    repo: Pick<VisitRepo, 'visitsById' | 'upsert' | 'audit'>;
    emitter: Pick<VisitEmitter, 'ended' | 'anomaly'>;
  },
  req: { visitId: string; actor: string; reason: string },
): ManualCloseResult {
  const { clock, repo, emitter } = deps;
  const all = repo.visitsById(req.visitId);
  const open = all.filter((v) => v.state === 'open');
  if (all.length === 0) return { ok: false, status: 404, error: 'no such visit' };
  if (open.length === 0) return { ok: false, status: 409, error: 'visit is already closed' };
  if (open.length > 1) return { ok: false, status: 409, error: 'visit id is open at several readers' };
  const v = open[0] as VisitRow;
  const now = clock.now();
  const closed: VisitRow = {
    ...v,
    state: 'closed',
    endedAtMs: Math.max(now, v.startedAtMs ?? now),
    endSeq: null,
    endReason: 'manual',
    anomalies: v.anomalies.includes('manual-close') ? v.anomalies : [...v.anomalies, 'manual-close'],
    updatedAtMs: now,
  };
  repo.upsert(closed);
  repo.audit({
    readerId: v.readerId,
    visitId: v.visitId,
    action: 'close',
    actor: req.actor,
    reason: req.reason,
    atMs: now,
  });
  emitter.ended(closed, keys.manual(v.visitId), now, { closedBy: req.actor, closeReason: req.reason });
  emitter.anomaly(
    'manual-close',
    keys.manualAnomaly(v.visitId),
    {
      readerId: v.readerId,
      visitId: v.visitId,
      cardRef: v.cardRef,
      staffRef: v.staffRef,
      clientRef: v.clientRef,
      atMs: now,
      seq: null,
      detail: `closed by ${req.actor}: ${req.reason}`,
    },
    now,
  );
  return { ok: true, visit: closed };
}
