/**
 * The reports' read port (store/reports.ts `ReportSource`) over PostgreSQL, for instances with
 * `store.engine: "postgres"`: the facts a report is computed from, read from the shared tables every
 * instance writes (visits, events, visit_audit, the care plan's care_* tables, visit_corrections). It gives
 * no aggregated cells: the reports compute their figures from these facts in memory (the reports'
 * reference computation; the SQLite source's cells and SQL aggregations are a speed-up proven equal to
 * it). So a report on PostgreSQL reads the window's visits, plan and matches once per report.
 *
 * The rules are the SQLite source's (sqlite/reports/source.ts), read from the same columns:
 * - a visit is `corrected` when a person changed it (a `visit_audit` row, or an end closed by hand);
 * - `receivedAtMs` is when the ingest received the later of its start and stop taps (`events`);
 * - `withdrawn` when a `withdrawn` correction names it (table `visit_corrections`, when it exists);
 * - `plannedVisitId` from the matching's per-visit row (`care_visit_matches`) when there is one;
 * - visits that started in the window, then stops without a start placed by their end.
 */
import type {
  Area,
  Client,
  Match,
  MatchStatus,
  MissedReasonCode,
  PlannedVisit,
  Provider,
  ServiceCode,
  Staff,
  Team,
} from '../care-model.js';
import type { PgPool } from './db.js';
import { toReportVisit, type ReportVisitRow } from '../report-rows.js';
import type { Registries, ReportVisit, TapCount, UtcWindow as Window } from '../report-types.js';
import type { ReportSource } from '../reports.js';

interface VisitRow extends ReportVisitRow {
  withdrawn: boolean;
}

export interface PgReportSourceOptions {
  /** Rows per page (default 5000). */
  chunk?: number;
}

export class PgReportSource implements ReportSource {
  private readonly chunk: number;
  constructor(
    private readonly pool: PgPool,
    opts: PgReportSourceOptions = {},
  ) {
    this.chunk = opts.chunk ?? 5000;
  }

  private async jsonRows<T>(table: string, key: string): Promise<T[]> {
    const r = await this.pool.query<{ json: string }>(`SELECT json FROM ${table} ORDER BY ${key}`);
    return r.rows.map((x) => JSON.parse(x.json) as T);
  }

  async registries(): Promise<Registries> {
    const [providers, areas, teams, clients, staff, serviceCodes] = await Promise.all([
      this.jsonRows<Provider>('care_providers', 'provider_id'),
      this.jsonRows<Area>('care_areas', 'area_id'),
      this.jsonRows<Team>('care_teams', 'team_id'),
      this.jsonRows<Client>('care_clients', 'client_ref'),
      this.jsonRows<Staff>('care_staff', 'staff_ref'),
      this.jsonRows<ServiceCode>('care_service_codes', 'code'),
    ]);
    return { providers, areas, teams, clients, staff, serviceCodes };
  }

  async *planned(w: Window): AsyncIterable<readonly PlannedVisit[]> {
    const codes = new Map<string, PlannedVisit['serviceCodes']>();
    const codesOf = (json: string) => {
      let c = codes.get(json);
      if (c === undefined) codes.set(json, (c = JSON.parse(json) as PlannedVisit['serviceCodes']));
      return c;
    };
    let after: [number, string] = [w.fromMs, ''];
    for (;;) {
      const r = await this.pool.query<{
        plan_version_id: number;
        planned_visit_id: string;
        client_ref: string;
        local_date: string;
        local_start: string;
        start_ms: number;
        planned_minutes: number;
        service_codes_json: string;
        staff_count: 1 | 2;
        staff_refs_json: string;
      }>(
        `SELECT plan_version_id, planned_visit_id, client_ref, local_date, local_start, start_ms, planned_minutes,
                service_codes_json, staff_count, staff_refs_json
           FROM care_planned_visits
          WHERE active = 1 AND (start_ms, planned_visit_id) > ($1, $2) AND start_ms < $3
          ORDER BY start_ms, planned_visit_id LIMIT $4`,
        [after[0], after[1], w.toMs, this.chunk],
      );
      const rows = r.rows;
      if (rows.length === 0) return;
      yield rows.map((x) => ({
        plannedVisitId: x.planned_visit_id,
        clientRef: x.client_ref,
        localDate: x.local_date,
        localStart: x.local_start,
        startMs: x.start_ms,
        plannedMinutes: x.planned_minutes,
        serviceCodes: codesOf(x.service_codes_json),
        staffCount: x.staff_count,
        plannedStaffRefs: JSON.parse(x.staff_refs_json) as string[],
        planVersionId: x.plan_version_id,
      }));
      const last = rows[rows.length - 1]!;
      after = [last.start_ms, last.planned_visit_id];
    }
  }

