/**
 * Visit corrections on PostgreSQL (store/corrections.ts): several gateway instances on one database.
 *
 * `run(work)` is one correction: ONE transaction that
 * - takes the corrections' advisory lock (so two instances never both withdraw one visit, or both pass
 *   the same request id's check), then the visit's readers' locks (the visits turn's, db.ts
 *   `lockReaders`) before it reads the visit, so a turn and a correction of the same reader never
 *   interleave;
 * - runs the correction rules (corrections/service.ts, synchronous) over a view answered from what it
 *   fetched; a read not fetched yet is recorded and answered with a neutral value, the reads are fetched
 *   and the rules run again from the start (writes of an incomplete run are dropped), as the visits turn
 *   does; the correction's id is taken from its sequence up front;
 * - writes the complete run's changes: the visit row, visit_audit, the correction, the audit log entry
 *   (under the audit log's own lock, so its order is commit order, store/postgres/audit.ts) and the outbox
 *   event, keyed `vt1:…:{correctionId}`: queued once, delivered by whichever instance claims it.
 *
 * Period locks and care staff's flags are small units of their own (`PgPeriodLockStore`, `PgFlagStore`).
 */
import { VisitEvent } from '../../../../protocol/index.js';
import {
  flagEntry,
  toPeriodLock,
  toStoredCorrection,
  type Async,
  type AsyncCorrectionStore,
  type CorrectionRowRaw,
  type CorrectionTx,
  type FlagRowRaw,
  type FlagScope,
  type FlagStore,
  type FlagStoreResult,
  type LockResult,
  type NewCorrection,
  type NewFlag,
  type OwnVisitRaw,
  type PeriodLock,
  type PeriodLockRaw,
  type PeriodLockStore,
  type StoredCorrection,
} from '../corrections.js';
import type { NewAuditEntry, VisitAuditRecord, VisitRow } from '../ports.js';
import { rawToVisit, type RawVisit } from '../rows.js';
import { AUDIT_INSERT, auditRows } from '../sqlite/audit.js';
import { inTransaction, lockReaders, type PgClient, type PgPool } from './db.js';
import { enqueueOn } from './outbox.js';

/** The corrections' advisory lock (two-int form). */
export const CORRECTIONS_LOCK = [74_721, 1] as const;

const MAX_ROUNDS = 8;
const numbered = (sql: string): string => {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
};

/** Appends an audit entry inside the caller's transaction, in commit order (as PgAuditStore.append). */
export async function appendAuditOn(c: PgClient, e: NewAuditEntry): Promise<void> {
  await c.query('LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE');
  await c.query(numbered(AUDIT_INSERT), auditRows.values(e));
}

const vk = (readerId: string, visitId: string) => `${readerId}\n${visitId}`;

type ReadKind = 'request' | 'withdrawal' | 'visit' | 'byId' | 'client' | 'staff' | 'overlap' | 'lock' | 'id';

interface Writes {
  visits: Map<string, VisitRow>;
  audits: VisitAuditRecord[];
  correction: (NewCorrection & { correctionId: number }) | null;
  auditLog: NewAuditEntry[];
  outbox: Array<{ e: VisitEvent; nowMs: number }>;
}

async function upsertVisit(c: PgClient, v: VisitRow): Promise<void> {
  await c.query(
    `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms,
         start_seq, ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq, updated_at_ms)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
       ON CONFLICT (reader_id, visit_id) DO UPDATE SET client_ref = excluded.client_ref,
         staff_ref = excluded.staff_ref, group_id = excluded.group_id, state = excluded.state,
         started_at_ms = excluded.started_at_ms, start_seq = excluded.start_seq,
         ended_at_ms = excluded.ended_at_ms, end_seq = excluded.end_seq, end_reason = excluded.end_reason,
         time_quality = excluded.time_quality, anomalies_json = excluded.anomalies_json,
         late_end_seq = excluded.late_end_seq, updated_at_ms = excluded.updated_at_ms`,
    [
      v.readerId,
      v.visitId,
      v.clientRef,
      v.cardRef,
      v.staffRef,
      v.groupId,
      v.state,
      v.startedAtMs,
      v.startSeq,
      v.endedAtMs,
      v.endSeq,
      v.endReason,
      v.timeQuality,
      JSON.stringify(v.anomalies),
      v.lateEndSeq,
      v.updatedAtMs,
    ],
  );
}

