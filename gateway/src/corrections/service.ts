import { randomBytes } from 'node:crypto';
import { CARD_REF_PATTERN, type Clock } from '../../../protocol/index.js';
import type { CorrectionReason } from '../../../protocol/index.js';
import type { DataScope } from '../auth/scope.js';
import { lockGate, PeriodLocks, type LockRule, type PeriodLock } from './periods.js';
import { StaffFlags } from './flags.js';
import type {
  CorrectionKind,
  CorrectionStore,
  CorrectionTx,
  FlagStore,
  PeriodLockStore,
  StoredCorrection,
  VisitTimes,
} from '../store/corrections.js';
import type { VisitRow } from '../visits/repo.js';

export type { CorrectionKind, CorrectionTx, VisitTimes } from '../store/corrections.js';

export type ReasonCode = (typeof CorrectionReason.options)[number];

/** Which reason codes fit which kind (the service refuses the others; the web app offers only these). */
export const REASONS_BY_KIND: Record<CorrectionKind, readonly ReasonCode[]> = {
  times: ['missed-tap', 'wrong-time', 'forgot-card', 'reader-fault', 'other'],
  added: ['missed-tap', 'forgot-card', 'reader-fault', 'other'],
  withdrawn: ['tap-by-mistake', 'reader-fault', 'other'],
};

/** The reader id of visits added by hand (no reader recorded them). */
export const MANUAL_READER = 'manual';

export interface Correction {
  correctionId: number;
  kind: CorrectionKind;
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
  /** Coordinators and admins change outside locked periods (default); a unit manager only inside them. */
  lockRule?: LockRule;
}

export type CorrectionResult =
  | { ok: true; created: boolean; correction: Correction; visit: VisitRow }
  | { ok: false; status: 400 | 403 | 404 | 409 | 423; error: string; lock?: PeriodLock };

/** A visit no reader recorded, added by a person (the staff member forgot to tap). */
export interface AddVisitRequest {
  clientRef: string;
  staffRef: string;
  startedAtMs: number;
  endedAtMs: number;
  reasonCode: ReasonCode;
  note: string | null;
  actor: string;
  requestId?: string;
  lockRule?: LockRule;
}

/** A tap marked as a mistake: the visit is withdrawn and should not count. */
export interface WithdrawRequest {
  visitId: string;
  readerId?: string;
  reasonCode: ReasonCode;
  note: string | null;
  actor: string;
  requestId?: string;
  visible: (v: VisitRow) => boolean;
  lockRule?: LockRule;
}

/**
 * The SQLite service's ports, synchronous (store/sqlite/corrections.ts builds them over the gateway's file,
 * the visits engine's repo, its outbox and the audit log).
 */
export interface CorrectionDeps {
  store: CorrectionStore;
  locks: PeriodLockStore;
  flags: FlagStore;
  /** Whether a client / staff member is in a caller's scope (the care registry, synchronous). */
  scopes: {
    clientInScope(s: DataScope, clientRef: string): boolean;
    staffInScope(s: DataScope, staffRef: string): boolean;
  };
  clock: Clock;
  /** Time zone of a period lock's month (the care plan's); Europe/Stockholm when not given. */
  timeZone?: string;
}

/** The longest visit that can be added by hand. */
const MAX_ADDED_MS = 24 * 3_600_000;

/** A time later than now plus this is refused (a typo, not a correction). */
const FUTURE_SLACK_MS = 60_000;

const toCorrection = (r: StoredCorrection): Correction => ({ ...r, reasonCode: r.reasonCode as ReasonCode });

const times = (v: VisitRow): VisitTimes => ({ startedAtMs: v.startedAtMs, endedAtMs: v.endedAtMs });
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const wire = (t: VisitTimes) => ({
  startedAt: iso(t.startedAtMs),
  endedAt: iso(t.endedAtMs),
  durationMs:
    t.startedAtMs === null || t.endedAtMs === null ? null : Math.max(0, t.endedAtMs - t.startedAtMs),
});

export const correctionKey = (correctionId: number): string => `vt1:corrected:${correctionId}`;
export const addedKey = (correctionId: number): string => `vt1:added:${correctionId}`;
export const withdrawnKey = (correctionId: number): string => `vt1:withdrawn:${correctionId}`;
const reasonText = (code: ReasonCode, note: string | null) => (note ? `${code}: ${note}` : code);
/** The audit row of a change a unit manager made inside a locked period names that period. */
const inLock = (l: PeriodLock | null) =>
  l === null ? {} : { lockedPeriod: { areaId: l.areaId, month: l.month, lockedBy: l.lockedBy } };

/** What the rules need besides the store: the time and a period lock's month (the care plan's zone). */
export interface CorrectionContext {
  now: () => number;
  monthOf: (ms: number) => string;
}

