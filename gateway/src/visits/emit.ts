import type { AnomalyKind, VisitEvent } from '../../../protocol/index.js';
import type { VisitTx } from '../store/ports.js';
import type { VisitRow } from './repo.js';

/** Idempotency keys (API contract): stable across restarts and re-processing. */
export const keys = {
  started: (readerId: string, seq: number) => `vt1:${readerId}:${seq}:started`,
  ended: (readerId: string, seq: number) => `vt1:${readerId}:${seq}:ended`,
  anomaly: (readerId: string, seq: number, kind: AnomalyKind) => `vt1:${readerId}:${seq}:anomaly:${kind}`,
  manual: (visitId: string) => `vt1:manual:${visitId}`,
  manualAnomaly: (visitId: string) => `vt1:manual:${visitId}:anomaly:manual-close`,
};

const iso = (ms: number): string => new Date(ms).toISOString();

export interface AnomalyContext {
  readerId: string;
  visitId: string | null;
  cardRef: string | null;
  staffRef: string | null;
  clientRef: string | null;
  atMs: number;
  seq: number | null;
  detail: string;
}

/**
 * Turns visit state changes into outbox rows (protocol `VisitEvent`s) and anomaly rows. Runs inside
 * the engine's transaction; every write is keyed, so re-processing writes nothing twice.
 */
export class VisitEmitter {
  private readonly repo: Pick<VisitTx, 'insertAnomaly'>;
  private readonly outbox: Pick<VisitTx, 'enqueue'>;
  /** Anomaly kinds recorded since the last drain (for metrics after the commit). */
  private recorded: AnomalyKind[] = [];
  constructor(opts: { repo: Pick<VisitTx, 'insertAnomaly'>; outbox: Pick<VisitTx, 'enqueue'> }) {
    this.repo = opts.repo;
    this.outbox = opts.outbox;
  }

  started(v: VisitRow, nowMs: number): void {
    if (v.startedAtMs === null || v.startSeq === null) throw new Error('started needs a start');
    const e: VisitEvent = {
      type: 'visit.started',
      idempotencyKey: keys.started(v.readerId, v.startSeq),
      visitId: v.visitId,
      readerId: v.readerId,
      clientRef: v.clientRef,
      staffRef: v.staffRef,
      cardRef: v.cardRef,
      groupId: v.groupId,
      anomalies: v.anomalies,
      timeQuality: v.timeQuality,
      startedAt: iso(v.startedAtMs),
      startSeq: v.startSeq,
    };
    this.outbox.enqueue(e, nowMs);
  }

  ended(v: VisitRow, key: string, nowMs: number, manual?: { closedBy: string; closeReason: string }): void {
    if (v.endedAtMs === null) throw new Error('ended needs an end');
    const endReason = v.endReason === 'manual' || v.endReason === 'auto-close' ? v.endReason : 'tap';
    const e: VisitEvent = {
      type: 'visit.ended',
      idempotencyKey: key,
      visitId: v.visitId,
      readerId: v.readerId,
      clientRef: v.clientRef,
      staffRef: v.staffRef,
      cardRef: v.cardRef,
      groupId: v.groupId,
      anomalies: v.anomalies,
      timeQuality: v.timeQuality,
      startedAt: v.startedAtMs === null ? null : iso(v.startedAtMs),
      endedAt: iso(v.endedAtMs),
      durationMs: v.startedAtMs === null ? null : Math.max(0, v.endedAtMs - v.startedAtMs),
      endReason,
      endSeq: v.endSeq,
      ...(manual ?? {}),
    };
    this.outbox.enqueue(e, nowMs);
  }

  anomaly(kind: AnomalyKind, key: string, a: AnomalyContext, nowMs: number): void {
    const detail = a.detail.slice(0, 200);
    if (!this.repo.insertAnomaly({ ...a, key, kind, detail, nowMs })) return;
    this.recorded.push(kind);
    this.outbox.enqueue(
      {
        type: 'visit.anomaly',
        idempotencyKey: key,
        anomaly: kind,
        readerId: a.readerId,
        clientRef: a.clientRef,
        staffRef: a.staffRef,
        cardRef: a.cardRef,
        visitId: a.visitId,
        at: iso(a.atMs),
        seq: a.seq,
        detail,
      },
      nowMs,
    );
  }

  drainRecorded(): AnomalyKind[] {
    const r = this.recorded;
    this.recorded = [];
    return r;
  }

  /** Forget what a rolled-back transaction recorded. */
  discardRecorded(count: number): void {
    this.recorded = this.recorded.slice(0, count);
  }

  get recordedCount(): number {
    return this.recorded.length;
  }
}
