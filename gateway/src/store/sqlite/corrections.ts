/**
 * Visit corrections on SQLite (the embedded gateway; ports in ../corrections.ts): a correction is one
 * better-sqlite3 transaction over live statements (`SqliteCorrectionStore.run`), period locks and care
 * staff's flags are small synchronous units (`SqlitePeriodLockStore`, `SqliteFlagStore`). The rules are the
 * feature's (corrections/service.ts, periods.ts, flags.ts); PostgreSQL's adapter is ../postgres/corrections.ts.
 *
 * The visit rows go through the visits engine's repo (`visits`), so its in-memory visit index stays current;
 * the outbox event and the audit entry through the callers' synchronous appenders, inside the transaction.
 */
import type { VisitEvent } from '../../../../protocol/index.js';
import {
  toPeriodLock,
  toStoredCorrection,
  type CorrectionRowRaw,
  type CorrectionStore,
  type CorrectionTx,
  type FlagRowRaw,
  type FlagScope,
  type FlagStore,
  type FlagStoreResult,
  type LockResult,
  type NewFlag,
  type OwnVisitRaw,
  type PeriodLock,
  type PeriodLockRaw,
  type PeriodLockStore,
  type StoredCorrection,
} from '../corrections.js';
import { flagEntry } from '../corrections.js';
import type { NewAuditEntry, VisitAuditRecord, VisitRow } from '../ports.js';
import type { Db } from './db.js';

/** The visit rows a correction reads and writes (the visits engine's repo on SQLite). */
export interface CorrectionVisits {
  visit(readerId: string, visitId: string): VisitRow | null;
  visitsById(visitId: string): VisitRow[];
  upsert(v: VisitRow): void;
  audit(a: VisitAuditRecord): void;
}

export interface SqliteCorrectionDeps {
  visits: CorrectionVisits;
  /** Validates and queues a visit event (the SQLite outbox, synchronous); false when its key exists. */
  enqueue: (e: VisitEvent, nowMs: number) => boolean;
  /** The gateway's audit log (a synchronous SQLite append, inside the correction's transaction). */
  appendAudit: (e: NewAuditEntry) => unknown;
}

export class SqliteCorrectionStore implements CorrectionStore {
  constructor(
    private readonly db: Db,
    private readonly d: SqliteCorrectionDeps,
  ) {}

  private row(sql: string, ...args: unknown[]): StoredCorrection | null {
    const r = this.db.prepare(sql).get(...args) as CorrectionRowRaw | undefined;
    return r ? toStoredCorrection(r) : null;
  }