export class PgCorrectionStore implements AsyncCorrectionStore {
  /** Runs of the last correction (measurement, tests). */
  lastRuns = 0;
  constructor(private readonly pool: PgPool) {}

  /** One correction: the rules over the view, again until they ask for nothing new, then written. */
  run<T>(work: (tx: CorrectionTx) => T): Promise<T> {
    return inTransaction(this.pool, async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1, $2)', [...CORRECTIONS_LOCK]);
      const cache = new Map<string, unknown>();
      const key = (k: ReadKind, a: string) => `${k}\u0000${a}`;
      for (let round = 1; round <= MAX_ROUNDS; round++) {
        const missed = new Map<string, { kind: ReadKind; arg: string }>();
        const get = <V>(kind: ReadKind, arg: string, neutral: V): V => {
          const k = key(kind, arg);
          if (cache.has(k)) return cache.get(k) as V;
          missed.set(k, { kind, arg });
          return neutral;
        };
        const w: Writes = { visits: new Map(), audits: [], correction: null, auditLog: [], outbox: [] };
        const visitOf = (readerId: string, visitId: string): VisitRow | null =>
          w.visits.get(vk(readerId, visitId)) ?? get<VisitRow | null>('visit', vk(readerId, visitId), null);
        const tx: CorrectionTx = {
          byRequest: (actor, requestId) => get('request', `${actor}\n${requestId}`, null),
          withdrawal: (readerId, visitId) => get('withdrawal', vk(readerId, visitId), null),
          visit: visitOf,
          visitsById: (visitId) =>
            get<VisitRow[]>('byId', visitId, []).map((v) => w.visits.get(vk(v.readerId, v.visitId)) ?? v),
          clientExists: (clientRef) => get<string | null>('client', clientRef, null) !== null,
          staffExists: (staffRef) => get('staff', staffRef, false),
          overlapping: (q) =>
            get('overlap', JSON.stringify([q.clientRef, q.staffRef, q.fromMs, q.toMs]), null),
          areaOf: (clientRef) => get('client', clientRef, null),
          periodLock: (areaId, month) => get('lock', `${areaId}\n${month}`, null),
          upsert: (v) => void w.visits.set(vk(v.readerId, v.visitId), { ...v }),
          audit: (a) => void w.audits.push({ ...a }),
          insert: (n) => {
            const id = get<number>('id', '', 0);
            w.correction = { ...n, correctionId: id };
            return id;
          },
          appendAudit: (e) => void w.auditLog.push(e),
          enqueue: (e, nowMs) => {
            w.outbox.push({ e: VisitEvent.parse(e), nowMs });
            return true;
          },
        };
        let out: T | undefined;
        try {
          out = work(tx);
        } catch (err) {
          if (missed.size === 0) throw err;
        }
        if (missed.size === 0) {
          this.lastRuns = round;
          await this.write(c, w);
          return out as T;
        }
        for (const [k, m] of missed) cache.set(k, await this.fetch(c, m.kind, m.arg));
      }
      throw new Error(`correction still missing data after ${MAX_ROUNDS} runs`);
    });
  }

  private async fetch(c: PgClient, kind: ReadKind, arg: string): Promise<unknown> {
    const one = async <R extends object>(sql: string, params: unknown[]): Promise<R | undefined> =>
      (await c.query<R>(sql, params)).rows[0];
    switch (kind) {
      case 'request': {
        const [actor, requestId] = arg.split('\n') as [string, string];
        const r = await one<CorrectionRowRaw>(
          'SELECT * FROM visit_corrections WHERE actor = $1 AND request_id = $2',
          [actor, requestId],
        );
        return r ? toStoredCorrection(r) : null;
      }
      case 'withdrawal': {
        const [readerId, visitId] = arg.split('\n') as [string, string];
        const r = await one<CorrectionRowRaw>(
          `SELECT * FROM visit_corrections WHERE kind = 'withdrawn' AND reader_id = $1 AND visit_id = $2
             ORDER BY correction_id LIMIT 1`,
          [readerId, visitId],
        );
        return r ? toStoredCorrection(r) : null;
      }
      case 'visit': {
        const [readerId, visitId] = arg.split('\n') as [string, string];
        await lockReaders(c, [readerId]);
        const r = await one<RawVisit>('SELECT * FROM visits WHERE reader_id = $1 AND visit_id = $2', [
          readerId,
          visitId,
        ]);
        return r ? rawToVisit(r) : null;
      }
      case 'byId': {
        const readers = await c.query<{ reader_id: string }>(
          'SELECT DISTINCT reader_id FROM visits WHERE visit_id = $1',
          [arg],
        );
        await lockReaders(
          c,
          readers.rows.map((r) => r.reader_id),
        );
        const r = await c.query<RawVisit>(
          'SELECT * FROM visits WHERE visit_id = $1 ORDER BY reader_id COLLATE "C"',
          [arg],
        );
        return r.rows.map(rawToVisit);
      }
      case 'client':
        return (
          (await one<{ area_id: string }>('SELECT area_id FROM care_clients WHERE client_ref = $1', [arg]))
            ?.area_id ?? null
        );
      case 'staff':
        return (await one('SELECT 1 FROM care_staff WHERE staff_ref = $1', [arg])) !== undefined;
      case 'overlap': {
        const [clientRef, staffRef, fromMs, toMs] = JSON.parse(arg) as [string, string, number, number];
        const r = await one<{ reader_id: string; visit_id: string }>(
          `SELECT reader_id, visit_id FROM visits WHERE client_ref = $1 AND staff_ref = $2
             AND started_at_ms < $3 AND COALESCE(ended_at_ms, started_at_ms) > $4
             ORDER BY reader_id, visit_id LIMIT 1`,
          [clientRef, staffRef, toMs, fromMs],
        );
        return r ? { readerId: r.reader_id, visitId: r.visit_id } : null;
      }
      case 'lock': {
        const [areaId, month] = arg.split('\n') as [string, string];
        const r = await one<PeriodLockRaw>('SELECT * FROM period_locks WHERE area_id = $1 AND month = $2', [
          areaId,
          month,
        ]);
        return r ? toPeriodLock(r) : null;
      }
      case 'id':
        return (await one<{ id: number }>(
          `SELECT nextval(pg_get_serial_sequence('visit_corrections', 'correction_id')) AS id`,
          [],
        ))!.id;
    }
  }

  private async write(c: PgClient, w: Writes): Promise<void> {
    for (const v of w.visits.values()) await upsertVisit(c, v);
    for (const a of w.audits) {
      await c.query(
        `INSERT INTO visit_audit (reader_id, visit_id, action, actor, reason, at_ms) VALUES ($1, $2, $3, $4, $5, $6)`,
        [a.readerId, a.visitId, a.action, a.actor, a.reason, a.atMs],
      );
    }
    const n = w.correction;
    if (n) {
      await c.query(
        `INSERT INTO visit_corrections (correction_id, kind, reader_id, visit_id, reason_code, note, actor, request_id,
           at_ms, before_json, after_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [
          n.correctionId,
          n.kind,
          n.readerId,
          n.visitId,
          n.reasonCode,
          n.note,
          n.actor,
          n.requestId,
          n.atMs,
          JSON.stringify(n.before),
          JSON.stringify(n.after),
        ],
      );
    }
    for (const o of w.outbox) await enqueueOn(c, o.e, o.nowMs);
    for (const e of w.auditLog) await appendAuditOn(c, e);
  }

  /** The withdrawal of this visit, if it was withdrawn. */
  async withdrawal(readerId: string, visitId: string): Promise<StoredCorrection | null> {
    const r = await this.pool.query<CorrectionRowRaw>(
      `SELECT * FROM visit_corrections WHERE kind = 'withdrawn' AND reader_id = $1 AND visit_id = $2
         ORDER BY correction_id LIMIT 1`,
      [readerId, visitId],
    );
    return r.rows[0] ? toStoredCorrection(r.rows[0]) : null;
  }

  /** A visit id's corrections with their visits, oldest first. */
  async listOf(visitId: string): Promise<Array<{ correction: StoredCorrection; visit: VisitRow | null }>> {
    const r = await this.pool.query<CorrectionRowRaw & { v: RawVisit | null }>(
      `SELECT c.*, to_jsonb(v) AS v FROM visit_corrections c
         LEFT JOIN visits v ON v.reader_id = c.reader_id AND v.visit_id = c.visit_id
        WHERE c.visit_id = $1 ORDER BY c.correction_id`,
      [visitId],
    );
    return r.rows.map((x) => ({
      correction: toStoredCorrection(x),
      visit: x.v ? rawToVisit(x.v) : null,
    }));
  }
}

// --------------------------------------------------------------------------------------- period locks

export type PgLockResult = LockResult;

/** Month locks per area (corrections/periods.ts) on PostgreSQL: lock and unlock under the corrections' lock. */
export class PgPeriodLockStore implements Async<PeriodLockStore> {
  constructor(private readonly pool: PgPool) {}

  async get(areaId: string, month: string): Promise<PeriodLock | null> {
    const r = await this.pool.query<PeriodLockRaw>(
      'SELECT * FROM period_locks WHERE area_id = $1 AND month = $2',
      [areaId, month],
    );
    return r.rows[0] ? toPeriodLock(r.rows[0]) : null;
  }

  async areaOf(clientRef: string): Promise<string | null> {
    const r = await this.pool.query<{ area_id: string }>(
      'SELECT area_id FROM care_clients WHERE client_ref = $1',
      [clientRef],
    );
    return r.rows[0]?.area_id ?? null;
  }

  /** Locks of these areas (null: every area), newest month first. */
  async list(areas: readonly string[] | null): Promise<PeriodLock[]> {
    const r = await this.pool.query<PeriodLockRaw>(
      `SELECT * FROM period_locks WHERE $1::text[] IS NULL OR area_id = ANY($1::text[])
        ORDER BY month DESC, area_id COLLATE "C"`,
      [areas === null ? null : [...areas]],
    );
    return r.rows.map(toPeriodLock);
  }

  lock(
    areaId: string,
    month: string,
    actor: string,
    note: string | null,
    nowMs: number,
  ): Promise<PgLockResult> {
    return inTransaction(this.pool, async (c): Promise<PgLockResult> => {
      await c.query('SELECT pg_advisory_xact_lock($1, $2)', [...CORRECTIONS_LOCK]);
      const known = await c.query('SELECT 1 FROM care_areas WHERE area_id = $1', [areaId]);
      if (known.rowCount === 0) return { ok: false, status: 404, error: 'no such area' };
      const seen = await c.query<PeriodLockRaw>(
        'SELECT * FROM period_locks WHERE area_id = $1 AND month = $2',
        [areaId, month],
      );
      if (seen.rows[0]) {
        const l = toPeriodLock(seen.rows[0]);
        return {
          ok: false,
          status: 409,
          error: `${month} of area ${areaId} is already locked by ${l.lockedBy}`,
          lock: l,
        };
      }
      await c.query(
        'INSERT INTO period_locks (area_id, month, locked_by, locked_at_ms, note) VALUES ($1, $2, $3, $4, $5)',
        [areaId, month, actor, nowMs, note],
      );
      const lock: PeriodLock = { areaId, month, lockedBy: actor, lockedAtMs: nowMs, note };
      await appendAuditOn(c, {
        atMs: nowMs,
        actor,
        action: 'period.lock',
        target: `period:${areaId}/${month}`,
        before: null,
        after: lock,
        reason: note,
      });
      return { ok: true, lock };
    });
  }

  unlock(areaId: string, month: string, actor: string, reason: string, nowMs: number): Promise<PgLockResult> {
    return inTransaction(this.pool, async (c): Promise<PgLockResult> => {
      await c.query('SELECT pg_advisory_xact_lock($1, $2)', [...CORRECTIONS_LOCK]);
      const seen = await c.query<PeriodLockRaw>(
        'DELETE FROM period_locks WHERE area_id = $1 AND month = $2 RETURNING *',
        [areaId, month],
      );
      if (!seen.rows[0]) return { ok: false, status: 404, error: `${month} of area ${areaId} is not locked` };
      const lock = toPeriodLock(seen.rows[0]);
      await appendAuditOn(c, {
        atMs: nowMs,
        actor,
        action: 'period.unlock',
        target: `period:${areaId}/${month}`,
        before: lock,
        after: null,
        reason,
      });
      return { ok: true, lock };
    });
  }
}

// ----------------------------------------------------------------------------------------------- flags

export type { FlagScope, OwnVisitRaw };

/** Flags in a scope: by the visit's client when there is one, else by the staff member's area (as SQLite). */
const IN_SCOPE = (a: string, p: string) => `(
  (f.client_ref IS NOT NULL AND f.client_ref IN (SELECT client_ref FROM care_clients
      WHERE area_id = ANY(${a}::text[]) AND (${p}::text IS NULL OR (json::jsonb)->>'providerId' = ${p})))
  OR (f.client_ref IS NULL AND f.staff_ref IN (SELECT staff_ref FROM care_staff WHERE area_id = ANY(${a}::text[]))))`;

export type PgFlagResult = FlagStoreResult;

/** Care staff's own registrations and flags (corrections/flags.ts) on PostgreSQL. */
export class PgFlagStore implements Async<FlagStore> {
  constructor(private readonly pool: PgPool) {}

  async ownVisits(staffRef: string, fromMs: number, toMs: number, limit: number): Promise<OwnVisitRaw[]> {
    const ex = (kind: string) =>
      `EXISTS (SELECT 1 FROM visit_corrections c WHERE c.reader_id = v.reader_id AND c.visit_id = v.visit_id
         AND c.kind = '${kind}')`;
    const r = await this.pool.query<OwnVisitRaw>(
      `SELECT v.reader_id, v.visit_id, v.client_ref, v.state, v.started_at_ms, v.ended_at_ms,
         ${ex('added')} AS manual, ${ex('withdrawn')} AS withdrawn, ${ex('times')} AS corrected
       FROM visits v WHERE v.staff_ref = $1
         AND COALESCE(v.started_at_ms, v.ended_at_ms) >= $2 AND COALESCE(v.started_at_ms, v.ended_at_ms) < $3
       ORDER BY COALESCE(v.started_at_ms, v.ended_at_ms), v.reader_id COLLATE "C", v.visit_id COLLATE "C"
       LIMIT $4`,
      [staffRef, fromMs, toMs, limit],
    );
    return r.rows;
  }

  flag(req: NewFlag): Promise<PgFlagResult> {
    return inTransaction(this.pool, async (c): Promise<PgFlagResult> => {
      await c.query('SELECT pg_advisory_xact_lock($1, $2)', [...CORRECTIONS_LOCK]);
      if (req.requestId !== undefined) {
        const seen = await c.query<FlagRowRaw>(
          'SELECT * FROM visit_flags WHERE actor = $1 AND request_id = $2',
          [req.actor, req.requestId],
        );
        if (seen.rows[0]) return { ok: true, created: false, flag: seen.rows[0] };
      }
      let visit: { reader_id: string; visit_id: string; client_ref: string | null } | undefined;
      if (req.visitId !== undefined) {
        const rows = await c.query<NonNullable<typeof visit>>(
          `SELECT reader_id, visit_id, client_ref FROM visits WHERE visit_id = $1 AND staff_ref = $2
             AND ($3::text IS NULL OR reader_id = $3)`,
          [req.visitId, req.staffRef, req.readerId ?? null],
        );
        if (rows.rows.length === 0) return { ok: false, status: 404, error: 'no such visit of yours' };
        if (rows.rows.length > 1)
          return { ok: false, status: 409, error: 'send "readerId" to say which visit' };
        visit = rows.rows[0];
      } else if (req.date === undefined) {
        return {
          ok: false,
          status: 400,
          error: 'send "visitId" (a visit of yours) or "date" (a missing visit)',
        };
      }
      const r = await c.query<FlagRowRaw>(
        `INSERT INTO visit_flags (staff_ref, actor, reader_id, visit_id, client_ref, date, message, request_id,
           created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
        [
          req.staffRef,
          req.actor,
          visit?.reader_id ?? null,
          visit?.visit_id ?? null,
          visit?.client_ref ?? null,
          visit ? null : (req.date ?? null),
          req.message,
          req.requestId ?? null,
          req.nowMs,
        ],
      );
      const flag = r.rows[0]!;
      await appendAuditOn(c, {
        atMs: req.nowMs,
        actor: req.actor,
        action: 'flag.create',
        target: visit ? `visit:${visit.reader_id}/${visit.visit_id}` : `staff:${req.staffRef}/${req.date}`,
        before: null,
        after: flagEntry(flag),
        reason: req.message,
      });
      return { ok: true, created: true, flag };
    });
  }

  async ownFlags(staffRef: string, limit = 200): Promise<FlagRowRaw[]> {
    return (
      await this.pool.query<FlagRowRaw>(
        'SELECT * FROM visit_flags f WHERE staff_ref = $1 ORDER BY flag_id DESC LIMIT $2',
        [staffRef, limit],
      )
    ).rows;
  }

  async list(scope: FlagScope | null, q: { all: boolean; limit: number }): Promise<FlagRowRaw[]> {
    const r = await this.pool.query<FlagRowRaw>(
      `SELECT * FROM visit_flags f WHERE ($1 OR f.resolved_at_ms IS NULL)
         ${scope === null ? '' : `AND ${IN_SCOPE('$3', '$4')}`}
       ORDER BY f.flag_id DESC LIMIT $2`,
      scope === null ? [q.all, q.limit] : [q.all, q.limit, [...scope.areas], scope.provider],
    );
    return r.rows;
  }

  resolve(
    scope: FlagScope | null,
    flagId: number,
    actor: string,
    resolution: string,
    note: string | null,
    nowMs: number,
  ): Promise<PgFlagResult> {
    return inTransaction(this.pool, async (c): Promise<PgFlagResult> => {
      await c.query('SELECT pg_advisory_xact_lock($1, $2)', [...CORRECTIONS_LOCK]);
      const row = (
        await c.query<FlagRowRaw>(
          `SELECT * FROM visit_flags f WHERE f.flag_id = $1 ${scope === null ? '' : `AND ${IN_SCOPE('$2', '$3')}`}`,
          scope === null ? [flagId] : [flagId, [...scope.areas], scope.provider],
        )
      ).rows[0];
      if (!row) return { ok: false, status: 404, error: 'no such flag in your areas' };
      if (row.resolved_at_ms !== null) {
        return { ok: false, status: 409, error: `the flag was resolved already by ${row.resolved_by}` };
      }
      const flag = (
        await c.query<FlagRowRaw>(
          `UPDATE visit_flags SET resolved_by = $1, resolved_at_ms = $2, resolution = $3, resolution_note = $4
             WHERE flag_id = $5 RETURNING *`,
          [actor, nowMs, resolution, note, flagId],
        )
      ).rows[0]!;
      await appendAuditOn(c, {
        atMs: nowMs,
        actor,
        action: 'flag.resolve',
        target: `flag:${flagId}`,
        before: flagEntry(row),
        after: flagEntry(flag),
        reason: note ? `${resolution}: ${note}` : resolution,
      });
      return { ok: true, created: true, flag };
    });
  }
}

/** A flag as the audit log records it (the same fields as corrections/flags.ts `Flag`). */
export { flagEntry };