/** The first result of an earlier submission with this (actor, requestId), if any. */
function seen(
  tx: CorrectionTx,
  actor: string,
  requestId: string | undefined,
  kind: CorrectionKind,
): CorrectionResult | null {
  if (requestId === undefined) return null;
  const earlier = tx.byRequest(actor, requestId);
  if (!earlier) return null;
  if (earlier.kind !== kind) {
    return { ok: false, status: 409, error: 'this requestId was used for another kind of correction' };
  }
  const visit = tx.visit(earlier.readerId, earlier.visitId);
  return visit ? { ok: true, created: false, correction: toCorrection(earlier), visit } : null;
}

function insert(
  tx: CorrectionTx,
  kind: CorrectionKind,
  v: { readerId: string; visitId: string },
  req: { reasonCode: ReasonCode; note: string | null; actor: string; requestId?: string },
  now: number,
  before: VisitTimes,
  after: VisitTimes,
): number {
  return tx.insert({
    kind,
    readerId: v.readerId,
    visitId: v.visitId,
    reasonCode: req.reasonCode,
    note: req.note,
    actor: req.actor,
    requestId: req.requestId ?? null,
    atMs: now,
    before,
    after,
  });
}

/** The lock that covers any of these times of this client's visit, if one does (periods.ts `lockFor`). */
function lockFor(
  tx: CorrectionTx,
  ctx: CorrectionContext,
  clientRef: string | null,
  times: (number | null)[],
): PeriodLock | null {
  const area = clientRef === null ? null : tx.areaOf(clientRef);
  if (area === null) return null;
  for (const t of times) {
    if (t === null) continue;
    const l = tx.periodLock(area, ctx.monthOf(t));
    if (l) return l;
  }
  return null;
}

/**
 * A person sets a visit's start and/or end time with a reason code. In ONE transaction: the visit row
 * takes the corrected times (what plan matching and reports read), the correction is appended with the
 * times before and after (the first one's `before` is the original, which is never lost), `visit_audit`
 * and the gateway's audit log record the real person and the reason, and one `visit.corrected` event goes
 * to the outbox (key `vt1:corrected:{correctionId}`). Synchronous over the store's view (both engines).
 */