  /** The live view of one correction's transaction. */
  private tx(): CorrectionTx {
    const { db } = this;
    const { visits } = this.d;
    return {
      byRequest: (actor, requestId) =>
        this.row('SELECT * FROM visit_corrections WHERE actor = ? AND request_id = ?', actor, requestId),
      withdrawal: (readerId, visitId) => this.withdrawal(readerId, visitId),
      visit: (readerId, visitId) => visits.visit(readerId, visitId),
      visitsById: (visitId) => visits.visitsById(visitId),
      clientExists: (clientRef) =>
        db.prepare('SELECT 1 FROM care_clients WHERE client_ref = ?').get(clientRef) !== undefined,
      staffExists: (staffRef) =>
        db.prepare('SELECT 1 FROM care_staff WHERE staff_ref = ?').get(staffRef) !== undefined,
      overlapping: (q) => {
        const r = db
          .prepare(
            `SELECT reader_id, visit_id FROM visits WHERE client_ref = ? AND staff_ref = ?
               AND started_at_ms < ? AND COALESCE(ended_at_ms, started_at_ms) > ? LIMIT 1`,
          )
          .get(q.clientRef, q.staffRef, q.toMs, q.fromMs) as
          { reader_id: string; visit_id: string } | undefined;
        return r ? { readerId: r.reader_id, visitId: r.visit_id } : null;
      },
      areaOf: (clientRef) => areaOf(db, clientRef),
      periodLock: (areaId, month) => lockOf(db, areaId, month),
      upsert: (v) => visits.upsert(v),
      audit: (a) => visits.audit(a),
      insert: (c) =>
        Number(
          db
            .prepare(
              `INSERT INTO visit_corrections (kind, reader_id, visit_id, reason_code, note, actor, request_id, at_ms,
                 before_json, after_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            )
            .run(
              c.kind,
              c.readerId,
              c.visitId,
              c.reasonCode,
              c.note,
              c.actor,
              c.requestId,
              c.atMs,
              JSON.stringify(c.before),
              JSON.stringify(c.after),
            ).lastInsertRowid,
        ),
      appendAudit: (e) => void this.d.appendAudit(e),
      enqueue: (e, nowMs) => this.d.enqueue(e, nowMs),
    };
  }

  run<T>(work: (tx: CorrectionTx) => T): T {
    return this.db.transaction(() => work(this.tx()))();
  }

  withdrawal(readerId: string, visitId: string): StoredCorrection | null {
    return this.row(
      "SELECT * FROM visit_corrections WHERE kind = 'withdrawn' AND reader_id = ? AND visit_id = ? LIMIT 1",
      readerId,
      visitId,
    );
  }

  listOf(visitId: string): Array<{ correction: StoredCorrection; visit: VisitRow | null }> {
    const rows = this.db
      .prepare('SELECT * FROM visit_corrections WHERE visit_id = ? ORDER BY correction_id')
      .all(visitId) as CorrectionRowRaw[];
    return rows.map((r) => ({
      correction: toStoredCorrection(r),
      visit: this.d.visits.visit(r.reader_id, r.visit_id),
    }));
  }
}

// --------------------------------------------------------------------------------------- period locks

const areaOf = (db: Db, clientRef: string): string | null =>
  (db.prepare('SELECT area_id FROM care_clients WHERE client_ref = ?').pluck().get(clientRef) as
    string | undefined) ?? null;

const lockOf = (db: Db, areaId: string, month: string): PeriodLock | null => {
  const r = db.prepare('SELECT * FROM period_locks WHERE area_id = ? AND month = ?').get(areaId, month) as
    PeriodLockRaw | undefined;
  return r ? toPeriodLock(r) : null;
};

export class SqlitePeriodLockStore implements PeriodLockStore {
  constructor(
    private readonly db: Db,
    private readonly d: { appendAudit: (e: NewAuditEntry) => unknown },
  ) {}

  get(areaId: string, month: string): PeriodLock | null {
    return lockOf(this.db, areaId, month);
  }

  areaOf(clientRef: string): string | null {
    return areaOf(this.db, clientRef);
  }

  list(areas: readonly string[] | null): PeriodLock[] {
    const rows = (
      areas === null
        ? this.db.prepare('SELECT * FROM period_locks ORDER BY month DESC, area_id').all()
        : this.db
            .prepare(
              'SELECT * FROM period_locks WHERE area_id IN (SELECT value FROM json_each(?)) ORDER BY month DESC, area_id',
            )
            .all(JSON.stringify(areas))
    ) as PeriodLockRaw[];
    return rows.map(toPeriodLock);
  }

  lock(areaId: string, month: string, actor: string, note: string | null, nowMs: number): LockResult {
    const { db } = this;
    return db.transaction((): LockResult => {
      const known = db.prepare('SELECT 1 FROM care_areas WHERE area_id = ?').get(areaId) !== undefined;
      if (!known) return { ok: false, status: 404, error: 'no such area' };
      const seen = this.get(areaId, month);
      if (seen) {
        return {
          ok: false,
          status: 409,
          error: `${month} of area ${areaId} is already locked by ${seen.lockedBy}`,
          lock: seen,
        };
      }
      db.prepare(
        'INSERT INTO period_locks (area_id, month, locked_by, locked_at_ms, note) VALUES (?, ?, ?, ?, ?)',
      ).run(areaId, month, actor, nowMs, note);
      const lock: PeriodLock = { areaId, month, lockedBy: actor, lockedAtMs: nowMs, note };
      this.d.appendAudit({
        atMs: nowMs,
        actor,
        action: 'period.lock',
        target: `period:${areaId}/${month}`,
        before: null,
        after: lock,
        reason: note,
      });
      return { ok: true, lock };
    })();
  }

  unlock(areaId: string, month: string, actor: string, reason: string, nowMs: number): LockResult {
    const { db } = this;
    return db.transaction((): LockResult => {
      const seen = this.get(areaId, month);
      if (!seen) return { ok: false, status: 404, error: `${month} of area ${areaId} is not locked` };
      db.prepare('DELETE FROM period_locks WHERE area_id = ? AND month = ?').run(areaId, month);
      this.d.appendAudit({
        atMs: nowMs,
        actor,
        action: 'period.unlock',
        target: `period:${areaId}/${month}`,
        before: seen,
        after: null,
        reason,
      });
      return { ok: true, lock: seen };
    })();
  }
}

// ----------------------------------------------------------------------------------------------- flags

/** Flags in a scope: by the visit's client when there is one, else by the staff member's area. */
const IN_SCOPE = `(
  (f.client_ref IS NOT NULL AND f.client_ref IN (SELECT client_ref FROM care_clients
      WHERE area_id IN (SELECT value FROM json_each(@areas))
        AND (@provider IS NULL OR json_extract(json, '$.providerId') = @provider)))
  OR (f.client_ref IS NULL AND f.staff_ref IN (SELECT staff_ref FROM care_staff
      WHERE area_id IN (SELECT value FROM json_each(@areas)))))`;

export class SqliteFlagStore implements FlagStore {
  constructor(
    private readonly db: Db,
    private readonly d: { appendAudit: (e: NewAuditEntry) => unknown },
  ) {}

  ownVisits(staffRef: string, fromMs: number, toMs: number, limit: number): OwnVisitRaw[] {
    const rows = this.db
      .prepare(
        `SELECT v.reader_id, v.visit_id, v.client_ref, v.state, v.started_at_ms, v.ended_at_ms,
           EXISTS (SELECT 1 FROM visit_corrections c WHERE c.reader_id = v.reader_id AND c.visit_id = v.visit_id
             AND c.kind = 'added') AS manual,
           EXISTS (SELECT 1 FROM visit_corrections c WHERE c.reader_id = v.reader_id AND c.visit_id = v.visit_id
             AND c.kind = 'withdrawn') AS withdrawn,
           EXISTS (SELECT 1 FROM visit_corrections c WHERE c.reader_id = v.reader_id AND c.visit_id = v.visit_id
             AND c.kind = 'times') AS corrected
         FROM visits v WHERE v.staff_ref = @staffRef
           AND COALESCE(v.started_at_ms, v.ended_at_ms) >= @fromMs AND COALESCE(v.started_at_ms, v.ended_at_ms) < @toMs
         ORDER BY COALESCE(v.started_at_ms, v.ended_at_ms), v.reader_id, v.visit_id LIMIT @limit`,
      )
      .all({ staffRef, fromMs, toMs, limit }) as Array<
      Omit<OwnVisitRaw, 'manual' | 'withdrawn' | 'corrected'> & {
        manual: number;
        withdrawn: number;
        corrected: number;
      }
    >;
    return rows.map((r) => ({
      ...r,
      manual: r.manual === 1,
      withdrawn: r.withdrawn === 1,
      corrected: r.corrected === 1,
    }));
  }

  flag(req: NewFlag): FlagStoreResult {
    const { db } = this;
    return db.transaction((): FlagStoreResult => {
      if (req.requestId !== undefined) {
        const seen = db
          .prepare('SELECT * FROM visit_flags f WHERE actor = ? AND request_id = ?')
          .get(req.actor, req.requestId) as FlagRowRaw | undefined;
        if (seen) return { ok: true, created: false, flag: seen };
      }
      let visit: { reader_id: string; visit_id: string; client_ref: string | null } | undefined;
      if (req.visitId !== undefined) {
        const rows = db
          .prepare(
            `SELECT reader_id, visit_id, client_ref FROM visits WHERE visit_id = ? AND staff_ref = ?
               AND (? IS NULL OR reader_id = ?)`,
          )
          .all(req.visitId, req.staffRef, req.readerId ?? null, req.readerId ?? null) as NonNullable<
          typeof visit
        >[];
        if (rows.length === 0) return { ok: false, status: 404, error: 'no such visit of yours' };
        if (rows.length > 1) return { ok: false, status: 409, error: 'send "readerId" to say which visit' };
        visit = rows[0];
      } else if (req.date === undefined) {
        return {
          ok: false,
          status: 400,
          error: 'send "visitId" (a visit of yours) or "date" (a missing visit)',
        };
      }
      const now = req.nowMs;
      const id = Number(
        db
          .prepare(
            `INSERT INTO visit_flags (staff_ref, actor, reader_id, visit_id, client_ref, date, message, request_id,
               created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            req.staffRef,
            req.actor,
            visit?.reader_id ?? null,
            visit?.visit_id ?? null,
            visit?.client_ref ?? null,
            visit ? null : (req.date ?? null),
            req.message,
            req.requestId ?? null,
            now,
          ).lastInsertRowid,
      );
      const flag = db.prepare('SELECT * FROM visit_flags WHERE flag_id = ?').get(id) as FlagRowRaw;
      this.d.appendAudit({
        atMs: now,
        actor: req.actor,
        action: 'flag.create',
        target: visit ? `visit:${visit.reader_id}/${visit.visit_id}` : `staff:${req.staffRef}/${req.date}`,
        before: null,
        after: flagEntry(flag),
        reason: req.message,
      });
      return { ok: true, created: true, flag };
    })();
  }

