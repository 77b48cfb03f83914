/**
 * The ReportSource (store/reports.ts) over the gateway's SQLite file: the SQLite adapter of the reports.
 * Besides the facts it aggregates in SQL what the reports would otherwise compute in memory: executed vs
 * planned (executed.ts), continuity (continuity.ts), data quality (parts.ts), from the cells kept at write
 * time when they give the same (cells.ts, tables and triggers in migrations.ts).
 *
 * - Executed visits: the `visits` table (corrections applied there: a manual close or a card assigned later
 *   leaves a `visit_audit` row; `end_reason = 'manual'`), with the time the ingest received the visit's
 *   last tap from `events` (for late delivery); a visit with a `withdrawn` row in `visit_corrections` (a
 *   tap marked as a mistake) is read with `withdrawn: true`.
 * - Registries, the plan and the matches: the care plan's tables (`care_*`, issue 11), read when present;
 *   a gateway without them reports executed time only (empty registries and plan).
 *
 * Reads are paged (key order, a fresh statement per chunk), never one open iterator, so several reads of
 * one report can interleave on one connection, and the gateway gets the event loop between pages.
 */
import Database from 'better-sqlite3';
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
} from '../../care-model.js';
import { alarmOrMealOnly, EXCLUDED_CATEGORIES, NOT_HOME_CARE_KINDS } from '../../report-rules.js';
import {
  cellsCurrent,
  cellsInstalled,
  continuityCellsFromStore,
  executedCellsFromStore,
  refreshCells,
  type ContinuityInputs,
} from './cells.js';
import { sqliteContinuityCells } from './continuity.js';
import { sqliteExecutedCells } from './executed.js';
import { hasWithdrawals, sqlParts, windowQualityCells } from './parts.js';
import type { ReportSource } from '../../reports.js';
import { toReportVisit, type ReportVisitRow } from '../../report-rows.js';
import type {
  ContinuityCellParams,
  ContinuityCells,
  ExecutedCells,
  ExecutedParams,
  QualityCell,
  Registries,
  ReportVisit,
  TapCount,
  UtcWindow,
} from '../../report-types.js';
import type { ReportClock } from '../../report-time.js';

type Db = Database.Database;

interface VisitRow extends ReportVisitRow {
  rid: number;
}

export interface SqliteReportSourceOptions {
  /** Rows per chunk (default 5000). */
  chunk?: number;
  /**
   * Use the cells kept at write time (cells.ts) when the database has them (default true); a
   * connection that may write brings them up to date first. False: always aggregate on the fly.
   */
  cells?: boolean;
}

export class SqliteReportSource implements ReportSource {
  private readonly chunk: number;
  private readonly useCells: boolean;
  /** How the last executed-vs-planned cells were made (tests and the bench check it). */
  lastExecutedFrom: 'kept cells' | 'sql' | null = null;
  /** How the last continuity cells were made. */
  lastContinuityFrom: 'kept cells' | 'sql' | null = null;

  constructor(
    private readonly db: Db,
    opts: SqliteReportSourceOptions = {},
    private readonly ownsDb = false,
  ) {
    this.chunk = opts.chunk ?? 5000;
    this.useCells = opts.cells ?? true;
  }

