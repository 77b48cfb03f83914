import type { Clock, VisitEvent } from '../../../protocol/index.js';
import type { CorrectionReason } from '../../../protocol/index.js';
import type { NewAuditEntry } from '../audit/store.js';
import type { Db } from '../store/sqlite/db.js';
import type { VisitRepo, VisitRow } from '../visits/repo.js';

export type ReasonCode = (typeof CorrectionReason.options)[number];

/** A visit's times as a correction records them (ms; null = not known). */
export interface VisitTimes {
  startedAtMs: number | null;
  endedAtMs: number | null;
}

export interface Correction {
  correctionId: number;
  readerId: string;
  visitId: string;
  reasonCode: ReasonCode;
  note: string | null;
  actor: string;
  atMs: number;
  before: VisitTimes;
  after: VisitTimes;
}

export interface CorrectionRequest {
  visitId: string;
  /** Needed only when the visit id exists at several readers. */
  readerId?: string;
  startedAtMs?: number;
  endedAtMs?: number;
  reasonCode: ReasonCode;
  note: string | null;
  actor: string;
  /** The caller's id for this submission: the same (actor, requestId) returns the first result again. */
  requestId?: string;
  /** Rows the caller may correct (area scope); others read as absent. */
  visible: (v: VisitRow) => boolean;
}

export type CorrectionResult =
  | { ok: true; created: boolean; correction: Correction; visit: VisitRow }
  | { ok: false; status: 400 | 404 | 409; error: string };

export interface CorrectionDeps {
  db: Db;
  clock: Clock;
  repo: Pick<VisitRepo, 'visitsById' | 'visit' | 'upsert' | 'audit'>;
  enqueue: (e: VisitEvent, nowMs: number) => boolean;
  /** The gateway's audit log (synchronous SQLite append, inside the correction's transaction). */
  appendAudit: (e: NewAuditEntry) => unknown;
}

/** A time later than now plus this is refused (a typo, not a correction). */
const FUTURE_SLACK_MS = 60_000;

interface Row {
  correction_id: number;
  reader_id: string;
  visit_id: string;
  reason_code: ReasonCode;
  note: string | null;
  actor: string;
  at_ms: number;
  before_json: string;
  after_json: string;
}

const toCorrection = (r: Row): Correction => ({
  correctionId: r.correction_id,
  readerId: r.reader_id,
  visitId: r.visit_id,
  reasonCode: r.reason_code,
  note: r.note,
  actor: r.actor,
  atMs: r.at_ms,
  before: JSON.parse(r.before_json) as VisitTimes,
  after: JSON.parse(r.after_json) as VisitTimes,
});

const times = (v: VisitRow): VisitTimes => ({ startedAtMs: v.startedAtMs, endedAtMs: v.endedAtMs });
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const wire = (t: VisitTimes) => ({
  startedAt: iso(t.startedAtMs),
  endedAt: iso(t.endedAtMs),
  durationMs:
    t.startedAtMs === null || t.endedAtMs === null ? null : Math.max(0, t.endedAtMs - t.startedAtMs),
});

export const correctionKey = (correctionId: number): string => `vt1:corrected:${correctionId}`;

/**
 * Visit corrections: a person sets a visit's start and/or end time with a reason code. In ONE
 * transaction: the visit row takes the corrected times (what plan matching and reports read), the
 * correction is appended with the times before and after (the first one's `before` is the original,
 * which is never lost), `visit_audit` and the gateway's audit log record the real person and the
 * reason, and one `visit.corrected` event goes to the outbox (key `vt1:corrected:{correctionId}`).
 */
export class VisitCorrections {
  constructor(private readonly d: CorrectionDeps) {}

