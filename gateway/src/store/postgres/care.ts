import type {
  AlertKind,
  Area,
  Client,
  MissedReasonCode,
  PlanVersion,
  Provider,
  ServiceCode,
  Staff,
  Team,
} from '../care-model.js';
import {
  executedKey,
  type Alert,
  type ExecutedVisit,
  type PlanForMatch,
  type PlanMatch,
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
import type {
  AnomalyListRow as ScopedAnomalyRow,
  ScopedUnknownCard as ScopedCardRow,
  VisitRow,
} from '../ports.js';
import { rawToVisit, type RawVisit } from '../rows.js';
import { inTransaction, type PgClient, type PgPool } from './db.js';
import { enqueueOn } from './outbox.js';

/**
 * The care plan's port on PostgreSQL, for several gateway instances on one database.
 *
 * Every write unit (registry upsert, plan import, reason, rematch, cursor, alert tick) is one
 * transaction that first takes ONE transaction-level advisory lock for the care plan (CARE_LOCK): care
 * writes are few and short (an import, a rematch of a client's days, one alert tick), so serialising them
 * across instances costs little and no two instances rematch a client or evaluate alerts at the same time.
 * An alert tick raises with `INSERT … ON CONFLICT (planned_visit_id, kind) DO NOTHING` and queues its
 * webhook event only when the row is new, in the same transaction (outbox key `pa1:<plan>:<kind>:raised`,
 * also `ON CONFLICT DO NOTHING`): a (plan, kind) is raised at most once, even when two instances tick
 * at once (a lease holder that stalled past its lease overlapping the next) or a holder is killed after
 * its commit and the next one evaluates the same plans.
 */
export const CARE_LOCK = [74_720, 1] as const;

type Q = Pick<PgClient, 'query'>;

const json = <T>(rows: { json: string }[]): T[] => rows.map((r) => JSON.parse(r.json) as T);

interface PlanConflictRow {
  planned_visit_id: string;
  area_id: string;
  local_date: string;
}

export class PgCareStore implements CareStore {
  private withdrawals = false;

  constructor(private readonly pool: PgPool) {}

  /** One write unit: a transaction under the care plan's lock. */
  private write<T>(fn: (c: PgClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1, $2)', [...CARE_LOCK]);
      return fn(c);
    });
  }

  /** Leaves out visits withdrawn as a mistake once the corrections table exists (as on SQLite). */
  withdrawnFilter(c: Q): Promise<string> {
    return this.notWithdrawn(c);
  }

  private async notWithdrawn(c: Q): Promise<string> {
    if (!this.withdrawals) {
      const r = await c.query<{ t: string | null }>(`SELECT to_regclass('visit_corrections')::text AS t`);
      this.withdrawals = r.rows[0]?.t != null;
    }
    return this.withdrawals
      ? `AND NOT EXISTS (SELECT 1 FROM visit_corrections wc WHERE wc.kind = 'withdrawn'
           AND wc.reader_id = v.reader_id AND wc.visit_id = v.visit_id)`
      : '';
  }

  private async activePlansOn(
    c: Q,
    w: { fromMs: number; toMs: number; areaId?: string; clientRefs?: readonly string[] },
  ): Promise<PlanForMatch[]> {
    if (w.clientRefs) {
      const r = await c.query<PlanRow>(
        `SELECT * FROM care_planned_visits WHERE active = 1 AND client_ref = ANY($1::text[])
           AND start_ms >= $2 AND start_ms < $3 ORDER BY start_ms, planned_visit_id`,
        [w.clientRefs, w.fromMs, w.toMs],
      );
      // the SQLite adapter returns them client by client, in the order asked
      const by = new Map<string, PlanForMatch[]>();
      for (const p of r.rows.map(toPlan)) by.set(p.clientRef, [...(by.get(p.clientRef) ?? []), p]);
      return w.clientRefs.flatMap((cr) => by.get(cr) ?? []);
    }
    const r = await c.query<PlanRow>(
      `SELECT * FROM care_planned_visits WHERE active = 1 AND start_ms >= $1 AND start_ms < $2
         AND ($3::text IS NULL OR area_id = $3) ORDER BY start_ms, planned_visit_id`,
      [w.fromMs, w.toMs, w.areaId ?? null],
    );
    return r.rows.map(toPlan);
  }

  private async visitsOn(
    c: Q,
    fromMs: number,
    toMs: number,
    clientRefs?: readonly string[],
  ): Promise<ExecutedVisit[]> {
    const nw = await this.notWithdrawn(c);
    if (clientRefs) {
      const r = await c.query<VisitRowRaw>(
        `SELECT ${VISIT_COLS} FROM visits v WHERE v.client_ref = ANY($1::text[]) AND (
           (v.started_at_ms >= $2 AND v.started_at_ms < $3) OR
           (v.started_at_ms IS NULL AND v.ended_at_ms >= $2 AND v.ended_at_ms < $3)) ${nw}`,
        [clientRefs, fromMs, toMs],
      );
      const by = new Map<string, ExecutedVisit[]>();
      for (const v of r.rows.map(toExecuted)) {
        const k = v.clientRef ?? '';
        by.set(k, [...(by.get(k) ?? []), v]);
      }
      return clientRefs.flatMap((cr) => by.get(cr) ?? []);
    }
    const r = await c.query<VisitRowRaw>(
      `SELECT ${VISIT_COLS} FROM visits v WHERE COALESCE(v.started_at_ms, v.ended_at_ms) >= $1
         AND COALESCE(v.started_at_ms, v.ended_at_ms) < $2 ${nw}`,
      [fromMs, toMs],
    );
    return r.rows.map(toExecuted);
  }

  private async matchesOn(
    c: Q,
    w: { fromMs: number; toMs: number; areaId?: string; clientRef?: string },
  ): Promise<PlanMatch[]> {
    const r = await c.query<MatchRow>(
      `SELECT m.*, r.reason_code FROM care_plan_matches m LEFT JOIN care_reasons r USING (planned_visit_id)
         WHERE m.start_ms >= $1 AND m.start_ms < $2 AND ($3::text IS NULL OR m.area_id = $3)
           AND ($4::text IS NULL OR m.client_ref = $4)
         ORDER BY m.start_ms, m.planned_visit_id`,
      [w.fromMs, w.toMs, w.areaId ?? null, w.clientRef ?? null],
    );
    return r.rows.map(toMatch);
  }

  private async reasonsOn(c: Q, ids: readonly string[]): Promise<Map<string, MissedReasonCode>> {
    if (ids.length === 0) return new Map();
    const r = await c.query<{ planned_visit_id: string; reason_code: MissedReasonCode }>(
      'SELECT planned_visit_id, reason_code FROM care_reasons WHERE planned_visit_id = ANY($1::text[])',
      [ids],
    );
    return new Map(r.rows.map((x) => [x.planned_visit_id, x.reason_code]));
  }

  private async rematchOn(
    c: Q,
    clientRef: string,
    range: { fromMs: number; toMs: number },
    compute: (input: RematchInput) => RematchOutput,
  ): Promise<RematchOutput> {
    const plans = await this.activePlansOn(c, { ...range, clientRefs: [clientRef] });
    const visits = await this.visitsOn(c, range.fromMs, range.toMs, [clientRef]);
    const reasons = await this.reasonsOn(
      c,
      plans.map((p) => p.plannedVisitId),
    );
    const out = compute({ plans, visits, reasons });
    await c.query(
      'DELETE FROM care_plan_matches WHERE client_ref = $1 AND start_ms >= $2 AND start_ms < $3',
      [clientRef, range.fromMs, range.toMs],
    );
    await c.query('DELETE FROM care_visit_matches WHERE client_ref = $1 AND time_ms >= $2 AND time_ms < $3', [
      clientRef,
      range.fromMs,
      range.toMs,
    ]);
    if (out.plans.length) {
      const m = out.plans;
      await c.query(
        `INSERT INTO care_plan_matches (planned_visit_id, area_id, client_ref, start_ms, local_date, staff_count,
           window_end_ms, executed_keys_json, late_minutes, status)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::int[],
           $7::bigint[], $8::text[], $9::int[], $10::text[])
         ON CONFLICT (planned_visit_id) DO UPDATE SET area_id = excluded.area_id, client_ref = excluded.client_ref,
           start_ms = excluded.start_ms, local_date = excluded.local_date, staff_count = excluded.staff_count,
           window_end_ms = excluded.window_end_ms, executed_keys_json = excluded.executed_keys_json,
           late_minutes = excluded.late_minutes, status = excluded.status`,
        [
          m.map((x) => x.plannedVisitId),
          m.map((x) => x.areaId),
          m.map((x) => x.clientRef),
          m.map((x) => x.startMs),
          m.map((x) => x.localDate),
          m.map((x) => x.staffCount),
          m.map((x) => x.windowEndMs),
          m.map((x) => JSON.stringify(x.executedKeys)),
          m.map((x) => x.lateMinutes),
          m.map((x) => x.status),
        ],
      );
    }
    if (out.visits.length) {
      const v = out.visits;
      await c.query(
        `INSERT INTO care_visit_matches (executed_key, client_ref, time_ms, local_date, planned_visit_id)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[])
         ON CONFLICT (executed_key) DO UPDATE SET client_ref = excluded.client_ref, time_ms = excluded.time_ms,
           local_date = excluded.local_date, planned_visit_id = excluded.planned_visit_id`,
        [
          v.map((x) => x.key),
          v.map((x) => x.clientRef),
          v.map((x) => x.timeMs),
          v.map((x) => x.localDate),
          v.map((x) => x.plannedVisitId),
        ],
      );
    }
    return out;
  }

  // ------------------------------------------------------------------------------------ registries

  upsertRegistry: CareStore['upsertRegistry'] = (b, nowMs) =>
    this.write(async (c) => {
      const up = async (table: string, key: string, extra: string[], values: unknown[][]) => {
        const cols = [key, ...extra, 'json', 'updated_at_ms'];
        for (const v of values) {
          await c.query(
            `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})
             ON CONFLICT (${key}) DO UPDATE SET ${cols
               .slice(1)
               .map((x) => `${x} = excluded.${x}`)
               .join(', ')}`,
            [...v, nowMs],
          );
        }
      };
      await up(
        'care_providers',
        'provider_id',
        [],
        (b.providers ?? []).map((p) => [p.providerId, JSON.stringify(p)]),
      );
      await up(
        'care_areas',
        'area_id',
        [],
        (b.areas ?? []).map((a) => [a.areaId, JSON.stringify(a)]),
      );
      await up(
        'care_teams',
        'team_id',
        ['area_id'],
        (b.teams ?? []).map((t) => [t.teamId, t.areaId, JSON.stringify(t)]),
      );
      await up(
        'care_clients',
        'client_ref',
        ['area_id'],
        (b.clients ?? []).map((x) => [x.clientRef, x.areaId, JSON.stringify(x)]),
      );
      await up(
        'care_staff',
        'staff_ref',
        ['area_id'],
        (b.staff ?? []).map((s) => [s.staffRef, s.areaId, JSON.stringify(s)]),
      );
      await up(
        'care_service_codes',
        'code',
        [],
        (b.serviceCodes ?? []).map((s) => [s.code, JSON.stringify(s)]),
      );
    });

  listAreas = async (): Promise<Area[]> =>
    json<Area>(
      (await this.pool.query<{ json: string }>('SELECT json FROM care_areas ORDER BY area_id')).rows,
    );
  listProviders = async (): Promise<Provider[]> =>
    json<Provider>(
      (await this.pool.query<{ json: string }>('SELECT json FROM care_providers ORDER BY provider_id')).rows,
    );
  listTeams = async (areaId?: string): Promise<Team[]> =>
    json<Team>(
      (
        await this.pool.query<{ json: string }>(
          'SELECT json FROM care_teams WHERE ($1::text IS NULL OR area_id = $1) ORDER BY team_id',
          [areaId ?? null],
        )
      ).rows,
    );
  listClients = async (areaId?: string): Promise<Client[]> =>
    json<Client>(
      (
        await this.pool.query<{ json: string }>(
          'SELECT json FROM care_clients WHERE ($1::text IS NULL OR area_id = $1) ORDER BY client_ref',
          [areaId ?? null],
        )
      ).rows,
    );
  listStaff = async (areaId?: string): Promise<Staff[]> =>
    json<Staff>(
      (
        await this.pool.query<{ json: string }>(
          'SELECT json FROM care_staff WHERE ($1::text IS NULL OR area_id = $1) ORDER BY staff_ref',
          [areaId ?? null],
        )
      ).rows,
    );
  listServiceCodes = async (): Promise<ServiceCode[]> =>
    json<ServiceCode>(
      (await this.pool.query<{ json: string }>('SELECT json FROM care_service_codes ORDER BY code')).rows,
    );

  // ------------------------------------------------------------------------------------------ plan

  replacePlan: CareStore['replacePlan'] = async (input) => {
    try {
      return await this.write(async (c) => {
        const superseded = (
          await c.query<{ plan_version_id: number }>(
            `SELECT DISTINCT plan_version_id FROM care_planned_visits
               WHERE active = 1 AND area_id = $1 AND local_date BETWEEN $2 AND $3 ORDER BY plan_version_id`,
            [input.areaId, input.fromDate, input.toDate],
          )
        ).rows.map((r) => r.plan_version_id);
        const replaced =
          (
            await c.query(
              `UPDATE care_planned_visits SET active = 0 WHERE active = 1 AND area_id = $1 AND local_date BETWEEN $2 AND $3`,
              [input.areaId, input.fromDate, input.toDate],
            )
          ).rowCount ?? 0;
        const ins = await c.query<{ plan_version_id: number }>(
          `INSERT INTO care_plan_versions (area_id, from_date, to_date, imported_at_ms, imported_by, source, visit_count, supersedes_json)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING plan_version_id`,
          [
            input.areaId,
            input.fromDate,
            input.toDate,
            input.nowMs,
            input.importedBy,
            input.source,
            input.visits.length,
            JSON.stringify(superseded),
          ],
        );
        const versionId = ins.rows[0]!.plan_version_id;
        const vs = input.visits;
        const stored = await c.query<{ planned_visit_id: string }>(
          `INSERT INTO care_planned_visits (plan_version_id, planned_visit_id, area_id, client_ref, local_date, local_start,
             start_ms, planned_minutes, service_codes_json, staff_count, staff_refs_json, active)
           SELECT $1, v.*, 1 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
             $8::float8[], $9::text[], $10::int[], $11::text[]) AS v
           ON CONFLICT DO NOTHING RETURNING planned_visit_id`,
          [
            versionId,
            vs.map((v) => v.plannedVisitId),
            vs.map(() => input.areaId),
            vs.map((v) => v.clientRef),
            vs.map((v) => v.localDate),
            vs.map((v) => v.localStart),
            vs.map((v) => v.startMs),
            vs.map((v) => v.plannedMinutes),
            vs.map((v) => JSON.stringify(v.serviceCodes)),
            vs.map((v) => v.staffCount),
            vs.map((v) => JSON.stringify(v.plannedStaffRefs)),
          ],
        );
        const kept = new Set(stored.rows.map((r) => r.planned_visit_id));
        const ignored = vs.map((v) => v.plannedVisitId).filter((id) => !kept.has(id));
        if (ignored.length) {
          // an id still active elsewhere (another area, or outside this range) would be ambiguous
          const where = await c.query<PlanConflictRow>(
            `SELECT planned_visit_id, area_id, local_date FROM care_planned_visits
               WHERE active = 1 AND planned_visit_id = ANY($1::text[]) AND plan_version_id <> $2`,
            [ignored, versionId],
          );
          const at = new Map(where.rows.map((r) => [r.planned_visit_id, r]));
          const conflicts = ignored.map((id) => {
            const r = at.get(id);
            if (!r) throw new Error(`planned visit ${id} could not be stored (duplicate within the import?)`);
            return { plannedVisitId: id, areaId: r.area_id, localDate: r.local_date };
          });
          throw new PlanConflict(conflicts);
        }
        const version = planVersionOf(input, versionId, superseded);
        return { ok: true as const, version, replaced };
      });
    } catch (e) {
      if (e instanceof PlanConflict) return { ok: false as const, conflicts: e.conflicts };
      throw e;
    }
  };

  planVersions = async (areaId?: string): Promise<PlanVersion[]> =>
    (
      await this.pool.query<{
        plan_version_id: number;
        area_id: string;
        from_date: string;
        to_date: string;
        imported_at_ms: number;
        imported_by: string;
        source: string;
        visit_count: number;
        supersedes_json: string;
      }>(
        'SELECT * FROM care_plan_versions WHERE ($1::text IS NULL OR area_id = $1) ORDER BY plan_version_id',
        [areaId ?? null],
      )
    ).rows.map((r) => ({
      planVersionId: r.plan_version_id,
      areaId: r.area_id,
      fromDate: r.from_date,
      toDate: r.to_date,
      importedAtMs: r.imported_at_ms,
      importedBy: r.imported_by,
      source: r.source,
      visitCount: r.visit_count,
      supersedes: JSON.parse(r.supersedes_json) as number[],
    }));

  activePlans: CareStore['activePlans'] = (w) => this.activePlansOn(this.pool, w);

  plannedVisit = async (id: string): Promise<PlanForMatch | null> => {
    const r = await this.pool.query<PlanRow>(
      'SELECT * FROM care_planned_visits WHERE active = 1 AND planned_visit_id = $1',
      [id],
    );
    return r.rows[0] ? toPlan(r.rows[0]) : null;
  };

  plansOfVersion = async (id: number): Promise<PlanForMatch[]> =>
    (
      await this.pool.query<PlanRow>(
        'SELECT * FROM care_planned_visits WHERE plan_version_id = $1 ORDER BY start_ms, planned_visit_id',
        [id],
      )
    ).rows.map(toPlan);

  clientsWithPlans: CareStore['clientsWithPlans'] = async (w) =>
    (
      await this.pool.query<{ client_ref: string }>(
        `SELECT DISTINCT client_ref FROM care_planned_visits WHERE active = 1 AND start_ms >= $1 AND start_ms < $2
           AND ($3::text IS NULL OR area_id = $3) ORDER BY client_ref`,
        [w.fromMs, w.toMs, w.areaId ?? null],
      )
    ).rows.map((r) => r.client_ref);

  setReason: CareStore['setReason'] = (r, nowMs) =>
    this.write(async (c) => {
      const known = await c.query('SELECT 1 FROM care_planned_visits WHERE planned_visit_id = $1 LIMIT 1', [
        r.plannedVisitId,
      ]);
      if ((known.rowCount ?? 0) === 0) return false;
      await c.query(
        `INSERT INTO care_reasons (planned_visit_id, reason_code, note, set_by, set_at_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (planned_visit_id) DO UPDATE SET reason_code = excluded.reason_code, note = excluded.note,
           set_by = excluded.set_by, set_at_ms = excluded.set_at_ms`,
        [r.plannedVisitId, r.reasonCode, r.note, r.actor, nowMs],
      );
      return true;
    });

  // -------------------------------------------------------------------------------------- matching

  executedBetween: CareStore['executedBetween'] = (fromMs, toMs, clientRefs) =>
    this.visitsOn(this.pool, fromMs, toMs, clientRefs);

  rematch: CareStore['rematch'] = (clientRef, range, compute) =>
    this.write((c) => this.rematchOn(c, clientRef, range, compute));

  rematchMany: CareStore['rematchMany'] = (clientRefs, range, compute) =>
    this.write(async (c) => {
      for (const cr of clientRefs) await this.rematchOn(c, cr, range, (input) => compute(cr, input));
    });

  matches: CareStore['matches'] = async (w) =>
    (await this.matchesOn(this.pool, w)).map((m) =>
      m.status === 'pending' && w.nowMs !== undefined && w.nowMs >= m.windowEndMs
        ? { ...m, status: 'missed' as const }
        : m,
    );

  unplanned: CareStore['unplanned'] = async (w) =>
    (
      await this.pool.query<{
        executed_key: string;
        client_ref: string;
        time_ms: number;
        local_date: string;
        planned_visit_id: string | null;
      }>(
        `SELECT executed_key, client_ref, time_ms, local_date, planned_visit_id FROM care_visit_matches
           WHERE planned_visit_id IS NULL AND time_ms >= $1 AND time_ms < $2 AND ($3::text IS NULL OR client_ref = $3)
           ORDER BY time_ms, executed_key`,
        [w.fromMs, w.toMs, w.clientRef ?? null],
      )
    ).rows.map((r) => ({
      key: r.executed_key,
      clientRef: r.client_ref,
      timeMs: r.time_ms,
      localDate: r.local_date,
      plannedVisitId: r.planned_visit_id,
    }));

  changedVisits: CareStore['changedVisits'] = async (cursor, limit) => {
    const cur = cursor ?? { updatedAtMs: -1, key: '' };
    const slash = cur.key.indexOf('/');
    const [reader, visit] = [cur.key.slice(0, slash), cur.key.slice(slash + 1)];
    // COLLATE "C": the same byte order as SQLite's, so the cursor walks the same rows on both engines
    const r = await this.pool.query<VisitRowRaw>(
      `SELECT ${VISIT_COLS} FROM visits v
         WHERE (v.updated_at_ms, v.reader_id COLLATE "C", v.visit_id COLLATE "C") > ($1::bigint, $2::text COLLATE "C", $3::text COLLATE "C")
         ORDER BY v.updated_at_ms, v.reader_id COLLATE "C", v.visit_id COLLATE "C" LIMIT $4`,
      [cur.updatedAtMs, reader, visit, limit],
    );
    const visits = r.rows.map(toExecuted);
    const last = visits[visits.length - 1];
    return { visits, cursor: last ? { updatedAtMs: last.updatedAtMs, key: executedKey(last) } : cursor };
  };

  previousMatchOf: CareStore['previousMatchOf'] = async (keys) => {
    if (keys.length === 0) return [];
    const r = await this.pool.query<{ executed_key: string; client_ref: string; time_ms: number }>(
      'SELECT executed_key, client_ref, time_ms FROM care_visit_matches WHERE executed_key = ANY($1::text[])',
      [keys],
    );
    const by = new Map(r.rows.map((x) => [x.executed_key, x]));
    return keys.flatMap((key) => {
      const x = by.get(key);
      return x ? [{ key, clientRef: x.client_ref, timeMs: x.time_ms }] : [];
    });
  };

  getCursor = async (): Promise<VisitChangeCursor | null> => {
    const r = await this.pool.query<{ value: string }>(
      `SELECT value FROM care_meta WHERE key = 'visit-cursor'`,
    );
    return r.rows[0] ? (JSON.parse(r.rows[0].value) as VisitChangeCursor) : null;
  };

  setCursor: CareStore['setCursor'] = (cur) =>
    this.write(async (c) => {
      await c.query(
        `INSERT INTO care_meta (key, value) VALUES ('visit-cursor', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [JSON.stringify(cur)],
      );
    });

  // ---------------------------------------------------------------------------------------- alerts

  alertTick: CareStore['alertTick'] = (range, decide) =>
    this.write(async (c) => {
      const plans = await this.activePlansOn(c, range);
      const matches = new Map((await this.matchesOn(c, range)).map((m) => [m.plannedVisitId, m]));
      const open = (
        await c.query<AlertRow>(
          'SELECT * FROM care_alerts WHERE cleared_at_ms IS NULL ORDER BY raised_at_ms, planned_visit_id, kind',
        )
      ).rows.map(toAlert);
      // open alerts of older plans stay in view until they clear (taps delivered days late)
      const inRange = new Set(plans.map((p) => p.plannedVisitId));
      const older = [...new Set(open.map((a) => a.plannedVisitId))].filter((id) => !inRange.has(id));
      const goneOpen: Alert[] = [];
      if (older.length) {
        const rows = await c.query<PlanRow>(
          'SELECT * FROM care_planned_visits WHERE active = 1 AND planned_visit_id = ANY($1::text[])',
          [older],
        );
        const byId = new Map(rows.rows.map((r) => [r.planned_visit_id, r]));
        const ms = await c.query<MatchRow>(
          `SELECT m.*, r.reason_code FROM care_plan_matches m LEFT JOIN care_reasons r USING (planned_visit_id)
             WHERE m.planned_visit_id = ANY($1::text[])`,
          [older],
        );
        const mById = new Map(ms.rows.map((r) => [r.planned_visit_id, r]));
        for (const a of open) {
          if (inRange.has(a.plannedVisitId)) continue;
          const row = byId.get(a.plannedVisitId);
          if (!row) {
            goneOpen.push(a);
            continue;
          }
          inRange.add(a.plannedVisitId);
          plans.push(toPlan(row));
          const m = mById.get(a.plannedVisitId);
          if (m) matches.set(a.plannedVisitId, toMatch(m));
        }
      }
      const reasons = await this.reasonsOn(c, [
        ...new Set([...plans.map((p) => p.plannedVisitId), ...open.map((a) => a.plannedVisitId)]),
      ]);
      const change: AlertChange = decide({ plans, matches, open, goneOpen, reasons });
      const startOf = new Map(plans.map((p) => [p.plannedVisitId, p.startMs]));
      const raised: Alert[] = [];
      for (const a of change.raise) {
        const start = startOf.get(a.plannedVisitId) ?? a.raisedAtMs;
        const r = await c.query(
          `INSERT INTO care_alerts (planned_visit_id, kind, area_id, client_ref, planned_start_ms, raised_at_ms)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (planned_visit_id, kind) DO NOTHING`,
          [a.plannedVisitId, a.kind, a.areaId, a.clientRef, start, a.raisedAtMs],
        );
        if ((r.rowCount ?? 0) === 0) continue;
        raised.push(a);
        await enqueueOn(c, alertRaisedEvent(a, start), a.raisedAtMs);
      }
      const cleared: AlertChange['clear'] = [];
      for (const x of change.clear) {
        const reason = x.reasonCode ?? reasons.get(x.plannedVisitId) ?? null;
        const r = await c.query<AlertRow>(
          `UPDATE care_alerts SET cleared_at_ms = $1, cleared_by = $2, reason_code = $3
             WHERE planned_visit_id = $4 AND kind = $5 AND cleared_at_ms IS NULL RETURNING *`,
          [x.clearedAtMs, x.clearedBy, reason, x.plannedVisitId, x.kind],
        );
        const row = r.rows[0];
        if (!row) continue;
        cleared.push(x);
        const m = matches.get(x.plannedVisitId);
        const visitKey =
          x.clearedBy === 'visit-started' || x.clearedBy === 'second-staff'
            ? (m?.executedKeys.at(-1) ?? null)
            : null;
        await enqueueOn(c, alertClearedEvent(x, row, reason, visitKey), x.clearedAtMs);
      }
      return { raise: raised, clear: cleared };
    });

  alerts: CareStore['alerts'] = async (w) =>
    (
      await this.pool.query<AlertRow>(
        `SELECT * FROM care_alerts WHERE ($1::boolean IS FALSE OR cleared_at_ms IS NULL)
           AND ($2::text IS NULL OR area_id = $2)
         ORDER BY raised_at_ms DESC, planned_visit_id, kind LIMIT $3`,
        [w.open === true, w.areaId ?? null, w.limit ?? 500],
      )
    ).rows.map(toAlert);

  openAlertCounts = async (): Promise<Record<AlertKind, number>> => {
    const counts: Record<AlertKind, number> = { late: 0, missed: 0, understaffed: 0 };
    const r = await this.pool.query<{ kind: AlertKind; n: number }>(
      'SELECT kind, COUNT(*) AS n FROM care_alerts WHERE cleared_at_ms IS NULL GROUP BY kind',
    );
    for (const x of r.rows) counts[x.kind] = x.n;
    return counts;
  };
}

/** The scope of a caller's care data (auth/scope.ts `DataScope`, written out: store/ imports no feature). */
export interface CareScope {
  areas: readonly string[];
  provider: string | null;
}

/** A scope's clients as SQL over parameters $a (areas) and $p (provider). */
const scopeClients = (a: number, p: number) =>
  `SELECT client_ref FROM care_clients WHERE area_id = ANY($${a}::text[])
     AND ($${p}::text IS NULL OR (json::jsonb)->>'providerId' = $${p})`;

/**
 * The scoped reads on PostgreSQL, for the day view and for the scoped routes in front of other modules'
 * routes (auth/scoped-routes.ts; it is auth/scope-reader.ts `ScopeReader`, the SQLite one is
 * store/sqlite/scope.ts, same queries): a client is in scope when its registry row has one of the areas and,
 * if the caller has a provider, that provider; a visit, anomaly or card sighting when its client is.
 * Filtered inside the SQL, before ORDER BY / LIMIT. Nothing is cached: each request reads the shared
 * registry, so a client moved to another area through any instance counts from the next request on.
 */
export class PgCareScopeReader {
  private readonly care: PgCareStore;
  constructor(private readonly pool: PgPool) {
    this.care = new PgCareStore(pool);
  }

  async clients(s: CareScope): Promise<Set<string>> {
    const r = await this.pool.query<{ client_ref: string }>(
      `SELECT client_ref FROM care_clients WHERE area_id = ANY($1::text[])
         AND ($2::text IS NULL OR (json::jsonb)->>'providerId' = $2)`,
      [s.areas, s.provider],
    );
    return new Set(r.rows.map((x) => x.client_ref));
  }

  /** Visits started in [fromMs, toMs) that count (not withdrawn), of in-scope clients (null: every visit), oldest first. */
  async visitsStartedBetween(
    s: CareScope | null,
    fromMs: number,
    toMs: number,
    limit: number,
  ): Promise<VisitRow[]> {
    const nw = await this.care.withdrawnFilter(this.pool);
    const r = await this.pool.query<RawVisit>(
      `SELECT v.* FROM visits v WHERE v.started_at_ms >= $1 AND v.started_at_ms < $2
         AND ($4::text[] IS NULL OR v.client_ref IN (SELECT client_ref FROM care_clients
           WHERE area_id = ANY($4::text[]) AND ($5::text IS NULL OR (json::jsonb)->>'providerId' = $5)))
         ${nw}
       ORDER BY v.started_at_ms, v.reader_id COLLATE "C", v.visit_id COLLATE "C" LIMIT $3`,
      [fromMs, toMs, limit, s === null ? null : s.areas, s === null ? null : s.provider],
    );
    return r.rows.map(rawToVisit);
  }

  async clientInScope(s: CareScope, clientRef: string | null): Promise<boolean> {
    if (clientRef === null) return false;
    const r = await this.pool.query(
      `SELECT 1 FROM care_clients WHERE client_ref = $3 AND area_id = ANY($1::text[])
         AND ($2::text IS NULL OR (json::jsonb)->>'providerId' = $2)`,
      [s.areas, s.provider, clientRef],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** Clients of the area outside the scope's provider (none when the scope has no provider). */
  async foreignClientsOfArea(s: CareScope, areaId: string): Promise<number> {
    if (s.provider === null) return 0;
    const r = await this.pool.query<{ n: number }>(
      `SELECT count(*) AS n FROM care_clients WHERE area_id = $1
         AND COALESCE((json::jsonb)->>'providerId', '') <> $2`,
      [areaId, s.provider],
    );
    return r.rows[0]?.n ?? 0;
  }

  async staffInScope(s: CareScope, staffRef: string): Promise<boolean> {
    const r = await this.pool.query(
      'SELECT 1 FROM care_staff WHERE staff_ref = $1 AND area_id = ANY($2::text[])',
      [staffRef, s.areas],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async visits(
    s: CareScope,
    q: { state: 'open' | 'recent'; readerId?: string | undefined; limit: number },
  ): Promise<VisitRow[]> {
    // the order of visits/routes.ts on PostgreSQL (store/postgres/visits.ts listVisits)
    const order =
      q.state === 'open' ? 'started_at_ms, visit_id COLLATE "C"' : 'updated_at_ms DESC, visit_id COLLATE "C"';
    const r = await this.pool.query<RawVisit>(
      `SELECT * FROM visits WHERE client_ref IN (${scopeClients(1, 2)})
         AND (NOT $3::boolean OR state = 'open') AND ($4::text IS NULL OR reader_id = $4)
       ORDER BY ${order} LIMIT $5`,
      [s.areas, s.provider, q.state === 'open', q.readerId ?? null, q.limit],
    );
    return r.rows.map(rawToVisit);
  }

  /** Which of these visits were withdrawn as a mistake (`readerId/visitId` keys). */
  async withdrawnOf(visits: readonly { readerId: string; visitId: string }[]): Promise<Set<string>> {
    if (visits.length === 0 || (await this.care.withdrawnFilter(this.pool)) === '') return new Set();
    const r = await this.pool.query<{ reader_id: string; visit_id: string }>(
      `SELECT DISTINCT reader_id, visit_id FROM visit_corrections
        WHERE kind = 'withdrawn' AND (reader_id, visit_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
      [visits.map((v) => v.readerId), visits.map((v) => v.visitId)],
    );
    return new Set(r.rows.map((x) => `${x.reader_id}/${x.visit_id}`));
  }

  /** The stored rows of a visit id that are in scope (null: every one; a visit id may exist at several readers). */
  async visitById(s: CareScope | null, visitId: string): Promise<VisitRow[]> {
    const r = await this.pool.query<RawVisit>(
      `SELECT * FROM visits WHERE visit_id = $1
         AND ($2::text[] IS NULL OR client_ref IN (${scopeClients(2, 3)}))`,
      [visitId, s === null ? null : s.areas, s === null ? null : s.provider],
    );
    return r.rows.map(rawToVisit);
  }

  async anomalies(
    s: CareScope,
    q: { kind?: string | undefined; readerId?: string | undefined; limit: number },
  ): Promise<ScopedAnomalyRow[]> {
    const r = await this.pool.query<ScopedAnomalyRow>(
      `SELECT id, idempotency_key AS "idempotencyKey", kind, reader_id AS "readerId", visit_id AS "visitId",
         card_ref AS "cardRef", staff_ref AS "staffRef", client_ref AS "clientRef", at_ms AS "atMs", seq, detail,
         created_at_ms AS "createdAtMs", resolved_at_ms AS "resolvedAtMs", resolved_by AS "resolvedBy",
         resolution, resolved_staff_ref AS "resolvedStaffRef"
       FROM anomalies WHERE client_ref IN (${scopeClients(1, 2)})
         AND ($3::text IS NULL OR kind = $3) AND ($4::text IS NULL OR reader_id = $4)
       ORDER BY id DESC LIMIT $5`,
      [s.areas, s.provider, q.kind ?? null, q.readerId ?? null, q.limit],
    );
    return r.rows;
  }

  /** Unknown cards seen at in-scope clients, with only those sightings (taps elsewhere are not counted). */
  async unknownCards(s: CareScope, limit: number): Promise<ScopedCardRow[]> {
    const r = await this.pool.query<{
      cardRef: string;
      readerId: string;
      clientRef: string | null;
      taps: number;
      firstMs: number;
      lastMs: number;
    }>(
      `SELECT a.card_ref AS "cardRef", a.reader_id AS "readerId", a.client_ref AS "clientRef",
              count(*) AS taps, min(a.at_ms) AS "firstMs", max(a.at_ms) AS "lastMs"
         FROM anomalies a LEFT JOIN cards c ON c.card_ref = a.card_ref
        WHERE a.kind = 'unknown-card' AND a.card_ref IS NOT NULL AND c.card_ref IS NULL
          AND a.client_ref IN (${scopeClients(1, 2)})
        GROUP BY a.card_ref, a.reader_id, a.client_ref
        ORDER BY "lastMs" DESC`,
      [s.areas, s.provider],
    );
    const byCard = new Map<string, ScopedCardRow>();
    for (const x of r.rows) {
      let c = byCard.get(x.cardRef);
      if (!c) {
        if (byCard.size >= limit) continue;
        c = { cardRef: x.cardRef, taps: 0, firstSeenMs: x.firstMs, lastSeenMs: x.lastMs, seenAt: [] };
        byCard.set(x.cardRef, c);
      }
      c.taps += x.taps;
      c.firstSeenMs = Math.min(c.firstSeenMs, x.firstMs);
      c.lastSeenMs = Math.max(c.lastSeenMs, x.lastMs);
      c.seenAt.push({ readerId: x.readerId, clientRef: x.clientRef, taps: x.taps, lastSeenMs: x.lastMs });
    }
    return [...byCard.values()];
  }

  /** True when an active planned visit with this id is for an in-scope client. */
  async plannedVisitInScope(s: CareScope, plannedVisitId: string): Promise<boolean> {
    const r = await this.pool.query(
      `SELECT 1 FROM care_planned_visits WHERE planned_visit_id = $3 AND active = 1
         AND client_ref IN (${scopeClients(1, 2)}) LIMIT 1`,
      [s.areas, s.provider, plannedVisitId],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** True when the card has been tapped (known or not) at an in-scope client. */
  async cardSeenInScope(s: CareScope, cardRef: string): Promise<boolean> {
    const r = await this.pool.query(
      `SELECT 1 FROM anomalies WHERE card_ref = $3 AND client_ref IN (${scopeClients(1, 2)})
       UNION ALL SELECT 1 FROM visits WHERE card_ref = $3 AND client_ref IN (${scopeClients(1, 2)}) LIMIT 1`,
      [s.areas, s.provider, cardRef],
    );
    return (r.rowCount ?? 0) > 0;
  }
}
