/** SQLite adapter of the care plan's port (store/care.ts). Each method is one synchronous transaction. */
import type { VisitEvent } from '../../../../protocol/index.js';
import type { Db } from './db.js';
import { statementCache } from './stmt-cache.js';
import { writeWhenFree } from './write-when-free.js';
import {
  type PlanForMatch,
  type PlanMatch,
  executedKey,
  type Alert,
  type AlertKind,
  type Area,
  type Client,
  type ExecutedVisit,
  type MissedReasonCode,
  type Provider,
  type ServiceCode,
  type Staff,
  type Team,
} from '../care-model.js';
import type { AlertChange, CareStore, RematchInput, RematchOutput, VisitChangeCursor } from '../care.js';
import {
  alertClearedEvent,
  alertRaisedEvent,
  toAlert,
  toExecuted,
  toMatch,
  toPlan,
  PlanConflict,
  planVersionOf,
  VISIT_COLS,
  type AlertRow,
  type MatchRow,
  type PlanRow,
  type VisitRowRaw,
} from '../care-rows.js';

export { alertKey } from '../care-rows.js';

export interface SqliteCareStoreOptions {
  db: Db;
  /** Queues a webhook event in the gateway's outbox, inside the caller's transaction (idempotent by key). */
  enqueue?: (event: VisitEvent, nowMs: number) => void;
}

const ok = <T>(v: T): Promise<T> => Promise.resolve(v);

type ReplacePlanInput = Parameters<CareStore['replacePlan']>[0];
const json = <T>(rows: { json: string }[]): T[] => rows.map((r) => JSON.parse(r.json) as T);