  correct(req: CorrectionRequest): CorrectionResult {
    const { db, clock, repo } = this.d;
    return db.transaction((): CorrectionResult => {
      if (req.requestId !== undefined) {
        const seen = db
          .prepare('SELECT * FROM visit_corrections WHERE actor = ? AND request_id = ?')
          .get(req.actor, req.requestId) as Row | undefined;
        if (seen) {
          const visit = repo.visit(seen.reader_id, seen.visit_id);
          if (visit) return { ok: true, created: false, correction: toCorrection(seen), visit };
        }
      }
      const rows = repo
        .visitsById(req.visitId)
        .filter((v) => (req.readerId === undefined || v.readerId === req.readerId) && req.visible(v));
      if (rows.length === 0) return { ok: false, status: 404, error: 'no such visit' };
      if (rows.length > 1) {
        return {
          ok: false,
          status: 409,
          error: `visit id ${req.visitId} exists at several readers: send "readerId" to say which`,
        };
      }
      const v = rows[0] as VisitRow;
      if (req.startedAtMs === undefined && req.endedAtMs === undefined) {
        return { ok: false, status: 400, error: 'send "startedAt" and/or "endedAt" (ISO time) to correct' };
      }
      if (req.endedAtMs !== undefined && v.state === 'open') {
        return {
          ok: false,
          status: 409,
          error:
            'the visit is still open: close it first (POST /api/visits/:visitId/close with a reason), then correct its end',
        };
      }
      const now = clock.now();
      const after: VisitTimes = {
        startedAtMs: req.startedAtMs ?? v.startedAtMs,
        endedAtMs: req.endedAtMs ?? v.endedAtMs,
      };
      for (const t of [after.startedAtMs, after.endedAtMs]) {
        if (t !== null && t > now + FUTURE_SLACK_MS) {
          return {
            ok: false,
            status: 400,
            error: 'a corrected time is in the future: check the date and time',
          };
        }
      }
      if (after.startedAtMs !== null && after.endedAtMs !== null && after.endedAtMs < after.startedAtMs) {
        return { ok: false, status: 400, error: 'the corrected end is before the start' };
      }
      if (after.startedAtMs === v.startedAtMs && after.endedAtMs === v.endedAtMs) {
        return { ok: false, status: 409, error: 'nothing to correct: the visit already has these times' };
      }
      const before = times(v);
      const corrected: VisitRow = { ...v, ...after, updatedAtMs: now };
      repo.upsert(corrected);
      const reason = req.note ? `${req.reasonCode}: ${req.note}` : req.reasonCode;
      const id = Number(
        db
          .prepare(
            `INSERT INTO visit_corrections (reader_id, visit_id, reason_code, note, actor, request_id, at_ms,
               before_json, after_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            v.readerId,
            v.visitId,
            req.reasonCode,
            req.note,
            req.actor,
            req.requestId ?? null,
            now,
            JSON.stringify(before),
            JSON.stringify(after),
          ).lastInsertRowid,
      );
      repo.audit({
        readerId: v.readerId,
        visitId: v.visitId,
        action: 'correct',
        actor: req.actor,
        reason,
        atMs: now,
      });
      this.d.appendAudit({
        atMs: now,
        actor: req.actor,
        action: 'visit.correct',
        target: `visit:${v.readerId}/${v.visitId}`,
        before: { ...wire(before), correctionId: id },
        after: wire(after),
        reason,
      });
      this.d.enqueue(
        {
          type: 'visit.corrected',
          idempotencyKey: correctionKey(id),
          correctionId: id,
          visitId: v.visitId,
          readerId: v.readerId,
          clientRef: v.clientRef,
          staffRef: v.staffRef,
          cardRef: v.cardRef,
          reasonCode: req.reasonCode,
          note: req.note,
          correctedBy: req.actor,
          correctedAt: new Date(now).toISOString(),
          before: wire(before),
          after: wire(after),
        },
        now,
      );
      const correction: Correction = {
        correctionId: id,
        readerId: v.readerId,
        visitId: v.visitId,
        reasonCode: req.reasonCode,
        note: req.note,
        actor: req.actor,
        atMs: now,
        before,
        after,
      };
      return { ok: true, created: true, correction, visit: corrected };
    })();
  }

  /** A visit's corrections, oldest first (the first `before` is the original). */
  list(visitId: string, visible: (v: VisitRow) => boolean): Correction[] {
    const rows = this.d.db
      .prepare('SELECT * FROM visit_corrections WHERE visit_id = ? ORDER BY correction_id')
      .all(visitId) as Row[];
    return rows
      .filter((r) => {
        const v = this.d.repo.visit(r.reader_id, r.visit_id);
        return v !== null && visible(v);
      })
      .map(toCorrection);
  }
}
