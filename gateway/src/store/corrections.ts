/**
 * The visit corrections' store port (issue 13; on both engines since issue 14): tables visit_corrections,
 * period_locks, visit_flags; a correction also writes visits, visit_audit, the outbox and the audit log in
 * the same transaction.
 *
 * A correction is one unit of work over a synchronous view, `CorrectionTx`, like the visits turn
 * (ports.ts `VisitTx`): the correction rules (gateway/src/corrections/service.ts) are ONE synchronous
 * implementation run over it.
 * - SQLite: live statements inside one better-sqlite3 transaction (corrections/service.ts).
 * - PostgreSQL (store/postgres/corrections.ts): one transaction under the corrections' advisory lock and
 *   the visit's readers' locks (the visits turn's), the reads the rules ask for fetched and the rules run
 *   again until they ask for nothing new, then the recorded writes go out in that transaction.
 * So the work may run several times and must have no effect outside the view.
 */
import type { VisitEvent } from '../../../protocol/index.js';
import type { NewAuditEntry, VisitAuditRecord, VisitRow } from './ports.js';

/** A visit's times as a correction records them (ms; null = not known). */
export interface VisitTimes {
  startedAtMs: number | null;
  endedAtMs: number | null;
}

/** What a correction did: changed times, added a visit no reader recorded, or withdrew a tap. */
export type CorrectionKind = 'times' | 'added' | 'withdrawn';

export interface StoredCorrection {
  correctionId: number;
  kind: CorrectionKind;
  readerId: string;
  visitId: string;
  reasonCode: string;
  note: string | null;
  actor: string;
  atMs: number;
  before: VisitTimes;
  after: VisitTimes;
}

export type NewCorrection = Omit<StoredCorrection, 'correctionId'> & { requestId: string | null };

export interface PeriodLock {
  areaId: string;
  month: string;
  lockedBy: string;
  lockedAtMs: number;
  note: string | null;
}

/** The synchronous view one correction works on (reads, then writes that commit together). */
export interface CorrectionTx {
  /** The correction an earlier submission with this (actor, requestId) made, if any. */
  byRequest(actor: string, requestId: string): StoredCorrection | null;
  /** The withdrawal of this visit, if it was withdrawn. */
  withdrawal(readerId: string, visitId: string): StoredCorrection | null;
  visit(readerId: string, visitId: string): VisitRow | null;
  visitsById(visitId: string): VisitRow[];
  clientExists(clientRef: string): boolean;
  staffExists(staffRef: string): boolean;
  /** A visit of this staff member at this client overlapping [fromMs, toMs), if any. */
  overlapping(q: { clientRef: string; staffRef: string; fromMs: number; toMs: number }): {
    readerId: string;
    visitId: string;
  } | null;
  /** The area of a registered client (null: not in the care registry). */
  areaOf(clientRef: string): string | null;
  periodLock(areaId: string, month: string): PeriodLock | null;
  upsert(v: VisitRow): void;
  audit(a: VisitAuditRecord): void;
  /** Appends the correction; its id. */
  insert(c: NewCorrection): number;
  appendAudit(e: NewAuditEntry): void;
  /** Validates and queues a visit event in the same transaction; false when its key exists. */
  enqueue(e: VisitEvent, nowMs: number): boolean;
}

export interface FlagRowRaw {
  flag_id: number;
  staff_ref: string;
  actor: string;
  reader_id: string | null;
  visit_id: string | null;
  client_ref: string | null;
  date: string | null;
  message: string;
  created_at_ms: number;
  resolved_by: string | null;
  resolved_at_ms: number | null;
  resolution: string | null;
  resolution_note: string | null;
}

export interface CorrectionRowRaw {
  correction_id: number;
  kind: CorrectionKind;
  reader_id: string;
  visit_id: string;
  reason_code: string;
  note: string | null;
  actor: string;
  at_ms: number;
  before_json: string;
  after_json: string;
}

export const toStoredCorrection = (r: CorrectionRowRaw): StoredCorrection => ({
  correctionId: r.correction_id,
  kind: r.kind,
  readerId: r.reader_id,
  visitId: r.visit_id,
  reasonCode: r.reason_code,
  note: r.note,
  actor: r.actor,
  atMs: r.at_ms,
  before: JSON.parse(r.before_json) as VisitTimes,
  after: JSON.parse(r.after_json) as VisitTimes,
});

export interface PeriodLockRaw {
  area_id: string;
  month: string;
  locked_by: string;
  locked_at_ms: number;
  note: string | null;
}

export const toPeriodLock = (r: PeriodLockRaw): PeriodLock => ({
  areaId: r.area_id,
  month: r.month,
  lockedBy: r.locked_by,
  lockedAtMs: r.locked_at_ms,
  note: r.note,
});