export function createSqliteCareStore(opts: SqliteCareStoreOptions): CareStore {
  const { db } = opts;
  const q = statementCache(db);
  // the care tick's writes wait for the write lock off the event loop (write-when-free.ts)
  const tx = <T>(fn: () => T): Promise<T> => writeWhenFree(db, fn);
  const reasonsOf = (ids: string[]): Map<string, MissedReasonCode> => {
    const m = new Map<string, MissedReasonCode>();
    const s = q('SELECT reason_code FROM care_reasons WHERE planned_visit_id = ?');
    for (const id of ids) {
      const r = s.get(id) as { reason_code: MissedReasonCode } | undefined;
      if (r) m.set(id, r.reason_code);
    }
    return m;
  };
  /** The reasons set on the client's active planned visits in the range: one query instead of one per plan. */
  const reasonsOfClient = (
    clientRef: string,
    range: { fromMs: number; toMs: number },
  ): Map<string, MissedReasonCode> => {
    const rows = q(
      `SELECT r.planned_visit_id, r.reason_code FROM care_reasons r JOIN care_planned_visits p
         ON p.planned_visit_id = r.planned_visit_id AND p.active = 1
         WHERE p.client_ref = ? AND p.start_ms >= ? AND p.start_ms < ?`,
    ).all(clientRef, range.fromMs, range.toMs) as {
      planned_visit_id: string;
      reason_code: MissedReasonCode;
    }[];
    return new Map(rows.map((r) => [r.planned_visit_id, r.reason_code]));
  };
  const activePlansSync = (w: {
    fromMs: number;
    toMs: number;
    areaId?: string;
    clientRefs?: string[];
  }): PlanForMatch[] => {
    if (w.clientRefs) {
      const s = q(
        `SELECT * FROM care_planned_visits WHERE active = 1 AND client_ref = ? AND start_ms >= ? AND start_ms < ?
           ORDER BY start_ms, planned_visit_id`,
      );
      return w.clientRefs.flatMap((c) => (s.all(c, w.fromMs, w.toMs) as PlanRow[]).map(toPlan));
    }
    const rows = q(
      `SELECT * FROM care_planned_visits WHERE active = 1 AND start_ms >= ? AND start_ms < ?
         AND (? IS NULL OR area_id = ?) ORDER BY start_ms, planned_visit_id`,
    ).all(w.fromMs, w.toMs, w.areaId ?? null, w.areaId ?? null) as PlanRow[];
    return rows.map(toPlan);
  };
  /**
   * Leaves out visits withdrawn as a mistake (a `withdrawn` row in visit_corrections, gateway/src/corrections):
   * they match no plan. The corrections tables are applied after the care tables, so the check is made
   * until they exist.
   */
  let withdrawals = false;
  const notWithdrawn = (): string => {
    withdrawals ||=
      q("SELECT 1 FROM pragma_table_info('visit_corrections') WHERE name = 'kind'").get() !== undefined;
    return withdrawals
      ? `AND NOT EXISTS (SELECT 1 FROM visit_corrections wc WHERE wc.kind = 'withdrawn'
           AND wc.reader_id = v.reader_id AND wc.visit_id = v.visit_id)`
      : '';
  };
  const visitsSync = (fromMs: number, toMs: number, clientRefs?: readonly string[]): ExecutedVisit[] => {
    if (clientRefs) {
      const s = q(
        `SELECT ${VISIT_COLS} FROM visits v WHERE v.client_ref = ? AND (
           (v.started_at_ms >= ? AND v.started_at_ms < ?) OR
           (v.started_at_ms IS NULL AND v.ended_at_ms >= ? AND v.ended_at_ms < ?)) ${notWithdrawn()}`,
      );
      return clientRefs.flatMap((c) =>
        (s.all(c, fromMs, toMs, fromMs, toMs) as VisitRowRaw[]).map(toExecuted),
      );
    }
    return (
      q(
        `SELECT ${VISIT_COLS} FROM visits v WHERE COALESCE(v.started_at_ms, v.ended_at_ms) >= ?
           AND COALESCE(v.started_at_ms, v.ended_at_ms) < ? ${notWithdrawn()}`,
      ).all(fromMs, toMs) as VisitRowRaw[]
    ).map(toExecuted);
  };
  const matchesSync = (w: {
    fromMs: number;
    toMs: number;
    areaId?: string;
    clientRef?: string;
  }): PlanMatch[] =>
    (
      q(
        `SELECT m.*, r.reason_code FROM care_plan_matches m LEFT JOIN care_reasons r USING (planned_visit_id)
           WHERE m.start_ms >= ? AND m.start_ms < ? AND (? IS NULL OR m.area_id = ?) AND (? IS NULL OR m.client_ref = ?)
           ORDER BY m.start_ms, m.planned_visit_id`,
      ).all(
        w.fromMs,
        w.toMs,
        w.areaId ?? null,
        w.areaId ?? null,
        w.clientRef ?? null,
        w.clientRef ?? null,
      ) as MatchRow[]
    ).map(toMatch);

  const rematchSync = (
    clientRef: string,
    range: { fromMs: number; toMs: number },
    compute: (input: RematchInput) => RematchOutput,
  ): RematchOutput => {
    const plans = activePlansSync({ fromMs: range.fromMs, toMs: range.toMs, clientRefs: [clientRef] });
    const visits = visitsSync(range.fromMs, range.toMs, [clientRef]);
    const out: RematchOutput = compute({
      plans,
      visits,
      reasons: reasonsOfClient(clientRef, range),
    });
    q('DELETE FROM care_plan_matches WHERE client_ref = ? AND start_ms >= ? AND start_ms < ?').run(
      clientRef,
      range.fromMs,
      range.toMs,
    );
    q('DELETE FROM care_visit_matches WHERE client_ref = ? AND time_ms >= ? AND time_ms < ?').run(
      clientRef,
      range.fromMs,
      range.toMs,
    );
    const pm = q(
      `INSERT OR REPLACE INTO care_plan_matches (planned_visit_id, area_id, client_ref, start_ms, local_date, staff_count,
             window_end_ms, executed_keys_json, late_minutes, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const m of out.plans) {
      pm.run(
        m.plannedVisitId,
        m.areaId,
        m.clientRef,
        m.startMs,
        m.localDate,
        m.staffCount,
        m.windowEndMs,
        JSON.stringify(m.executedKeys),
        m.lateMinutes,
        m.status,
      );
    }
    const vm = q(
      `INSERT OR REPLACE INTO care_visit_matches (executed_key, client_ref, time_ms, local_date, planned_visit_id)
             VALUES (?, ?, ?, ?, ?)`,
    );
    for (const v of out.visits) vm.run(v.key, v.clientRef, v.timeMs, v.localDate, v.plannedVisitId);
    return out;
  };

  const replacePlanSync = (input: ReplacePlanInput) => {
    const superseded = (
      q(
        `SELECT DISTINCT plan_version_id FROM care_planned_visits
           WHERE active = 1 AND area_id = ? AND local_date BETWEEN ? AND ? ORDER BY plan_version_id`,
      ).all(input.areaId, input.fromDate, input.toDate) as { plan_version_id: number }[]
    ).map((r) => r.plan_version_id);
    const replaced = q(
      `UPDATE care_planned_visits SET active = 0 WHERE active = 1 AND area_id = ? AND local_date BETWEEN ? AND ?`,
    ).run(input.areaId, input.fromDate, input.toDate).changes;
    const ins = q(
      `INSERT INTO care_plan_versions (area_id, from_date, to_date, imported_at_ms, imported_by, source, visit_count, supersedes_json)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      input.areaId,
      input.fromDate,
      input.toDate,
      input.nowMs,
      input.importedBy,
      input.source,
      input.visits.length,
      JSON.stringify(superseded),
    );
    const versionId = Number(ins.lastInsertRowid);
    const put = q(
      `INSERT OR IGNORE INTO care_planned_visits (plan_version_id, planned_visit_id, area_id, client_ref, local_date, local_start,
         start_ms, planned_minutes, service_codes_json, staff_count, staff_refs_json, active)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
    );
    const ignored: string[] = [];
    for (const v of input.visits) {
      const r = put.run(
        versionId,
        v.plannedVisitId,
        input.areaId,
        v.clientRef,
        v.localDate,
        v.localStart,
        v.startMs,
        v.plannedMinutes,
        JSON.stringify(v.serviceCodes),
        v.staffCount,
        JSON.stringify(v.plannedStaffRefs),
      );
      if (r.changes === 0) ignored.push(v.plannedVisitId);
    }
    // An id still active elsewhere (another area, or outside this range) would be ambiguous: the partial
    // unique index refused its row, so name where it lives and roll the whole import back.
    if (ignored.length) {
      const where = q(
        `SELECT area_id, local_date FROM care_planned_visits WHERE active = 1 AND planned_visit_id = ?
           AND plan_version_id <> ?`,
      );
      const conflicts = ignored.map((id) => {
        const c = where.get(id, versionId) as { area_id: string; local_date: string } | undefined;
        if (!c) throw new Error(`planned visit ${id} could not be stored (duplicate within the import?)`);
        return { plannedVisitId: id, areaId: c.area_id, localDate: c.local_date };
      });
      throw new PlanConflict(conflicts);
    }
    const version = planVersionOf(input, versionId, superseded);
    return { ok: true as const, version, replaced };
  };

  const upsert = (table: string, key: string, extra: string[]) => {
    const cols = [key, ...extra, 'json', 'updated_at_ms'];
    return q(
      `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})
         ON CONFLICT (${key}) DO UPDATE SET ${cols
           .slice(1)
           .map((c) => `${c} = excluded.${c}`)
           .join(', ')}`,
    );
  };

  return {
    upsertRegistry: (b, nowMs) =>
      tx(() => {
        for (const p of b.providers ?? [])
          upsert('care_providers', 'provider_id', []).run(p.providerId, JSON.stringify(p), nowMs);
        for (const a of b.areas ?? [])
          upsert('care_areas', 'area_id', []).run(a.areaId, JSON.stringify(a), nowMs);
        for (const t of b.teams ?? [])
          upsert('care_teams', 'team_id', ['area_id']).run(t.teamId, t.areaId, JSON.stringify(t), nowMs);
        for (const c of b.clients ?? [])
          upsert('care_clients', 'client_ref', ['area_id']).run(
            c.clientRef,
            c.areaId,
            JSON.stringify(c),
            nowMs,
          );
        for (const s of b.staff ?? [])
          upsert('care_staff', 'staff_ref', ['area_id']).run(s.staffRef, s.areaId, JSON.stringify(s), nowMs);
        for (const s of b.serviceCodes ?? [])
          upsert('care_service_codes', 'code', []).run(s.code, JSON.stringify(s), nowMs);
      }),
    listAreas: () =>
      ok(json<Area>(q('SELECT json FROM care_areas ORDER BY area_id').all() as { json: string }[])),
    listProviders: () =>
      ok(
        json<Provider>(q('SELECT json FROM care_providers ORDER BY provider_id').all() as { json: string }[]),
      ),
    listTeams: (areaId) =>
      ok(
        json<Team>(
          q('SELECT json FROM care_teams WHERE (? IS NULL OR area_id = ?) ORDER BY team_id').all(
            areaId ?? null,
            areaId ?? null,
          ) as {
            json: string;
          }[],
        ),
      ),
    listClients: (areaId) =>
      ok(
        json<Client>(
          q('SELECT json FROM care_clients WHERE (? IS NULL OR area_id = ?) ORDER BY client_ref').all(
            areaId ?? null,
            areaId ?? null,
          ) as { json: string }[],
        ),
      ),
    listStaff: (areaId) =>
      ok(
        json<Staff>(
          q('SELECT json FROM care_staff WHERE (? IS NULL OR area_id = ?) ORDER BY staff_ref').all(
            areaId ?? null,
            areaId ?? null,
          ) as {
            json: string;
          }[],
        ),
      ),
    listServiceCodes: () =>
      ok(
        json<ServiceCode>(q('SELECT json FROM care_service_codes ORDER BY code').all() as { json: string }[]),
      ),

    replacePlan: (input) => {
      try {
        return ok(db.transaction(() => replacePlanSync(input))());
      } catch (e) {
        if (e instanceof PlanConflict) return ok({ ok: false as const, conflicts: e.conflicts });
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    },

    planVersions: (areaId) =>
      ok(
        (
          q('SELECT * FROM care_plan_versions WHERE (? IS NULL OR area_id = ?) ORDER BY plan_version_id').all(
            areaId ?? null,
            areaId ?? null,
          ) as Array<{
            plan_version_id: number;
            area_id: string;
            from_date: string;
            to_date: string;
            imported_at_ms: number;
            imported_by: string;
            source: string;
            visit_count: number;
            supersedes_json: string;
          }>
        ).map((r) => ({
          planVersionId: r.plan_version_id,
          areaId: r.area_id,
          fromDate: r.from_date,
          toDate: r.to_date,
          importedAtMs: r.imported_at_ms,
          importedBy: r.imported_by,
          source: r.source,
          visitCount: r.visit_count,
          supersedes: JSON.parse(r.supersedes_json) as number[],
        })),
      ),
    activePlans: (w) => ok(activePlansSync(w)),
    plannedVisit: (id) => {
      const r = q('SELECT * FROM care_planned_visits WHERE active = 1 AND planned_visit_id = ?').get(id) as
        PlanRow | undefined;
      return ok(r ? toPlan(r) : null);
    },
    plansOfVersion: (id) =>
      ok(
        (
          q(
            'SELECT * FROM care_planned_visits WHERE plan_version_id = ? ORDER BY start_ms, planned_visit_id',
          ).all(id) as PlanRow[]
        ).map(toPlan),
      ),
    clientsWithPlans: (w) =>
      ok(
        (
          q(
            `SELECT DISTINCT client_ref FROM care_planned_visits WHERE active = 1 AND start_ms >= ? AND start_ms < ?
               AND (? IS NULL OR area_id = ?) ORDER BY client_ref`,
          ).all(w.fromMs, w.toMs, w.areaId ?? null, w.areaId ?? null) as { client_ref: string }[]
        ).map((r) => r.client_ref),
      ),

    setReason: (r, nowMs) =>
      tx(() => {
        const known = q('SELECT 1 FROM care_planned_visits WHERE planned_visit_id = ? LIMIT 1').get(
          r.plannedVisitId,
        );
        if (!known) return false;
        q(
          `INSERT INTO care_reasons (planned_visit_id, reason_code, note, set_by, set_at_ms) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (planned_visit_id) DO UPDATE SET reason_code = excluded.reason_code, note = excluded.note,
             set_by = excluded.set_by, set_at_ms = excluded.set_at_ms`,
        ).run(r.plannedVisitId, r.reasonCode, r.note, r.actor, nowMs);
        return true;
      }),

    executedBetween: (fromMs, toMs, clientRefs) => ok(visitsSync(fromMs, toMs, clientRefs)),

    rematch: (clientRef, range, compute) => tx(() => rematchSync(clientRef, range, compute)),
    rematchMany: (clientRefs, range, compute) =>
      tx(() => {
        for (const c of clientRefs) rematchSync(c, range, (input) => compute(c, input));
      }),
    matches: (w) =>
      ok(
        matchesSync(w).map((m) =>
          m.status === 'pending' && w.nowMs !== undefined && w.nowMs >= m.windowEndMs
            ? { ...m, status: 'missed' as const }
            : m,
        ),
      ),
    unplanned: (w) =>
      ok(
        (
          q(
            `SELECT executed_key, client_ref, time_ms, local_date, planned_visit_id FROM care_visit_matches
               WHERE planned_visit_id IS NULL AND time_ms >= ? AND time_ms < ? AND (? IS NULL OR client_ref = ?)
               ORDER BY time_ms, executed_key`,
          ).all(w.fromMs, w.toMs, w.clientRef ?? null, w.clientRef ?? null) as Array<{
            executed_key: string;
            client_ref: string;
            time_ms: number;
            local_date: string;
            planned_visit_id: string | null;
          }>
        ).map((r) => ({
          key: r.executed_key,
          clientRef: r.client_ref,
          timeMs: r.time_ms,
          localDate: r.local_date,
          plannedVisitId: r.planned_visit_id,
        })),
      ),

    changedVisits: (cursor, limit) => {
      const c = cursor ?? { updatedAtMs: -1, key: '' };
      const [reader, visit] = [c.key.slice(0, c.key.indexOf('/')), c.key.slice(c.key.indexOf('/') + 1)];
      const rows = q(
        `SELECT ${VISIT_COLS} FROM visits v WHERE (v.updated_at_ms, v.reader_id, v.visit_id) > (?, ?, ?)
           ORDER BY v.updated_at_ms, v.reader_id, v.visit_id LIMIT ?`,
      ).all(c.updatedAtMs, reader, visit, limit) as VisitRowRaw[];
      const visits = rows.map(toExecuted);
      const last = visits[visits.length - 1];
      return ok({
        visits,
        cursor: last ? { updatedAtMs: last.updatedAtMs, key: executedKey(last) } : cursor,
      });
    },
    previousMatchOf: (keys) => {
      const s = q('SELECT client_ref, time_ms FROM care_visit_matches WHERE executed_key = ?');
      const out: Array<{ key: string; clientRef: string; timeMs: number }> = [];
      for (const key of keys) {
        const r = s.get(key) as { client_ref: string; time_ms: number } | undefined;
        if (r) out.push({ key, clientRef: r.client_ref, timeMs: r.time_ms });
      }
      return ok(out);
    },
    getCursor: () => {
      const r = q(`SELECT value FROM care_meta WHERE key = 'visit-cursor'`).get() as
        { value: string } | undefined;
      return ok(r ? (JSON.parse(r.value) as VisitChangeCursor) : null);
    },
    setCursor: (c) =>
      tx(() => {
        q(`INSERT OR REPLACE INTO care_meta (key, value) VALUES ('visit-cursor', ?)`).run(JSON.stringify(c));
      }),

    alertTick: (range, decide) =>
      tx(() => {
        const plans = activePlansSync(range);
        const matches = new Map(matchesSync(range).map((m) => [m.plannedVisitId, m]));
        const open = (
          q(
            'SELECT * FROM care_alerts WHERE cleared_at_ms IS NULL ORDER BY raised_at_ms, planned_visit_id, kind',
          ).all() as AlertRow[]
        ).map(toAlert);
        // Open alerts of older plans stay in view until they clear (taps delivered days late).
        const activeById = q('SELECT * FROM care_planned_visits WHERE active = 1 AND planned_visit_id = ?');
        const matchById = q(
          `SELECT m.*, r.reason_code FROM care_plan_matches m LEFT JOIN care_reasons r USING (planned_visit_id)
             WHERE m.planned_visit_id = ?`,
        );
        const inRange = new Set(plans.map((p) => p.plannedVisitId));
        const goneOpen: Alert[] = [];
        for (const a of open) {
          if (inRange.has(a.plannedVisitId)) continue;
          const row = activeById.get(a.plannedVisitId) as PlanRow | undefined;
          if (!row) {
            goneOpen.push(a);
            continue;
          }
          inRange.add(a.plannedVisitId);
          plans.push(toPlan(row));
          const m = matchById.get(a.plannedVisitId) as MatchRow | undefined;
          if (m) matches.set(a.plannedVisitId, toMatch(m));
        }
        const reasons = reasonsOf([
          ...new Set([...plans.map((p) => p.plannedVisitId), ...open.map((a) => a.plannedVisitId)]),
        ]);
        const change: AlertChange = decide({ plans, matches, open, goneOpen, reasons });
        const startOf = new Map(plans.map((p) => [p.plannedVisitId, p.startMs]));
        const raise = q(
          `INSERT OR IGNORE INTO care_alerts (planned_visit_id, kind, area_id, client_ref, planned_start_ms, raised_at_ms)
             VALUES (?, ?, ?, ?, ?, ?)`,
        );
        const raised: Alert[] = [];
        for (const a of change.raise) {
          const start = startOf.get(a.plannedVisitId) ?? a.raisedAtMs;
          if (raise.run(a.plannedVisitId, a.kind, a.areaId, a.clientRef, start, a.raisedAtMs).changes === 0)
            continue;
          raised.push(a);
          opts.enqueue?.(alertRaisedEvent(a, start), a.raisedAtMs);
        }
        const clear = q(
          `UPDATE care_alerts SET cleared_at_ms = ?, cleared_by = ?, reason_code = ?
             WHERE planned_visit_id = ? AND kind = ? AND cleared_at_ms IS NULL RETURNING *`,
        );
        const cleared: AlertChange['clear'] = [];
        for (const c of change.clear) {
          const reason = c.reasonCode ?? reasons.get(c.plannedVisitId) ?? null;
          const row = clear.get(c.clearedAtMs, c.clearedBy, reason, c.plannedVisitId, c.kind) as
            AlertRow | undefined;
          if (!row) continue;
          cleared.push(c);
          const m = matches.get(c.plannedVisitId);
          const visitKey =
            c.clearedBy === 'visit-started' || c.clearedBy === 'second-staff'
              ? (m?.executedKeys.at(-1) ?? null)
              : null;
          opts.enqueue?.(alertClearedEvent(c, row, reason, visitKey), c.clearedAtMs);
        }
        return { raise: raised, clear: cleared };
      }),
    alerts: (w) =>
      ok(
        (
          q(
            `SELECT * FROM care_alerts WHERE (? = 0 OR cleared_at_ms IS NULL) AND (? IS NULL OR area_id = ?)
               ORDER BY raised_at_ms DESC, planned_visit_id, kind LIMIT ?`,
          ).all(w.open ? 1 : 0, w.areaId ?? null, w.areaId ?? null, w.limit ?? 500) as AlertRow[]
        ).map(toAlert),
      ),
    openAlertCounts: () => {
      const counts: Record<AlertKind, number> = { late: 0, missed: 0, understaffed: 0 };
      if (!db.open) return ok(counts);
      for (const r of q(
        'SELECT kind, COUNT(*) AS n FROM care_alerts WHERE cleared_at_ms IS NULL GROUP BY kind',
      ).all() as {
        kind: AlertKind;
        n: number;
      }[])
        counts[r.kind] = r.n;
      return ok(counts);
    },
  };
}