export function correctIn(
  tx: CorrectionTx,
  ctx: CorrectionContext,
  req: CorrectionRequest,
): CorrectionResult {
  const again = seen(tx, req.actor, req.requestId, 'times');
  if (again) return again;
  if (!REASONS_BY_KIND.times.includes(req.reasonCode)) {
    return { ok: false, status: 400, error: `reason ${req.reasonCode} does not fit a time correction` };
  }
  const rows = tx
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
  if (tx.withdrawal(v.readerId, v.visitId)) {
    return {
      ok: false,
      status: 409,
      error: 'the visit was withdrawn (marked as a mistake): it is not corrected',
    };
  }
  if (v.readerId === MANUAL_READER) {
    // visit.corrected carries the card read; a visit added by hand has none
    return {
      ok: false,
      status: 409,
      error:
        'a visit added by hand is not time-corrected: withdraw it (reason "other", with a note) and add it again with the right times',
    };
  }
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
  const now = ctx.now();
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
  const locked = lockFor(tx, ctx, v.clientRef, [
    v.startedAtMs,
    v.endedAtMs,
    after.startedAtMs,
    after.endedAtMs,
  ]);
  const refused = lockGate(locked, req.lockRule);
  if (refused) return refused;
  const before = times(v);
  const corrected: VisitRow = { ...v, ...after, updatedAtMs: now };
  tx.upsert(corrected);
  const reason = reasonText(req.reasonCode, req.note);
  const id = insert(tx, 'times', v, req, now, before, after);
  tx.audit({
    readerId: v.readerId,
    visitId: v.visitId,
    action: 'correct',
    actor: req.actor,
    reason,
    atMs: now,
  });
  tx.appendAudit({
    atMs: now,
    actor: req.actor,
    action: 'visit.correct',
    target: `visit:${v.readerId}/${v.visitId}`,
    before: { ...wire(before), correctionId: id },
    after: { ...wire(after), ...inLock(locked) },
    reason,
  });
  tx.enqueue(
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
    kind: 'times',
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
}

/**
 * Adds a visit no reader recorded (the staff member forgot to tap): a closed visit at reader `manual`
 * with no card, marked by its `added` correction; audited; one `visit.added` event (key
 * `vt1:added:{correctionId}`). The caller has checked that client and staff are in its scope.
 */
export function addVisitIn(tx: CorrectionTx, ctx: CorrectionContext, req: AddVisitRequest): CorrectionResult {
  const again = seen(tx, req.actor, req.requestId, 'added');
  if (again) return again;
  if (!REASONS_BY_KIND.added.includes(req.reasonCode)) {
    return { ok: false, status: 400, error: `reason ${req.reasonCode} does not fit an added visit` };
  }
  if (req.reasonCode === 'other' && !req.note) {
    return { ok: false, status: 400, error: 'reason "other": write what happened in "note"' };
  }
  const now = ctx.now();
  if (req.endedAtMs <= req.startedAtMs)
    return { ok: false, status: 400, error: 'the end is not after the start' };
  if (req.endedAtMs > now + FUTURE_SLACK_MS) {
    return { ok: false, status: 400, error: 'the visit ends in the future: check the date and time' };
  }
  if (req.endedAtMs - req.startedAtMs > MAX_ADDED_MS) {
    return { ok: false, status: 400, error: 'a visit added by hand lasts at most 24 hours' };
  }
  if (!tx.clientExists(req.clientRef)) return { ok: false, status: 404, error: 'no such client' };
  if (!tx.staffExists(req.staffRef)) return { ok: false, status: 404, error: 'no such staff member' };
  const overlap = tx.overlapping({
    clientRef: req.clientRef,
    staffRef: req.staffRef,
    fromMs: req.startedAtMs,
    toMs: req.endedAtMs,
  });
  if (overlap && !tx.withdrawal(overlap.readerId, overlap.visitId)) {
    return {
      ok: false,
      status: 409,
      error: `visit ${overlap.visitId} of this staff member at this client covers that time already: correct it instead`,
    };
  }
  const locked = lockFor(tx, ctx, req.clientRef, [req.startedAtMs, req.endedAtMs]);
  const refused = lockGate(locked, req.lockRule);
  if (refused) return refused;
  const visit: VisitRow = {
    readerId: MANUAL_READER,
    visitId: `m-${randomBytes(8).toString('hex')}`,
    clientRef: req.clientRef,
    cardRef: MANUAL_READER,
    staffRef: req.staffRef,
    groupId: null,
    state: 'closed',
    startedAtMs: req.startedAtMs,
    startSeq: null,
    endedAtMs: req.endedAtMs,
    endSeq: null,
    endReason: 'manual',
    timeQuality: 'corrected',
    anomalies: [],
    lateEndSeq: null,
    updatedAtMs: now,
  };
  tx.upsert(visit);
  const none: VisitTimes = { startedAtMs: null, endedAtMs: null };
  const after = times(visit);
  const id = insert(tx, 'added', visit, req, now, none, after);
  const reason = reasonText(req.reasonCode, req.note);
  tx.audit({
    readerId: visit.readerId,
    visitId: visit.visitId,
    action: 'add',
    actor: req.actor,
    reason,
    atMs: now,
  });
  tx.appendAudit({
    atMs: now,
    actor: req.actor,
    action: 'visit.add',
    target: `visit:${visit.readerId}/${visit.visitId}`,
    before: null,
    after: {
      ...wire(after),
      clientRef: req.clientRef,
      staffRef: req.staffRef,
      correctionId: id,
      manual: true,
      ...inLock(locked),
    },
    reason,
  });
  tx.enqueue(
    {
      type: 'visit.added',
      idempotencyKey: addedKey(id),
      correctionId: id,
      visitId: visit.visitId,
      readerId: visit.readerId,
      clientRef: req.clientRef,
      staffRef: req.staffRef,
      cardRef: null,
      manual: true,
      startedAt: new Date(req.startedAtMs).toISOString(),
      endedAt: new Date(req.endedAtMs).toISOString(),
      durationMs: req.endedAtMs - req.startedAtMs,
      reasonCode: req.reasonCode,
      note: req.note,
      addedBy: req.actor,
      addedAt: new Date(now).toISOString(),
    },
    now,
  );
  const correction: Correction = {
    correctionId: id,
    kind: 'added',
    readerId: visit.readerId,
    visitId: visit.visitId,
    reasonCode: req.reasonCode,
    note: req.note,
    actor: req.actor,
    atMs: now,
    before: none,
    after,
  };
  return { ok: true, created: true, correction, visit };
}

/**
 * Marks a visit (a tap) as a mistake: the visit is withdrawn (its `withdrawn` correction; the row and
 * its history stay), audited, and one `visit.withdrawn` event goes out (key `vt1:withdrawn:{id}`). An
 * open visit is closed first (its close has its own reason); a withdrawn visit is not withdrawn again.
 */
export function withdrawIn(tx: CorrectionTx, ctx: CorrectionContext, req: WithdrawRequest): CorrectionResult {
  const again = seen(tx, req.actor, req.requestId, 'withdrawn');
  if (again) return again;
  if (!REASONS_BY_KIND.withdrawn.includes(req.reasonCode)) {
    return { ok: false, status: 400, error: `reason ${req.reasonCode} does not fit a withdrawal` };
  }
  if (req.reasonCode === 'other' && !req.note) {
    return { ok: false, status: 400, error: 'reason "other": write what happened in "note"' };
  }
  const rows = tx
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
  if (v.state === 'open') {
    return {
      ok: false,
      status: 409,
      error:
        'the visit is still open: close it first (POST /api/visits/:visitId/close with a reason), then withdraw it',
    };
  }
  const earlier = tx.withdrawal(v.readerId, v.visitId);
  if (earlier) {
    return { ok: false, status: 409, error: `the visit was withdrawn already by ${earlier.actor}` };
  }
  const locked = lockFor(tx, ctx, v.clientRef, [v.startedAtMs, v.endedAtMs]);
  const refused = lockGate(locked, req.lockRule);
  if (refused) return refused;
  const now = ctx.now();
  const before = times(v);
  const none: VisitTimes = { startedAtMs: null, endedAtMs: null };
  // The row stays as recorded; its change time moves so plan matching sees the change (care cursor).
  tx.upsert({ ...v, updatedAtMs: now });
  const id = insert(tx, 'withdrawn', v, req, now, before, none);
  const reason = reasonText(req.reasonCode, req.note);
  tx.audit({
    readerId: v.readerId,
    visitId: v.visitId,
    action: 'withdraw',
    actor: req.actor,
    reason,
    atMs: now,
  });
  tx.appendAudit({
    atMs: now,
    actor: req.actor,
    action: 'visit.withdraw',
    target: `visit:${v.readerId}/${v.visitId}`,
    before: { ...wire(before), correctionId: id },
    after: { withdrawn: true, ...inLock(locked) },
    reason,
  });
  const card = CARD_REF_PATTERN.test(v.cardRef) ? v.cardRef : null;
  tx.enqueue(
    {
      type: 'visit.withdrawn',
      idempotencyKey: withdrawnKey(id),
      correctionId: id,
      visitId: v.visitId,
      readerId: v.readerId,
      clientRef: v.clientRef,
      staffRef: v.staffRef,
      cardRef: card,
      startedAt: iso(v.startedAtMs),
      endedAt: iso(v.endedAtMs),
      reasonCode: req.reasonCode,
      note: req.note,
      withdrawnBy: req.actor,
      withdrawnAt: new Date(now).toISOString(),
    },
    now,
  );
  const correction: Correction = {
    correctionId: id,
    kind: 'withdrawn',
    readerId: v.readerId,
    visitId: v.visitId,
    reasonCode: req.reasonCode,
    note: req.note,
    actor: req.actor,
    atMs: now,
    before,
    after: none,
  };
  return { ok: true, created: true, correction, visit: v };
}

/**
 * Visit corrections on the gateway's SQLite file (the embedded default): the rules above, each one
 * synchronous transaction of the store (store/sqlite/corrections.ts: live statements, the visits engine's
 * repo so its in-memory index stays current). The PostgreSQL instance uses `PgVisitCorrections` (pg.ts),
 * the same rules.
 */
export class VisitCorrections {
  /** Month locks per area (attestation): changes inside a locked month are refused. */
  readonly locks: PeriodLocks;
  /** Care staff's own registrations and their flags for the coordinator. */
  readonly flags: StaffFlags;
  /** Whether a client / staff member is in a caller's scope (the care registry). */
  readonly scopes: CorrectionDeps['scopes'];
  private readonly ctx: CorrectionContext;
  constructor(private readonly d: CorrectionDeps) {
    this.locks = new PeriodLocks({
      store: d.locks,
      now: () => d.clock.now(),
      timeZone: d.timeZone ?? 'Europe/Stockholm',
    });
    this.flags = new StaffFlags({ store: d.flags, now: () => d.clock.now() });
    this.scopes = d.scopes;
    this.ctx = { now: () => d.clock.now(), monthOf: (ms) => this.locks.monthOf(ms) };
  }

  /** The withdrawal of this visit, if it was withdrawn. */
  withdrawal(readerId: string, visitId: string): Correction | null {
    const r = this.d.store.withdrawal(readerId, visitId);
    return r ? toCorrection(r) : null;
  }

  correct(req: CorrectionRequest): CorrectionResult {
    return this.d.store.run((tx) => correctIn(tx, this.ctx, req));
  }

  addVisit(req: AddVisitRequest): CorrectionResult {
    return this.d.store.run((tx) => addVisitIn(tx, this.ctx, req));
  }

  withdraw(req: WithdrawRequest): CorrectionResult {
    return this.d.store.run((tx) => withdrawIn(tx, this.ctx, req));
  }

  /** A visit's corrections, oldest first (the first `before` is the original). */
  list(visitId: string, visible: (v: VisitRow) => boolean): Correction[] {
    return this.d.store
      .listOf(visitId)
      .filter((x) => x.visit !== null && visible(x.visit))
      .map((x) => toCorrection(x.correction));
  }
}
