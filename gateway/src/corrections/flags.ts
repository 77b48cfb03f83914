import type { NewAuditEntry } from '../audit/store.js';
import type { DataScope } from '../auth/scope.js';
import type { Db } from '../store/sqlite/db.js';

/**
 * Care staff's own registrations (a record they can check, not surveillance) and their flags: a staff
 * member tells the coordinator that one of their visits is wrong, or that a visit is missing. The
 * coordinator sees the flags of their areas, acts with the corrections (correct, add, withdraw) and
 * marks the flag resolved; the staff member sees what became of it. Flags are audited.
 */
export interface OwnVisit {
  readerId: string;
  visitId: string;
  clientRef: string | null;
  state: 'open' | 'closed';
  startedAtMs: number | null;
  endedAtMs: number | null;
  /** Added by hand by a coordinator (no reader recorded it). */
  manual: boolean;
  /** Marked as a mistake: does not count. */
  withdrawn: boolean;
  /** Times corrected by a coordinator. */
  corrected: boolean;
}

export const FLAG_RESOLUTIONS = ['corrected', 'added', 'withdrawn', 'no-change'] as const;
export type FlagResolution = (typeof FLAG_RESOLUTIONS)[number];

export interface Flag {
  flagId: number;
  staffRef: string;
  readerId: string | null;
  visitId: string | null;
  clientRef: string | null;
  /** The day of a missing visit (YYYY-MM-DD), when the flag is about no recorded visit. */
  date: string | null;
  message: string;
  createdAtMs: number;
  resolvedBy: string | null;
  resolvedAtMs: number | null;
  resolution: FlagResolution | null;
  resolutionNote: string | null;
}

interface FlagRow {
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
  resolution: FlagResolution | null;
  resolution_note: string | null;
}

const toFlag = (r: FlagRow): Flag => ({
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

/** Flags in a scope: by the visit's client when there is one, else by the staff member's area. */
const IN_SCOPE = `(
  (f.client_ref IS NOT NULL AND f.client_ref IN (SELECT client_ref FROM care_clients
      WHERE area_id IN (SELECT value FROM json_each(@areas))
        AND (@provider IS NULL OR json_extract(json, '$.providerId') = @provider)))
  OR (f.client_ref IS NULL AND f.staff_ref IN (SELECT staff_ref FROM care_staff
      WHERE area_id IN (SELECT value FROM json_each(@areas)))))`;

export type FlagResult =
  { ok: true; created: boolean; flag: Flag } | { ok: false; status: 400 | 404 | 409; error: string };

export class StaffFlags {
  constructor(
    private readonly d: { db: Db; now: () => number; appendAudit: (e: NewAuditEntry) => unknown },
  ) {}

  /** The staff member's own visits that started (or, without a start, ended) in [fromMs, toMs), oldest first. */
  ownVisits(staffRef: string, fromMs: number, toMs: number, limit: number): OwnVisit[] {
    const rows = this.d.db
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
      .all({ staffRef, fromMs, toMs, limit }) as {
      reader_id: string;
      visit_id: string;
      client_ref: string | null;
      state: 'open' | 'closed';
      started_at_ms: number | null;
      ended_at_ms: number | null;
      manual: number;
      withdrawn: number;
      corrected: number;
    }[];
    return rows.map((r) => ({
      readerId: r.reader_id,
      visitId: r.visit_id,
      clientRef: r.client_ref,
      state: r.state,
      startedAtMs: r.started_at_ms,
      endedAtMs: r.ended_at_ms,
      manual: r.manual === 1,
      withdrawn: r.withdrawn === 1,
      corrected: r.corrected === 1,
    }));
  }

  /**
   * A staff member flags one of their own visits (visitId) or a missing one (date). Another staff
   * member's visit answers 404 like a visit that does not exist. A resent requestId returns the first flag.
   */
  flag(req: {
    staffRef: string;
    actor: string;
    visitId?: string;
    readerId?: string;
    date?: string;
    message: string;
    requestId?: string;
  }): FlagResult {
    const { db } = this.d;
    return db.transaction((): FlagResult => {
      if (req.requestId !== undefined) {
        const seen = db
          .prepare('SELECT * FROM visit_flags f WHERE actor = ? AND request_id = ?')
          .get(req.actor, req.requestId) as FlagRow | undefined;
        if (seen) return { ok: true, created: false, flag: toFlag(seen) };
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
      const now = this.d.now();
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
      const flag = toFlag(db.prepare('SELECT * FROM visit_flags WHERE flag_id = ?').get(id) as FlagRow);
      this.d.appendAudit({
        atMs: now,
        actor: req.actor,
        action: 'flag.create',
        target: visit ? `visit:${visit.reader_id}/${visit.visit_id}` : `staff:${req.staffRef}/${req.date}`,
        before: null,
        after: flag,
        reason: req.message,
      });
      return { ok: true, created: true, flag };
    })();
  }

  /** The staff member's own flags, newest first. */
  ownFlags(staffRef: string, limit = 200): Flag[] {
    return (
      this.d.db
        .prepare('SELECT * FROM visit_flags f WHERE staff_ref = ? ORDER BY flag_id DESC LIMIT ?')
        .all(staffRef, limit) as FlagRow[]
    ).map(toFlag);
  }

  /** Flags in the scope (null: all), open ones only unless `all`, newest first. */
  list(scope: DataScope | null, q: { all: boolean; limit: number }): Flag[] {
    const rows = this.d.db
      .prepare(
        `SELECT * FROM visit_flags f WHERE (@all = 1 OR f.resolved_at_ms IS NULL)
           ${scope === null ? '' : `AND ${IN_SCOPE}`}
         ORDER BY f.flag_id DESC LIMIT @limit`,
      )
      .all({
        all: q.all ? 1 : 0,
        limit: q.limit,
        ...(scope === null ? {} : { areas: JSON.stringify(scope.areas), provider: scope.provider }),
      }) as FlagRow[];
    return rows.map(toFlag);
  }

  /** A coordinator marks a flag handled, saying what was done. A flag outside the scope answers 404. */
  resolve(
    scope: DataScope | null,
    flagId: number,
    actor: string,
    resolution: FlagResolution,
    note: string | null,
  ): FlagResult {
    const { db } = this.d;
    return db.transaction((): FlagResult => {
      const row = db
        .prepare(
          `SELECT * FROM visit_flags f WHERE f.flag_id = @flagId ${scope === null ? '' : `AND ${IN_SCOPE}`}`,
        )
        .get({
          flagId,
          ...(scope === null ? {} : { areas: JSON.stringify(scope.areas), provider: scope.provider }),
        }) as FlagRow | undefined;
      if (!row) return { ok: false, status: 404, error: 'no such flag in your areas' };
      if (row.resolved_at_ms !== null) {
        return { ok: false, status: 409, error: `the flag was resolved already by ${row.resolved_by}` };
      }
      const now = this.d.now();
      db.prepare(
        `UPDATE visit_flags SET resolved_by = ?, resolved_at_ms = ?, resolution = ?, resolution_note = ?
           WHERE flag_id = ?`,
      ).run(actor, now, resolution, note, flagId);
      const flag = toFlag(db.prepare('SELECT * FROM visit_flags WHERE flag_id = ?').get(flagId) as FlagRow);
      this.d.appendAudit({
        atMs: now,
        actor,
        action: 'flag.resolve',
        target: `flag:${flagId}`,
        before: toFlag(row),
        after: flag,
        reason: note ? `${resolution}: ${note}` : resolution,
      });
      return { ok: true, created: true, flag };
    })();
  }
}