  async *matches(w: Window): AsyncIterable<readonly Match[]> {
    const planned = await this.pool.query<{
      planned_visit_id: string;
      client_ref: string;
      status: MatchStatus;
      executed_keys_json: string;
      late_minutes: number | null;
      local_date: string;
      reason_code: MissedReasonCode | null;
    }>(
      `SELECT m.planned_visit_id, m.client_ref, m.status, m.executed_keys_json, m.late_minutes, m.local_date,
              r.reason_code
         FROM care_plan_matches m LEFT JOIN care_reasons r ON r.planned_visit_id = m.planned_visit_id
        WHERE m.start_ms >= $1 AND m.start_ms < $2 ORDER BY m.start_ms, m.planned_visit_id`,
      [w.fromMs, w.toMs],
    );
    yield planned.rows.map((r) => ({
      plannedVisitId: r.planned_visit_id,
      clientRef: r.client_ref,
      status: r.status,
      executedKeys: JSON.parse(r.executed_keys_json) as string[],
      lateMinutes: r.late_minutes,
      reasonCode: r.status === 'missed' ? r.reason_code : null,
      localDate: r.local_date,
    }));
    const unplanned = await this.pool.query<{ executed_key: string; client_ref: string; local_date: string }>(
      `SELECT executed_key, client_ref, local_date FROM care_visit_matches
        WHERE planned_visit_id IS NULL AND time_ms >= $1 AND time_ms < $2 ORDER BY time_ms, executed_key`,
      [w.fromMs, w.toMs],
    );
    yield unplanned.rows.map((r) => ({
      plannedVisitId: null,
      clientRef: r.client_ref,
      status: 'unplanned' as const,
      executedKeys: [r.executed_key],
      lateMinutes: null,
      reasonCode: null,
      localDate: r.local_date,
    }));
  }

  /**
   * The secure-card verifier's per-tap record (secure_taps, shared by the instances), not counting refused
   * taps. The table is a step of PostgreSQL's list, so it is there whether or not secure cards are checked:
   * while it holds no row at all the answer is null (nothing recorded), as from a SQLite gateway that does not
   * check secure cards (no table).
   */
  async tapAssurance(w: Window): Promise<TapCount[] | null> {
    const t = await this.pool.query<{ t: string | null }>(`SELECT to_regclass('secure_taps')::text AS t`);
    if (!t.rows[0]?.t) return null;
    const any = await this.pool.query('SELECT 1 FROM secure_taps LIMIT 1');
    if ((any.rowCount ?? 0) === 0) return null;
    const r = await this.pool.query<{ reader_id: string; assurance: TapCount['assurance']; taps: number }>(
      `SELECT reader_id, assurance, count(*) AS taps FROM secure_taps
        WHERE at_ms >= $1 AND at_ms < $2 AND verdict <> 'refused'
        GROUP BY reader_id, assurance ORDER BY reader_id COLLATE "C", assurance COLLATE "C"`,
      [w.fromMs, w.toMs],
    );
    return r.rows.map((x) => ({ readerId: x.reader_id, assurance: x.assurance, taps: x.taps }));
  }

  async *executed(w: Window): AsyncIterable<readonly ReportVisit[]> {
    // visit_audit holds people's changes (few rows): read once, as the SQLite source does.
    const audited = new Set(
      (
        await this.pool.query<{ k: string }>(
          `SELECT DISTINCT reader_id || '/' || visit_id AS k FROM visit_audit`,
        )
      ).rows.map((r) => r.k),
    );
    const hasCorrections =
      (await this.pool.query<{ t: string | null }>(`SELECT to_regclass('visit_corrections')::text AS t`))
        .rows[0]?.t != null;
    const withdrawn = hasCorrections
      ? `EXISTS (SELECT 1 FROM visit_corrections wc WHERE wc.kind = 'withdrawn'
           AND wc.reader_id = v.reader_id AND wc.visit_id = v.visit_id)`
      : 'false';
    const cols = `v.reader_id, v.visit_id, v.client_ref, v.staff_ref, v.card_ref, v.group_id, v.state,
          v.started_at_ms, v.ended_at_ms, v.end_reason, v.time_quality, v.anomalies_json, v.updated_at_ms,
          (SELECT max(e.received_at_ms) FROM events e
            WHERE e.reader_id = v.reader_id AND e.seq IN (v.start_seq, v.end_seq)) AS received_at_ms,
          vm.planned_visit_id, vm.executed_key AS vm_key, ${withdrawn} AS withdrawn
     FROM visits v LEFT JOIN care_visit_matches vm ON vm.executed_key = v.reader_id || '/' || v.visit_id`;
    const toVisit = (r: VisitRow): ReportVisit =>
      toReportVisit(r, {
        audited: audited.has(`${r.reader_id}/${r.visit_id}`),
        linked: true,
        withdrawn: r.withdrawn,
      });
    // Visits that started in the window, page by page in (start, reader, visit) order (index visits_started).
    let after: [number, string, string] = [w.fromMs, '', ''];
    for (;;) {
      const r = await this.pool.query<VisitRow>(
        `SELECT ${cols}
          WHERE (v.started_at_ms, v.reader_id, v.visit_id) > ($1, $2, $3) AND v.started_at_ms < $4
          ORDER BY v.started_at_ms, v.reader_id, v.visit_id LIMIT $5`,
        [after[0], after[1], after[2], w.toMs, this.chunk],
      );
      if (r.rows.length === 0) break;
      yield r.rows.map(toVisit);
      const last = r.rows[r.rows.length - 1]!;
      after = [last.started_at_ms!, last.reader_id, last.visit_id];
    }
    // Stops without a start, placed by their end (rare: a start tap never arrived).
    const stops = await this.pool.query<VisitRow>(
      `SELECT ${cols} WHERE v.started_at_ms IS NULL AND v.ended_at_ms >= $1 AND v.ended_at_ms < $2
        ORDER BY v.ended_at_ms, v.reader_id, v.visit_id`,
      [w.fromMs, w.toMs],
    );
    if (stops.rows.length) yield stops.rows.map(toVisit);
  }
}

/** The index the executed visits' window reads use (the SQLite step 'reports-001', same id). */
export const pgReportMigrations: readonly { id: string; sql: string }[] = [
  { id: 'reports-001', sql: 'CREATE INDEX IF NOT EXISTS visits_started ON visits (started_at_ms)' },
];