  ownFlags(staffRef: string, limit = 200): FlagRowRaw[] {
    return this.db
      .prepare('SELECT * FROM visit_flags f WHERE staff_ref = ? ORDER BY flag_id DESC LIMIT ?')
      .all(staffRef, limit) as FlagRowRaw[];
  }

  list(scope: FlagScope | null, q: { all: boolean; limit: number }): FlagRowRaw[] {
    return this.db
      .prepare(
        `SELECT * FROM visit_flags f WHERE (@all = 1 OR f.resolved_at_ms IS NULL)
           ${scope === null ? '' : `AND ${IN_SCOPE}`}
         ORDER BY f.flag_id DESC LIMIT @limit`,
      )
      .all({
        all: q.all ? 1 : 0,
        limit: q.limit,
        ...(scope === null ? {} : { areas: JSON.stringify(scope.areas), provider: scope.provider }),
      }) as FlagRowRaw[];
  }

  resolve(
    scope: FlagScope | null,
    flagId: number,
    actor: string,
    resolution: string,
    note: string | null,
    nowMs: number,
  ): FlagStoreResult {
    const { db } = this;
    return db.transaction((): FlagStoreResult => {
      const row = db
        .prepare(
          `SELECT * FROM visit_flags f WHERE f.flag_id = @flagId ${scope === null ? '' : `AND ${IN_SCOPE}`}`,
        )
        .get({
          flagId,
          ...(scope === null ? {} : { areas: JSON.stringify(scope.areas), provider: scope.provider }),
        }) as FlagRowRaw | undefined;
      if (!row) return { ok: false, status: 404, error: 'no such flag in your areas' };
      if (row.resolved_at_ms !== null) {
        return { ok: false, status: 409, error: `the flag was resolved already by ${row.resolved_by}` };
      }
      db.prepare(
        `UPDATE visit_flags SET resolved_by = ?, resolved_at_ms = ?, resolution = ?, resolution_note = ?
           WHERE flag_id = ?`,
      ).run(actor, nowMs, resolution, note, flagId);
      const flag = db.prepare('SELECT * FROM visit_flags WHERE flag_id = ?').get(flagId) as FlagRowRaw;
      this.d.appendAudit({
        atMs: nowMs,
        actor,
        action: 'flag.resolve',
        target: `flag:${flagId}`,
        before: flagEntry(row),
        after: flagEntry(flag),
        reason: note ? `${resolution}: ${note}` : resolution,
      });
      return { ok: true, created: true, flag };
    })();
  }
}

/** The corrections' three SQLite ports over one file (the composition root hands them to corrections/service.ts). */
export function sqliteCorrectionPorts(db: Db, d: SqliteCorrectionDeps) {
  return {
    store: new SqliteCorrectionStore(db, d),
    locks: new SqlitePeriodLockStore(db, d),
    flags: new SqliteFlagStore(db, d),
  };
}