  /**
   * A source on its own connection to the gateway's file (the report worker, reports/worker.ts). It reads the
   * gateway's tables and writes only the report cells (cells.ts), each in a short transaction.
   */
  static open(path: string, opts: SqliteReportSourceOptions = {}): SqliteReportSource {
    const db = new Database(path, { fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    return new SqliteReportSource(db, opts, true);
  }

  /**
   * A source on a read-only connection to the gateway's file (the report CLI: it changes nothing, so it
   * uses the kept cells only when they are current).
   */
  static openReadOnly(path: string, opts: SqliteReportSourceOptions = {}): SqliteReportSource {
    return new SqliteReportSource(new Database(path, { readonly: true, fileMustExist: true }), opts, true);
  }

  /** Closes the connection `open` / `openReadOnly` made (one given to the constructor stays open). */
  close(): void {
    if (this.ownsDb) this.db.close();
  }

  /**
   * May a report read the kept cells? A connection that may write brings them up to date first (writes
   * after that belong to a later report, as if this one had started a moment earlier); a read-only one
   * only when no write is waiting to be recomputed.
   */
  cellsReady(clock: ReportClock): boolean {
    if (!this.useCells || !cellsInstalled(this.db)) return false;
    const cont = this.continuityInputs();
    return this.db.readonly
      ? cellsCurrent(this.db, clock, cont)
      : refreshCells(this.db, clock, cont) !== null;
  }

  /** What continuity's kept cells depend on in the registries (cells.ts ContinuityInputs). */
  private continuityInputs(): ContinuityInputs {
    return {
      excludedStaff: this.jsonRows<Staff>('care_staff')
        .filter((s) => EXCLUDED_CATEGORIES.includes(s.category))
        .map((s) => s.staffRef),
      alarmCodes: this.jsonRows<ServiceCode>('care_service_codes')
        .filter((c) => NOT_HOME_CARE_KINDS.includes(c.kind))
        .map((c) => c.code),
    };
  }

  private hasTable(name: string): boolean {
    return (
      this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined
    );
  }

  private jsonRows<T>(table: string): T[] {
    if (!this.hasTable(table)) return [];
    return (this.db.prepare(`SELECT json FROM ${table}`).all() as Array<{ json: string }>).map(
      (r) => JSON.parse(r.json) as T,
    );
  }

  registries(): Promise<Registries> {
    return Promise.resolve({
      providers: this.jsonRows<Provider>('care_providers'),
      areas: this.jsonRows<Area>('care_areas'),
      teams: this.jsonRows<Team>('care_teams'),
      clients: this.jsonRows<Client>('care_clients'),
      staff: this.jsonRows<Staff>('care_staff'),
      serviceCodes: this.jsonRows<ServiceCode>('care_service_codes'),
    });
  }

  async *planned(w: UtcWindow): AsyncIterable<readonly PlannedVisit[]> {
    if (!this.hasTable('care_planned_visits')) return;
    // Plans repeat a few service-code lists: parse each distinct one once (shared, never mutated).
    const codes = new Map<string, PlannedVisit['serviceCodes']>();
    const codesOf = (json: string) => {
      let c = codes.get(json);
      if (c === undefined) codes.set(json, (c = JSON.parse(json) as PlannedVisit['serviceCodes']));
      return c;
    };
    const stmt = this.db.prepare(
      `SELECT plan_version_id, planned_visit_id, client_ref, local_date, local_start, start_ms, planned_minutes,
              service_codes_json, staff_count, staff_refs_json
         FROM care_planned_visits
        WHERE active = 1 AND start_ms >= ? AND start_ms < ? AND NOT (start_ms = ? AND planned_visit_id <= ?)
        ORDER BY start_ms, planned_visit_id LIMIT ?`,
    );
    let after: [number, string] = [w.fromMs, ''];
    for (;;) {
      // The lower bound is the last page's key (not the window's start): each page is one index range.
      const rows = stmt.all(after[0], w.toMs, after[0], after[1], this.chunk) as Array<{
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
      }>;
      if (rows.length === 0) return;
      yield rows.map((r) => ({
        plannedVisitId: r.planned_visit_id,
        clientRef: r.client_ref,
        localDate: r.local_date,
        localStart: r.local_start,
        startMs: r.start_ms,
        plannedMinutes: r.planned_minutes,
        serviceCodes: codesOf(r.service_codes_json),
        staffCount: r.staff_count,
        plannedStaffRefs: JSON.parse(r.staff_refs_json) as string[],
        planVersionId: r.plan_version_id,
      }));
      const last = rows[rows.length - 1]!;
      after = [last.start_ms, last.planned_visit_id];
      await Promise.resolve();
    }
  }

  async *matches(w: UtcWindow): AsyncIterable<readonly Match[]> {
    if (this.hasTable('care_plan_matches')) {
      const rows = this.db
        .prepare(
          `SELECT m.planned_visit_id, m.client_ref, m.status, m.executed_keys_json, m.late_minutes, m.local_date,
                  r.reason_code
             FROM care_plan_matches m LEFT JOIN care_reasons r ON r.planned_visit_id = m.planned_visit_id
            WHERE m.start_ms >= ? AND m.start_ms < ?`,
        )
        .all(w.fromMs, w.toMs) as Array<{
        planned_visit_id: string;
        client_ref: string;
        status: MatchStatus;
        executed_keys_json: string;
        late_minutes: number | null;
        local_date: string;
        reason_code: MissedReasonCode | null;
      }>;
      yield rows.map((r) => ({
        plannedVisitId: r.planned_visit_id,
        clientRef: r.client_ref,
        status: r.status,
        executedKeys: JSON.parse(r.executed_keys_json) as string[],
        lateMinutes: r.late_minutes,
        reasonCode: r.status === 'missed' ? r.reason_code : null,
        localDate: r.local_date,
      }));
      await Promise.resolve();
    }
    if (this.hasTable('care_visit_matches')) {
      const rows = this.db
        .prepare(
          `SELECT executed_key, client_ref, local_date FROM care_visit_matches
            WHERE planned_visit_id IS NULL AND time_ms >= ? AND time_ms < ?`,
        )
        .all(w.fromMs, w.toMs) as Array<{ executed_key: string; client_ref: string; local_date: string }>;
      yield rows.map((r) => ({
        plannedVisitId: null,
        clientRef: r.client_ref,
        status: 'unplanned' as const,
        executedKeys: [r.executed_key],
        lateMinutes: null,
        reasonCode: null,
        localDate: r.local_date,
      }));
    }
  }

  /** The secure-card verifier's per-tap record (secure_taps, only when secure cards are checked). */
  tapAssurance(w: UtcWindow): Promise<TapCount[] | null> {
    if (!this.hasTable('secure_taps')) return Promise.resolve(null);
    const rows = this.db
      .prepare(
        `SELECT reader_id, assurance, count(*) AS taps FROM secure_taps
          WHERE at_ms >= ? AND at_ms < ? AND verdict != 'refused' GROUP BY reader_id, assurance`,
      )
      .all(w.fromMs, w.toMs) as Array<{ reader_id: string; assurance: TapCount['assurance']; taps: number }>;
    return Promise.resolve(
      rows.map((r) => ({ readerId: r.reader_id, assurance: r.assurance, taps: r.taps })),
    );
  }

  /** The continuity measure's cells aggregated in SQL (continuity.ts). */
  async continuityCells(
    w: UtcWindow,
    params: ContinuityCellParams,
    clock: ReportClock,
    clients: readonly string[] | null,
  ): Promise<ContinuityCells> {
    const reg = await this.registries();
    // By key, the last entry of a key winning (as reports/facts.ts Lookup keeps them).
    const clientsByRef = new Map(reg.clients.map((c) => [c.clientRef, c] as const));
    const staffByRef = new Map(reg.staff.map((x) => [x.staffRef, x] as const));
    const kinds = new Map(reg.serviceCodes.map((c) => [c.code, c.kind] as const));
    const contacts = [...clientsByRef.values()].flatMap((c) =>
      c.careContactStaffRef === null ? [] : [[c.clientRef, c.careContactStaffRef] as const],
    );
    // From the cells kept at write time when they give exactly the same (cells.ts).
    const kept = this.cellsReady(clock)
      ? continuityCellsFromStore(this.db, w, params, clock, clients, new Map(contacts))
      : null;
    this.lastContinuityFrom = kept === null ? 'sql' : 'kept cells';
    if (kept !== null) return kept;
    const excludedStaff = [...staffByRef.values()]
      .filter((s) => EXCLUDED_CATEGORIES.includes(s.category))
      .map((s) => s.staffRef);
    return sqliteContinuityCells(this.db, w, params, clock, {
      clients,
      excludedStaff,
      contacts,
      alarmOrMealOnly: (json) =>
        alarmOrMealOnly(JSON.parse(json) as PlannedVisit['serviceCodes'], (code) => kinds.get(code)),
    });
  }

  /** Quality cells of every visit of the window, in SQL (parts.ts). */
  qualityCells(
    w: UtcWindow,
    lateDeliveryHours: number | undefined,
    clients: readonly string[] | null,
  ): Promise<QualityCell[]> {
    return Promise.resolve(
      windowQualityCells(this.db, sqlParts(this.db, w, clients), lateDeliveryHours, 'source'),
    );
  }

  /** Executed vs planned aggregated in SQL (executed.ts). */
  executedCells(
    w: UtcWindow,
    params: ExecutedParams,
    clock: ReportClock,
    clients: readonly string[] | null,
  ): Promise<ExecutedCells> {
    // From the cells kept at write time when they give exactly the same (cells.ts), scoped too.
    const kept = this.cellsReady(clock) ? executedCellsFromStore(this.db, w, params, clock, clients) : null;
    this.lastExecutedFrom = kept === null ? 'sql' : 'kept cells';
    return Promise.resolve(kept ?? sqliteExecutedCells(this.db, w, params, clock, { clients }));
  }

  async *executed(w: UtcWindow): AsyncIterable<readonly ReportVisit[]> {
    // visit_audit is small (people's changes) and has no (reader, visit) index: read it once.
    const audited = new Set(
      (this.db.prepare('SELECT DISTINCT reader_id, visit_id FROM visit_audit').all() as VisitRow[]).map(
        (r) => `${r.reader_id}/${r.visit_id}`,
      ),
    );
    // Visits withdrawn as mistaken taps (gateway/src/corrections): few, read once.
    const withdrawn = new Set(
      (hasWithdrawals(this.db)
        ? (this.db
            .prepare("SELECT DISTINCT reader_id, visit_id FROM visit_corrections WHERE kind = 'withdrawn'")
            .all() as VisitRow[])
        : []
      ).map((r) => `${r.reader_id}/${r.visit_id}`),
    );
    // The link to the planned visit, from the care plan's per-visit matches when they exist.
    const linked = this.hasTable('care_visit_matches');
    const cols = `v.rowid AS rid, v.reader_id, v.visit_id, v.client_ref, v.staff_ref, v.card_ref, v.group_id, v.state,
              v.started_at_ms, v.ended_at_ms, v.end_reason, v.time_quality, v.anomalies_json, v.updated_at_ms,
              (SELECT max(e.received_at_ms) FROM events e
                WHERE e.reader_id = v.reader_id AND e.seq IN (v.start_seq, v.end_seq)) AS received_at_ms,
              ${linked ? 'vm.planned_visit_id' : 'NULL'} AS planned_visit_id, ${linked ? 'vm.executed_key' : 'NULL'} AS vm_key
         FROM visits v
         ${linked ? "LEFT JOIN care_visit_matches vm ON vm.executed_key = v.reader_id || '/' || v.visit_id" : ''}`;
    const row = (r: VisitRow) =>
      toVisit(
        r,
        audited.size > 0 && audited.has(`${r.reader_id}/${r.visit_id}`),
        linked,
        withdrawn.size > 0 && withdrawn.has(`${r.reader_id}/${r.visit_id}`),
      );
    // Visits that started in the window: the visits_started index, in (start, rowid) order, page by page.
    const stmt = this.db.prepare(
      `SELECT ${cols}
        WHERE v.started_at_ms >= ? AND v.started_at_ms < ? AND NOT (v.started_at_ms = ? AND v.rowid <= ?)
        ORDER BY v.started_at_ms, v.rowid LIMIT ?`,
    );
    let after: [number, number] = [w.fromMs, 0];
    for (;;) {
      // The lower bound is the last page's key (not the window's start): each page is one index range.
      const rows = stmt.all(after[0], w.toMs, after[0], after[1], this.chunk) as VisitRow[];
      if (rows.length === 0) break;
      yield rows.map(row);
      const last = rows[rows.length - 1]!;
      after = [last.started_at_ms!, last.rid];
      await new Promise<void>((resolve) => setImmediate(resolve)); // let the gateway work between pages
    }
    // Stops without a start, placed by their end (rare: a start tap never arrived).
    const stops = this.db
      .prepare(`SELECT ${cols} WHERE v.started_at_ms IS NULL AND v.ended_at_ms >= ? AND v.ended_at_ms < ?`)
      .all(w.fromMs, w.toMs) as VisitRow[];
    if (stops.length) yield stops.map(row);
  }
}

function toVisit(r: VisitRow, audited: boolean, linked: boolean, withdrawn: boolean): ReportVisit {
  return toReportVisit(r, { audited, linked, withdrawn });
}
