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

// ------------------------------------------------------------------------------ the ports of both engines

/** What a lock or unlock did (corrections/periods.ts). */
export type LockResult =
  { ok: true; lock: PeriodLock } | { ok: false; status: 404 | 409; error: string; lock?: PeriodLock };

/** A flag's scope: the caller's areas and provider (auth/scope.ts `DataScope`). */
export interface FlagScope {
  areas: readonly string[];
  provider: string | null;
}

/** A staff member's own visit with what corrections made of it. */
export interface OwnVisitRaw {
  reader_id: string;
  visit_id: string;
  client_ref: string | null;
  state: 'open' | 'closed';
  started_at_ms: number | null;
  ended_at_ms: number | null;
  manual: boolean;
  withdrawn: boolean;
  corrected: boolean;
}

export type FlagStoreResult =
  { ok: true; created: boolean; flag: FlagRowRaw } | { ok: false; status: 400 | 404 | 409; error: string };

export interface NewFlag {
  staffRef: string;
  actor: string;
  visitId?: string;
  readerId?: string;
  date?: string;
  message: string;
  requestId?: string;
  nowMs: number;
}

/**
 * The corrections themselves. SQLite answers synchronously (`CorrectionStore`), PostgreSQL with promises
 * (`Async<CorrectionStore>`, store/postgres/corrections.ts).
 */
export interface CorrectionStore {
  /** One correction: `work` over the view, in one transaction. */
  run<T>(work: (tx: CorrectionTx) => T): T;
  /** The withdrawal of this visit, if it was withdrawn. */
  withdrawal(readerId: string, visitId: string): StoredCorrection | null;
  /** A visit id's corrections with their visits, oldest first. */
  listOf(visitId: string): Array<{ correction: StoredCorrection; visit: VisitRow | null }>;
}

/** Month locks per area (corrections/periods.ts); lock and unlock append their audit entry in their transaction. */
export interface PeriodLockStore {
  get(areaId: string, month: string): PeriodLock | null;
  /** The area of a registered client (null: not in the care registry). */
  areaOf(clientRef: string): string | null;
  /** Locks of these areas (null: every area), newest month first. */
  list(areas: readonly string[] | null): PeriodLock[];
  lock(areaId: string, month: string, actor: string, note: string | null, nowMs: number): LockResult;
  unlock(areaId: string, month: string, actor: string, reason: string, nowMs: number): LockResult;
}

/** Care staff's own registrations and flags (corrections/flags.ts); a flag's audit entry in its transaction. */
export interface FlagStore {
  ownVisits(staffRef: string, fromMs: number, toMs: number, limit: number): OwnVisitRaw[];
  flag(req: NewFlag): FlagStoreResult;
  /** The staff member's own flags, newest first. */
  ownFlags(staffRef: string, limit?: number): FlagRowRaw[];
  /** Flags in the scope (null: all), open ones only unless `all`, newest first. */
  list(scope: FlagScope | null, q: { all: boolean; limit: number }): FlagRowRaw[];
  resolve(
    scope: FlagScope | null,
    flagId: number,
    actor: string,
    resolution: string,
    note: string | null,
    nowMs: number,
  ): FlagStoreResult;
}

/** The corrections on PostgreSQL: as `CorrectionStore`, with promises (`run` may run `work` several times). */
export interface AsyncCorrectionStore {
  run<T>(work: (tx: CorrectionTx) => T): Promise<T>;
  withdrawal(readerId: string, visitId: string): Promise<StoredCorrection | null>;
  listOf(visitId: string): Promise<Array<{ correction: StoredCorrection; visit: VisitRow | null }>>;
}

/** A port's PostgreSQL shape: every method answers with a promise. */
export type Async<P> = {
  [K in keyof P]: P[K] extends (...a: infer A) => infer R ? (...a: A) => Promise<R> : P[K];
};

/** A flag as the feature and the audit log show it (the same fields on both engines). */
export const flagEntry = (r: FlagRowRaw) => ({
  flagId: r.flag_id,
  staffRef: r.staff_ref,
  readerId: r.reader_id,
  visitId: r.visit_id,
  clientRef: r.client_ref,
  date: r.date,
  message: r.message,
  createdAtMs: r.created_at_ms,
  resolvedBy: r.resolved_by,
  resolvedAtMs: r.resolved_at_ms,
  resolution: r.resolution,
  resolutionNote: r.resolution_note,
});
