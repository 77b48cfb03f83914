/**
 * Executed vs planned from cells kept at write time: per local day (in one zone), the occasions per
 * client and planned service-code list, the per-visit differences by value, the planned visits per client
 * and list, and the data-quality counts per reader and client, so a report over 18 months reads ≈ one row
 * per client and day instead of every visit and planned visit.
 *
 * Keeping them current:
 * - every write that can change a cell marks its UTC day in `report_dirty`, in the writer's transaction,
 *   by SQLite triggers (`reports-002` on visits and visit_audit; `reports-003` on the care plan's and the
 *   corrections' tables): one `INSERT OR IGNORE` of a small key per write, no lookup on the ingest's tables;
 * - before a report, `refreshCells` takes the marks (moved to `report_dirty_taken` in one short
 *   transaction, so a crash never loses one), recomputes the local days they touch (and one day either
 *   side: a double-staffed occasion or a link can reach into the next day) with the SQL of
 *   executed.ts, in a read snapshot into temporary tables, then swaps them in with a short write
 *   transaction. A write after the marks were taken marks again and is recomputed next time;
 * - the first refresh (no zone recorded) builds every day with data.
 *
 * Window rules that depend on the report's range are kept exact: an occasion's planned visit counts only
 * when it starts in the range (the cell keeps its local day, `pvday`); a planned visit's match counts only
 * when it starts in the range (`mday`). An occasion whose visits lie on several local days (a double-staffed
 * pair across midnight, a stop without a start that ended the next day, a visit the matching has not linked
 * yet, found through plan matches nearby) keeps the span `lo..hi`; when a report's range cuts through one,
 * the report is computed on the fly instead (executed.ts), as it is for another zone, another
 * late-delivery threshold, marks a read-only connection cannot take, or a scope over days with a `mixed`
 * cell (an occasion with visits of several clients or linked to another client's planned visit, a planned
 * visit matched under another client: a scope would split them). Other scopes read the scope's clients'
 * cells and their per-client differences.
 *
 * Assumed (true of how visits are formed): a double-staffed group's visits start within a day of each
 * other, and a plan match lists visits within a day of its start.
 */
import type { Db } from '../db.js';
import { DIFF_BINS, diffRanks } from '../../report-rules.js';
import {
  int,
  LATE,
  localDayExpr,
  nearLink,
  recvOf,
  sqlParts,
  toQualityCells,
  withdrawnExpr,
} from './parts.js';
import { clearContinuityRows, continuityCellRows, fillContinuityRows } from './continuity.js';
import { dateOfDayNo, dayNoOf, type ReportClock } from '../../report-time.js';
import type {
  ContinuityCellParams,
  ContinuityCells,
  ContinuityClientCell,
  ContinuityDayCell,
  ExecutedCell,
  ExecutedCells,
  ExecutedParams,
  PlannedCell,
  ServiceCodes,
  UtcWindow,
} from '../../report-types.js';

const DAY = 86_400_000;
/** Days recomputed per transaction pair (a full build runs chunk by chunk). */
const CHUNK_DAYS = 31;
/** The late-delivery threshold the quality cells count (the report's default, 24 hours). */
const CELL_LATE_MS = 24 * 3_600_000;
/** The counted hours continuity's cells keep (the national measure's 07:00-22:00), minutes of the day. */
const CELL_COUNT_FROM = 7 * 60;
const CELL_COUNT_TO = 22 * 60;

/** The cell tables and the triggers on the gateway's own tables (store migrations, `reports-002`). */
export const CELL_TABLES_SQL = `
  CREATE TABLE report_dirty (utc_day INTEGER PRIMARY KEY) WITHOUT ROWID;
  CREATE TABLE report_dirty_taken (utc_day INTEGER PRIMARY KEY) WITHOUT ROWID;
  CREATE TABLE report_cell_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE report_exec_cells (day INTEGER NOT NULL, client_ref TEXT, codes TEXT, pvday INTEGER,
    lo INTEGER NOT NULL, hi INTEGER NOT NULL, occasions INTEGER NOT NULL, without_minutes INTEGER NOT NULL,
    length_ms INTEGER NOT NULL, staff_ms INTEGER NOT NULL);
  CREATE INDEX report_exec_cells_day ON report_exec_cells (day);
  CREATE INDEX report_exec_cells_span ON report_exec_cells (lo, hi) WHERE lo <> hi;
  CREATE TABLE report_exec_diffs (day INTEGER NOT NULL, pvday INTEGER NOT NULL, d REAL NOT NULL,
    n INTEGER NOT NULL, length_ms INTEGER NOT NULL, planned_minutes REAL NOT NULL);
  CREATE INDEX report_exec_diffs_day ON report_exec_diffs (day);
  CREATE TABLE report_plan_cells (day INTEGER NOT NULL, local_date TEXT NOT NULL, mday INTEGER,
    client_ref TEXT NOT NULL, codes TEXT NOT NULL, visits INTEGER NOT NULL, minutes REAL NOT NULL,
    matched INTEGER NOT NULL, late INTEGER NOT NULL, understaffed INTEGER NOT NULL, pending INTEGER NOT NULL,
    missed INTEGER NOT NULL, r_cancelled INTEGER NOT NULL, r_hospital INTEGER NOT NULL,
    r_staff_ill INTEGER NOT NULL, r_other INTEGER NOT NULL, r_none INTEGER NOT NULL);
  CREATE INDEX report_plan_cells_day ON report_plan_cells (day);
  CREATE TABLE report_quality_cells (day INTEGER NOT NULL, reader_id TEXT NOT NULL, client_ref TEXT,
    class INTEGER NOT NULL, min_start INTEGER NOT NULL, visits INTEGER NOT NULL, auto_closed INTEGER NOT NULL,
    corrected INTEGER NOT NULL, unknown_card INTEGER NOT NULL, uncorrected INTEGER NOT NULL,
    late INTEGER NOT NULL, incomplete INTEGER NOT NULL, withdrawn INTEGER NOT NULL);
  CREATE INDEX report_quality_cells_day ON report_quality_cells (day);
  ${earlyTriggers()}
`;

/**
 * Continuity's cells (`reports-005`): per local day, client and span, the home-care occasions, the
 * double-staffed ones, the counted visits, the staff met in the counted hours (a JSON object: distinct staff
 * over 14 days are not a sum of days) with 2 x their counted visits, plus 1 for a staff member who was an
 * occasion's first counted staff (`first` is no longer used: '[]'); and the quality counts of the visits
 * the measure uses per day, reader and client.
 */
export const CONTINUITY_CELL_TABLES_SQL = `
  CREATE TABLE report_cont_cells (day INTEGER NOT NULL, client_ref TEXT NOT NULL, lo INTEGER NOT NULL,
    hi INTEGER NOT NULL, mixed INTEGER NOT NULL, occasions INTEGER NOT NULL, double_staffed INTEGER NOT NULL,
    counted INTEGER NOT NULL, staff TEXT NOT NULL, first TEXT NOT NULL);
  CREATE INDEX report_cont_cells_day ON report_cont_cells (day);
  CREATE INDEX report_cont_cells_span ON report_cont_cells (lo, hi) WHERE lo <> hi;
  CREATE TABLE report_cont_quality (day INTEGER NOT NULL, reader_id TEXT NOT NULL, client_ref TEXT,
    ord INTEGER NOT NULL, visits INTEGER NOT NULL, auto_closed INTEGER NOT NULL, corrected INTEGER NOT NULL,
    unknown_card INTEGER NOT NULL, uncorrected INTEGER NOT NULL, late INTEGER NOT NULL,
    incomplete INTEGER NOT NULL, withdrawn INTEGER NOT NULL);
  CREATE INDEX report_cont_quality_day ON report_cont_quality (day);
`;

/**
 * `reports-006`, scoped executed vs planned from the cells: the per-visit differences per client too (the
 * unscoped ones stay summed over clients, far fewer rows for the median's walk), and a `mixed` mark on an
 * occasion a scope would change (a double-staffed group with visits of several clients or a visit without
 * one, or one linked to another client's planned visit) and on planned visits matched under another client.
 * A scoped report over days with a mixed cell is computed on the fly. The cells are rebuilt (no zone).
 */
export const EXEC_SCOPE_SQL = `
  ALTER TABLE report_exec_cells ADD COLUMN mixed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE report_plan_cells ADD COLUMN mixed INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX report_exec_cells_mixed ON report_exec_cells (day) WHERE mixed;
  CREATE INDEX report_plan_cells_mixed ON report_plan_cells (day) WHERE mixed;
  CREATE TABLE report_exec_client_diffs (day INTEGER NOT NULL, pvday INTEGER NOT NULL, client_ref TEXT,
    d REAL NOT NULL, n INTEGER NOT NULL, length_ms INTEGER NOT NULL, planned_minutes REAL NOT NULL);
  CREATE INDEX report_exec_client_diffs_day ON report_exec_client_diffs (day);
  DELETE FROM report_cell_meta WHERE key = 'zone';
`;

/** The triggers on the gateway's own tables (visits, visit_audit). */
function earlyTriggers(): string {
  return `
  ${markOn('visits', 'INSERT', ['NEW'], (r) => `coalesce(${r}.started_at_ms, ${r}.ended_at_ms)`)}
  ${markOn('visits', 'UPDATE', ['NEW', 'OLD'], (r) => `coalesce(${r}.started_at_ms, ${r}.ended_at_ms)`)}
  ${markOn('visits', 'DELETE', ['OLD'], (r) => `coalesce(${r}.started_at_ms, ${r}.ended_at_ms)`)}
  ${markOn('visit_audit', 'INSERT', ['NEW'], visitTime)}`;
}

/** Triggers on the care plan's and the corrections' tables (`reports-003`, applied after their lists). */
export const CELL_TRIGGERS_LATE_SQL = `
  ${markOn('visit_corrections', 'INSERT', ['NEW'], visitTime)}
  ${(['INSERT', 'UPDATE', 'DELETE'] as const)
    .map(
      (op) => `
  ${markOn('care_planned_visits', op, rowsOf(op), (r) => `${r}.start_ms`)}
  ${markOn('care_plan_matches', op, rowsOf(op), (r) => `${r}.start_ms`)}
  ${markOn('care_visit_matches', op, rowsOf(op), (r) => `${r}.time_ms`)}
  ${markOn('care_reasons', op, rowsOf(op), (r) => `(SELECT start_ms FROM care_plan_matches WHERE planned_visit_id = ${r}.planned_visit_id)`)}`,
    )
    .join('\n')}
`;

/**
 * `reports-004`: every marking trigger again. The first ones (reports-002/003, on main for a few minutes)
 * used `INSERT OR IGNORE`, which the visits' upsert turns into an abort (see `markOn`).
 */
export function recreateTriggersSql(): string {
  return `${TRIGGERS.map((t) => `DROP TRIGGER IF EXISTS ${t};`).join('\n')}
  ${earlyTriggers()}
  ${CELL_TRIGGERS_LATE_SQL}`;
}

/** Every trigger the cells need: without all of them a change could go unmarked, so cells are not used. */
const TRIGGERS = [
  ...['INSERT', 'UPDATE', 'DELETE'].map((op) => `report_mark_visits_${op.toLowerCase()}`),
  'report_mark_visit_audit_insert',
  'report_mark_visit_corrections_insert',
  ...['care_planned_visits', 'care_plan_matches', 'care_visit_matches', 'care_reasons'].flatMap((t) =>
    ['insert', 'update', 'delete'].map((op) => `report_mark_${t}_${op}`),
  ),
];

function rowsOf(op: 'INSERT' | 'UPDATE' | 'DELETE'): Array<'NEW' | 'OLD'> {
  return op === 'INSERT' ? ['NEW'] : op === 'DELETE' ? ['OLD'] : ['NEW', 'OLD'];
}

function visitTime(r: string): string {
  return `(SELECT coalesce(started_at_ms, ended_at_ms) FROM visits WHERE reader_id = ${r}.reader_id AND visit_id = ${r}.visit_id)`;
}

/**
 * A trigger marking the UTC day of `at(row)` for each of `rows` (nothing when the time is unknown). Not
 * `INSERT OR IGNORE`: inside a trigger the outer statement's conflict handling wins (the visits' upsert,
 * `ON CONFLICT DO UPDATE`, made it abort on a day already marked), so the mark is inserted only when absent.
 */
function markOn(
  table: string,
  op: 'INSERT' | 'UPDATE' | 'DELETE',
  rows: ReadonlyArray<'NEW' | 'OLD'>,
  at: (row: string) => string,
): string {
  const body = rows
    .map((r, i) =>
      i === 0
        ? `INSERT INTO report_dirty SELECT x / ${DAY} FROM (SELECT ${at(r)} AS x)
             WHERE x IS NOT NULL AND NOT EXISTS (SELECT 1 FROM report_dirty WHERE utc_day = x / ${DAY});`
        : // the old day, only when it differs (a visit moved to another day, a plan visit moved)
          `INSERT INTO report_dirty SELECT x / ${DAY} FROM (SELECT ${at(r)} AS x)
             WHERE x IS NOT NULL AND x / ${DAY} IS NOT (${at(rows[0]!)}) / ${DAY}
               AND NOT EXISTS (SELECT 1 FROM report_dirty WHERE utc_day = x / ${DAY});`,
    )
    .join(' ');
  return `CREATE TRIGGER report_mark_${table}_${op.toLowerCase()} AFTER ${op} ON ${table} BEGIN ${body} END;`;
}

const hasAll = (db: Db, type: string, names: readonly string[]): boolean =>
  (
    db
      .prepare(
        `SELECT count(*) AS n FROM sqlite_master WHERE type = ? AND name IN (SELECT value FROM json_each(?))`,
      )
      .get(type, JSON.stringify(names)) as { n: number }
  ).n === names.length;

/** Are the cells and every trigger that keeps them current in this database? */
export function cellsInstalled(db: Db): boolean {
  return (
    hasAll(db, 'table', [
      'report_dirty',
      'report_exec_cells',
      'report_cell_meta',
      'report_cont_cells',
      'report_exec_client_diffs',
    ]) && hasAll(db, 'trigger', TRIGGERS)
  );
}

export interface RefreshResult {
  /** Local days recomputed. */
  days: number;
  ms: number;
}

/**
 * What continuity's cells depend on beyond the marked tables, from the registries: the staff not counted
 * (home nursing) and the service codes of safety alarms and meal deliveries. When they change, continuity's
 * cells are rebuilt (all days); the client registry (age, absences, named contact) is applied at report time.
 */
export interface ContinuityInputs {
  excludedStaff: readonly string[];
  alarmCodes: readonly string[];
}

/** `v`: the cells' format (2: first counted staff folded into the staff object); a new one rebuilds them. */
const fingerprintOf = (c: ContinuityInputs): string =>
  JSON.stringify({ v: 2, excludedStaff: [...c.excludedStaff].sort(), alarmCodes: [...c.alarmCodes].sort() });

const metaOf = (db: Db, key: string): string | undefined =>
  db.prepare('SELECT value FROM report_cell_meta WHERE key = ?').pluck().get(key) as string | undefined;

/** The UTC days from the first to the last day with visits or planned visits (null: none). */
function dataSpan(db: Db): [number, number] | null {
  const span = db
    .prepare(
      `SELECT min(x), max(x) FROM (
         SELECT min(coalesce(started_at_ms, ended_at_ms)) AS x FROM visits
         UNION ALL SELECT max(coalesce(started_at_ms, ended_at_ms)) FROM visits
         UNION ALL SELECT min(start_ms) FROM care_planned_visits
         UNION ALL SELECT max(start_ms) FROM care_planned_visits)`,
    )
    .raw()
    .get() as [number | null, number | null];
  return span[0] === null || span[1] === null ? null : [Math.floor(span[0] / DAY), Math.floor(span[1] / DAY)];
}

/** The local days a set of UTC days overlaps, and one either side, in order. */
function localDaysOf(clock: ReportClock, utcDays: Iterable<number>): number[] {
  const days = new Set<number>();
  for (const u of utcDays) {
    const first = Math.floor((u * DAY + clock.offsetMs(u * DAY)) / DAY);
    const last = Math.floor((u * DAY + DAY - 1 + clock.offsetMs(u * DAY + DAY - 1)) / DAY);
    for (let d = first - 1; d <= last + 1; d++) days.add(d);
  }
  return [...days].sort((a, b) => a - b);
}

/** Contiguous runs of sorted days, at most CHUNK_DAYS long. */
function* runsOf(sorted: readonly number[]): Iterable<[number, number]> {
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1 && j + 1 - i < CHUNK_DAYS) j++;
    yield [sorted[i]!, sorted[j]!];
    i = j + 1;
  }
}

/**
 * Brings the cells up to date for `clock`'s zone: recomputes the local days the marks touch (all days
 * with data on the first run, or when `rebuild`), and continuity's cells of every day when `cont` changed
 * since they were made. Needs a connection that may write. Returns null when the cells are kept for another
 * zone (they are then left alone: reports in this zone compute on the fly).
 */
export function refreshCells(
  db: Db,
  clock: ReportClock,
  cont: ContinuityInputs,
  rebuild = false,
): RefreshResult | null {
  const t0 = performance.now();
  const zone = metaOf(db, 'zone');
  if (zone !== undefined && zone !== clock.timeZone && !rebuild) return null;
  const fingerprint = fingerprintOf(cont);
  const contAll = zone === undefined || rebuild || metaOf(db, 'continuity') !== fingerprint;
  // Take the marks (a short write transaction); the first build marks every day with data.
  db.transaction(() => {
    if (zone === undefined || rebuild) {
      db.prepare("INSERT OR REPLACE INTO report_cell_meta VALUES ('zone', ?)").run(clock.timeZone);
      db.exec(`DELETE FROM report_exec_cells; DELETE FROM report_exec_diffs; DELETE FROM report_plan_cells;
               DELETE FROM report_quality_cells; DELETE FROM report_exec_client_diffs;`);
      const span = dataSpan(db);
      if (span !== null)
        db.prepare(
          `WITH RECURSIVE d(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM d WHERE x < ?)
           INSERT OR IGNORE INTO report_dirty SELECT x FROM d`,
        ).run(span[0], span[1]);
    }
    db.exec(
      'INSERT OR IGNORE INTO report_dirty_taken SELECT utc_day FROM report_dirty; DELETE FROM report_dirty;',
    );
  }).immediate();
  const taken = db.prepare('SELECT utc_day FROM report_dirty_taken').pluck().all() as number[];
  const marked = localDaysOf(clock, taken);
  for (const [d0, d1] of runsOf(marked)) recompute(db, clock, d0, d1, { exec: true, cont: true }, cont);
  if (contAll) {
    // Continuity's cells of every other day with data; the fingerprint is written once all are made.
    const span = dataSpan(db);
    const all = span === null ? [] : localDaysOf(clock, range(span[0], span[1]));
    const done = new Set(marked);
    for (const [d0, d1] of runsOf(all.filter((d) => !done.has(d))))
      recompute(db, clock, d0, d1, { exec: false, cont: true }, cont);
    db.transaction(() => {
      const lo = all[0] ?? 0;
      const hi = all[all.length - 1] ?? -1;
      db.prepare('DELETE FROM report_cont_cells WHERE day < ? OR day > ?').run(lo, hi);
      db.prepare('DELETE FROM report_cont_quality WHERE day < ? OR day > ?').run(lo, hi);
      db.prepare("INSERT OR REPLACE INTO report_cell_meta VALUES ('continuity', ?)").run(fingerprint);
    }).immediate();
  }
  db.transaction(() => {
    const del = db.prepare('DELETE FROM report_dirty_taken WHERE utc_day = ?');
    for (const u of taken) del.run(u);
  }).immediate();
  return { days: contAll ? Math.max(marked.length, 0) : marked.length, ms: performance.now() - t0 };
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/**
 * No marks waiting (taken or not) and the cells made for this zone and these continuity inputs: the
 * cells are current (a read-only connection may use them).
 */
export function cellsCurrent(db: Db, clock: ReportClock, cont: ContinuityInputs): boolean {
  return (
    metaOf(db, 'zone') === clock.timeZone &&
    metaOf(db, 'continuity') === fingerprintOf(cont) &&
    db.prepare('SELECT 1 FROM report_dirty UNION ALL SELECT 1 FROM report_dirty_taken LIMIT 1').get() ===
      undefined
  );
}

const EXEC_TEMP = ['exec_cells', 'exec_diffs', 'exec_client_diffs', 'plan_cells', 'quality_cells'] as const;
const CONT_TEMP = ['cont_cells', 'cont_quality'] as const;

/**
 * Recomputes the cells of local days [d0, d1] (executed vs planned's, continuity's, or both): computed in
 * a read snapshot, swapped in by a short write.
 */
function recompute(
  db: Db,
  clock: ReportClock,
  d0: number,
  d1: number,
  kinds: { exec: boolean; cont: boolean },
  cont: ContinuityInputs,
): void {
  const TEMP = [...(kinds.exec ? EXEC_TEMP : []), ...(kinds.cont ? CONT_TEMP : [])];
  for (const t of TEMP)
    db.exec(`CREATE TEMP TABLE IF NOT EXISTS rc_${t} AS SELECT * FROM main.report_${t} WHERE 0;
             DELETE FROM temp.rc_${t};`);
  const w: UtcWindow = clock.window(dateOfDayNo(d0), dateOfDayNo(d1));
  // Offsets for instants near the days (linked planned visits and matches may lie a day or more away).
  const wide: UtcWindow = { fromMs: w.fromMs - 400 * DAY, toMs: w.toMs + 400 * DAY };
  const dayOf = (col: string) => localDayExpr(clock, wide, col);
  const parts = sqlParts(db, wide, null);
  const wd = withdrawnExpr(db) ?? '0';
  const counts = wd === '0' ? '' : ` AND NOT ${wd}`;
  const { corrected } = parts;
  const W0 = int(w.fromMs);
  const W1 = int(w.toMs);
  const N0 = int(w.fromMs - DAY);
  const N1 = int(w.toMs + DAY);
  const { link, unlinked, vmJoin } = nearLink();
  const len = `(CASE WHEN v.started_at_ms IS NULL OR v.ended_at_ms IS NULL OR (v.end_reason IS 'auto-close' AND NOT ${corrected})
      THEN NULL ELSE max(0, v.ended_at_ms - v.started_at_ms) END)`;
  const planJoin = (pv: string) =>
    `LEFT JOIN care_planned_visits p ON p.planned_visit_id = ${pv} AND p.active = 1`;
  const pvday = `CASE WHEN p.planned_visit_id IS NOT NULL THEN ${dayOf('p.start_ms')} END`;
  // An occasion of a client linked to another client's planned visit (a scope could drop the link).
  const otherPlan = `(p.planned_visit_id IS NOT NULL AND o.client_ref IS NOT NULL AND p.client_ref IS NOT o.client_ref)`;

  db.exec('BEGIN');
  try {
    if (kinds.exec) {
      db.exec(
        'CREATE TEMP TABLE IF NOT EXISTS rc_occ (day INTEGER, lo INTEGER, hi INTEGER, client_ref TEXT, codes TEXT, pvday INTEGER, planned_minutes REAL, length_ms INTEGER, staff_ms INTEGER, mixed INTEGER); DELETE FROM temp.rc_occ;',
      );
      // Visits alone (a visit the matching has not linked yet may reach a day either side).
      db.prepare(
        `INSERT INTO temp.rc_occ
       SELECT o.day, o.day - o.u, o.day + o.u, o.client_ref, p.service_codes_json, ${pvday}, p.planned_minutes,
              o.length_ms, o.staff_ms, ${otherPlan}
         FROM (SELECT *, u0 AND pv IS NOT NULL AS u FROM (
               SELECT ${dayOf('v.started_at_ms')} AS day, ${unlinked} AS u0, v.client_ref, ${link} AS pv,
                      CASE WHEN ${len} IS NULL THEN NULL ELSE v.ended_at_ms - v.started_at_ms END AS length_ms,
                      ${len} AS staff_ms
                 FROM visits v ${vmJoin}
                WHERE v.started_at_ms >= ${W0} AND v.started_at_ms < ${W1} AND v.group_id IS NULL${counts})) o
         ${planJoin('o.pv')}`,
      ).run();
      // Double staffing: each group whole (its visits within a day of the range), kept when it starts in it.
      db.prepare(
        `INSERT INTO temp.rc_occ
       SELECT o.day, o.lo, o.hi, o.client_ref, p.service_codes_json, ${pvday}, p.planned_minutes, o.length_ms, o.staff_ms,
              o.clients OR ${otherPlan}
         FROM (SELECT ${dayOf('min(g.s)')} AS day, count(DISTINCT g.client_ref) + (count(g.client_ref) < count(*)) > 1 AS clients, min(g.gday) - max(g.u AND g.pv IS NOT NULL) AS lo,
                      max(g.gday) + max(g.u AND g.pv IS NOT NULL) AS hi,
                      substr(min(CASE WHEN g.client_ref IS NOT NULL
                                 THEN printf('%d%020d%020d', g.s IS NULL, coalesce(g.s, 0), g.rid) || g.client_ref END), 42) AS client_ref,
                      min(g.pv) AS pv,
                      CASE WHEN count(g.len) = count(*) THEN max(g.e) - min(g.s) END AS length_ms,
                      CASE WHEN count(g.len) = count(*) THEN sum(g.len) END AS staff_ms
                 FROM (SELECT v.reader_id, v.group_id, v.rowid AS rid, v.client_ref, v.started_at_ms AS s,
                              v.ended_at_ms AS e, ${len} AS len, ${link} AS pv, ${unlinked} AS u,
                              ${dayOf('coalesce(v.started_at_ms, v.ended_at_ms)')} AS gday
                         FROM visits v ${vmJoin}
                        WHERE v.started_at_ms >= ${N0} AND v.started_at_ms < ${N1} AND v.group_id IS NOT NULL${counts}
                       UNION ALL
                       SELECT v.reader_id, v.group_id, v.rowid, v.client_ref, v.started_at_ms, v.ended_at_ms, ${len}, ${link},
                              ${unlinked}, ${dayOf('v.ended_at_ms')}
                         FROM visits v ${vmJoin}
                        WHERE v.started_at_ms IS NULL AND v.ended_at_ms >= ${N0} AND v.ended_at_ms < ${N1}
                          AND v.group_id IS NOT NULL${counts}) g
                GROUP BY g.reader_id, g.group_id
               HAVING min(g.s) >= ${W0} AND min(g.s) < ${W1}) o
         ${planJoin('o.pv')}`,
      ).run();
      db.exec(`INSERT INTO temp.rc_exec_cells
             SELECT day, client_ref, codes, pvday, min(lo), max(hi), count(*),
                    sum(length_ms IS NULL OR staff_ms IS NULL),
                    coalesce(sum(CASE WHEN length_ms IS NOT NULL AND staff_ms IS NOT NULL THEN length_ms END), 0),
                    coalesce(sum(CASE WHEN length_ms IS NOT NULL AND staff_ms IS NOT NULL THEN staff_ms END), 0),
                    max(mixed)
               FROM temp.rc_occ GROUP BY day, client_ref, codes, pvday;
             INSERT INTO temp.rc_exec_diffs
             SELECT day, pvday, length_ms / 60000.0 - planned_minutes AS d, count(*), sum(length_ms), total(planned_minutes)
               FROM temp.rc_occ WHERE codes IS NOT NULL AND length_ms IS NOT NULL GROUP BY day, pvday, d;
             INSERT INTO temp.rc_exec_client_diffs
             SELECT day, pvday, client_ref, length_ms / 60000.0 - planned_minutes AS d, count(*), sum(length_ms),
                    total(planned_minutes)
               FROM temp.rc_occ WHERE codes IS NOT NULL AND length_ms IS NOT NULL GROUP BY day, pvday, client_ref, d;`);
      // Planned visits by their start's local day, with the local day of their match's start.
      db.prepare(
        `INSERT INTO temp.rc_plan_cells
       SELECT ${dayOf('p.start_ms')}, p.local_date, CASE WHEN m.planned_visit_id IS NOT NULL THEN ${dayOf('m.start_ms')} END,
              p.client_ref, p.service_codes_json, count(*), total(p.planned_minutes),
              sum(m.status IS 'matched'), sum(m.status IS 'late'), sum(m.status IS 'understaffed'),
              sum(m.status IS NULL OR m.status IN ('pending', 'unplanned')), sum(m.status IS 'missed'),
              sum(m.status IS 'missed' AND r.reason_code IS 'client-cancelled'),
              sum(m.status IS 'missed' AND r.reason_code IS 'client-in-hospital'),
              sum(m.status IS 'missed' AND r.reason_code IS 'staff-ill'),
              sum(m.status IS 'missed' AND r.reason_code IS 'other'),
              sum(m.status IS 'missed' AND (r.reason_code IS NULL OR r.reason_code = '')),
              max(m.planned_visit_id IS NOT NULL AND m.client_ref IS NOT p.client_ref)
         FROM care_planned_visits p
         LEFT JOIN care_plan_matches m ON m.planned_visit_id = p.planned_visit_id
         LEFT JOIN care_reasons r ON r.planned_visit_id = m.planned_visit_id
        WHERE p.active = 1 AND p.start_ms >= ${W0} AND p.start_ms < ${W1}
        GROUP BY 1, 2, 3, 4, 5`,
      ).run();
      // Data quality per visit: started in the days, or a stop without a start that ended in them.
      const cls = `(CASE WHEN ${wd} THEN 4 + (v.started_at_ms IS NULL) ELSE (v.group_id IS NOT NULL) * 2 + (v.started_at_ms IS NULL) END)`;
      const cols = (day: string) => `${day} AS day, v.reader_id, v.client_ref, ${cls} AS class,
        coalesce(v.started_at_ms, 0) AS s, ${wd} AS w,
        v.end_reason IS 'auto-close' AND NOT ${corrected} AS auto_closed, ${corrected} AS corrected,
        v.staff_ref IS NULL AS unknown_card, v.time_quality IS 'uncorrected' AS uncorrected,
        v.started_at_ms IS NULL OR v.ended_at_ms IS NULL AS incomplete,
        coalesce(v.ended_at_ms, v.started_at_ms) AS at, v.start_seq, v.end_seq`;
      db.prepare(
        `INSERT INTO temp.rc_quality_cells
       SELECT day, reader_id, client_ref, class, min(s), sum(NOT w), sum(auto_closed AND NOT w),
              sum(corrected AND NOT w), sum(unknown_card AND NOT w), sum(uncorrected AND NOT w),
              sum(${LATE.replace('recv', recvOf('x'))} AND NOT w), sum(incomplete AND NOT w), sum(w)
         FROM (SELECT ${cols(dayOf('v.started_at_ms'))} FROM visits v
                WHERE v.started_at_ms >= ${W0} AND v.started_at_ms < ${W1}
               UNION ALL
               SELECT ${cols(dayOf('v.ended_at_ms'))} FROM visits v
                WHERE v.started_at_ms IS NULL AND v.ended_at_ms >= ${W0} AND v.ended_at_ms < ${W1}) x
        GROUP BY reader_id, client_ref, day, class`,
      ).run({ lateMs: CELL_LATE_MS });
    }
    if (kinds.cont) {
      // Continuity: the measure's rows for whole days (continuity.ts), added up per day and client.
      fillContinuityRows(
        db,
        { w, cells: true },
        { countFromMinute: CELL_COUNT_FROM, countToMinute: CELL_COUNT_TO },
        clock,
        { ...cont, clients: null, contacts: [], alarmOrMealOnly: () => false },
      );
      try {
        continuityCellRows(db, 'temp.rc_cont_cells', 'temp.rc_cont_quality', CELL_LATE_MS);
      } finally {
        clearContinuityRows(db);
      }
    }
    db.exec('COMMIT');
  } catch (e) {
    db.exec('ROLLBACK');
    throw e;
  }
  // Swap them in (a short write).
  db.transaction(() => {
    for (const t of TEMP)
      db.exec(`DELETE FROM main.report_${t} WHERE day BETWEEN ${int(d0)} AND ${int(d1)};
               INSERT INTO main.report_${t} SELECT * FROM temp.rc_${t};
               DELETE FROM temp.rc_${t};`);
  }).immediate();
  if (kinds.exec) db.exec('DELETE FROM temp.rc_occ');
}

/**
 * Executed vs planned's cells for local dates [fromDate, toDate] from the kept cells (the caller checked
 * they are kept for the clock's zone and current: SqliteReportSource.cellsReady), limited to `clients`
 * (null: all), or null when they cannot give exactly the on-the-fly answer (another late-delivery
 * threshold, an occasion across the range's edge, or, for a scope, a mixed cell in the range: an occasion
 * or a planned visit a scope would change).
 */
export function executedCellsFromStore(
  db: Db,
  w: UtcWindow,
  params: ExecutedParams,
  clock: ReportClock,
  clients: readonly string[] | null = null,
): ExecutedCells | null {
  if ((params.lateDeliveryHours ?? 24) * 3_600_000 !== CELL_LATE_MS) return null;
  const d0 = dayNoOf(params.fromDate);
  const d1 = dayNoOf(params.toDate);
  // The window must be exactly those local days (it is: ReportClock.window).
  if (
    w.fromMs !== clock.startOfDay(params.fromDate) ||
    w.toMs !== clock.window(params.fromDate, params.toDate).toMs
  )
    return null;
  const across = db
    .prepare(
      `SELECT 1 FROM report_exec_cells WHERE lo <> hi AND ((lo < @d0 AND hi >= @d0) OR (lo <= @d1 AND hi > @d1)) LIMIT 1`,
    )
    .get({ d0, d1 });
  if (across !== undefined) return null;
  if (
    clients !== null &&
    db
      .prepare(
        `SELECT 1 FROM report_exec_cells WHERE mixed AND day BETWEEN @d0 AND @d1
         UNION ALL SELECT 1 FROM report_plan_cells WHERE mixed AND day BETWEEN @d0 AND @d1 LIMIT 1`,
      )
      .get({ d0, d1 }) !== undefined
  )
    return null;
  // A scope: the scope's clients' cells (a cell of no client is in none), their own differences.
  const scope = clients === null ? '' : ' AND client_ref IN (SELECT value FROM json_each(@clients))';
  const diffsTable = clients === null ? 'report_exec_diffs' : 'report_exec_client_diffs';

  const codesCache = new Map<string, ServiceCodes>();
  const codesOf = (json: string): ServiceCodes => {
    let c = codesCache.get(json);
    if (c === undefined) codesCache.set(json, (c = JSON.parse(json) as ServiceCodes));
    return c;
  };
  const dates = new Map<number, string>();
  const dateOf = (day: number) => {
    let d = dates.get(day);
    if (d === undefined) dates.set(day, (d = dateOfDayNo(day)));
    return d;
  };
  // A long range reads most of the cells: one pass over the table beats an index probe per row.
  const scan = d1 - d0 > 62 ? 'NOT INDEXED' : '';
  const inRange = (col: string) => `(${col} IS NOT NULL AND ${col} BETWEEN @d0 AND @d1)`;
  const range = { d0, d1, ...(clients === null ? {} : { clients: JSON.stringify(clients) }) };

  // Without a split by service code every figure the report adds from a cell is a whole number, so the
  // cells of one period can be added up here first (one per period, client and code list, the period's
  // first day standing for it): the same sums, far fewer cells for JavaScript. With a split, per day.
  // The period of a day is found by comparing it with the periods' first days (a nested CASE, a few
  // integer or text comparisons per row): cheaper than a date function per row.
  const byPeriod = !params.groupBy.includes('serviceCode') && params.period !== 'day';
  const starts = byPeriod ? periodStarts(params.period, d0, d1) : [];
  // (Never a bare number: GROUP BY 1 would name a result column.)
  const execBucket = !byPeriod ? 'day' : starts.length === 0 ? "'all'" : caseOf('day', starts.map(int));
  const planBucket = !byPeriod
    ? 'local_date'
    : params.period === 'month'
      ? 'substr(local_date, 1, 7)' // periodOf's month
      : starts.length === 0
        ? "'all'"
        : caseOf(
            'local_date',
            starts.map((d) => `'${dateOfDayNo(d)}'`),
          );
  const executed: ExecutedCell[] = (
    db
      .prepare(
        `SELECT min(day), client_ref, CASE WHEN ${inRange('pvday')} THEN codes END AS c, sum(occasions),
                sum(without_minutes), sum(length_ms), sum(staff_ms)
           FROM report_exec_cells ${scan} WHERE day BETWEEN @d0 AND @d1${scope} GROUP BY ${execBucket}, client_ref, c`,
      )
      .raw()
      .all(range) as Array<[number, string | null, string | null, number, number, number, number]>
  ).map(([day, clientRef, codes, n, without, lengthMs, staffMs]) => ({
    date: dateOf(day),
    clientRef,
    codes: codes === null ? null : codesOf(codes),
    occasions: n,
    withoutMinutes: without,
    lengthMs,
    staffMs,
  }));

  const diffWhere = `day BETWEEN @d0 AND @d1 AND pvday BETWEEN @d0 AND @d1${scope}`;
  const s = db
    .prepare(
      `SELECT coalesce(sum(n), 0), coalesce(sum(length_ms), 0), coalesce(total(planned_minutes), 0),
              sum(CASE WHEN d < -15 THEN n END), sum(CASE WHEN d >= -15 AND d < -5 THEN n END),
              sum(CASE WHEN d >= -5 AND d <= 5 THEN n END), sum(CASE WHEN d > 5 AND d <= 15 THEN n END),
              sum(CASE WHEN d > 15 THEN n END)
         FROM ${diffsTable} ${scan} WHERE ${diffWhere}`,
    )
    .raw()
    .get(range) as [number, number, number, ...Array<number | null>];
  const n = s[0];
  const ranks = diffRanks(n);
  const wanted = [...ranks.median, ranks.p10, ranks.p90].sort((a, b) => a - b);
  const at = new Map<number, number>();
  if (n > 0) {
    // Walk the distinct values in order with their counts until every wanted rank is found.
    let seen = 0;
    let k = 0;
    for (const [d, c] of db
      .prepare(`SELECT d, sum(n) FROM ${diffsTable} ${scan} WHERE ${diffWhere} GROUP BY d ORDER BY d`)
      .raw()
      .iterate(range) as IterableIterator<[number, number]>) {
      while (k < wanted.length && wanted[k]! < seen + c) at.set(wanted[k++]!, d);
      seen += c;
      if (k === wanted.length) break;
    }
  }
  const get = (i: number) => at.get(i)!;

  const mIn = inRange('mday');
  const planned: PlannedCell[] = (
    db
      .prepare(
        `SELECT min(local_date), client_ref, codes, sum(visits), total(minutes),
                sum(CASE WHEN ${mIn} THEN matched ELSE 0 END), sum(CASE WHEN ${mIn} THEN late ELSE 0 END),
                sum(CASE WHEN ${mIn} THEN understaffed ELSE 0 END), sum(CASE WHEN ${mIn} THEN pending ELSE visits END),
                sum(CASE WHEN ${mIn} THEN missed ELSE 0 END), sum(CASE WHEN ${mIn} THEN r_cancelled ELSE 0 END),
                sum(CASE WHEN ${mIn} THEN r_hospital ELSE 0 END), sum(CASE WHEN ${mIn} THEN r_staff_ill ELSE 0 END),
                sum(CASE WHEN ${mIn} THEN r_other ELSE 0 END), sum(CASE WHEN ${mIn} THEN r_none ELSE 0 END)
           FROM report_plan_cells ${scan}
          WHERE day BETWEEN @d0 AND @d1 AND local_date >= @fromDate AND local_date <= @toDate${scope}
          GROUP BY ${planBucket}, client_ref, codes`,
      )
      .raw()
      .all({ ...range, fromDate: params.fromDate, toDate: params.toDate }) as Array<
      [string, string, string, ...number[]]
    >
  ).map(([date, clientRef, codes, ...c]) => ({
    date,
    clientRef,
    codes: codesOf(codes),
    visits: c[0]!,
    minutes: c[1]!,
    matched: c[2]!,
    late: c[3]!,
    understaffed: c[4]!,
    pending: c[5]!,
    missed: c[6]!,
    reasons: {
      missedClientCancelled: c[7]!,
      missedClientInHospital: c[8]!,
      missedStaffIll: c[9]!,
      missedOther: c[10]!,
      missedNoReason: c[11]!,
    },
  }));

  const quality = toQualityCells(
    db
      .prepare(
        `SELECT reader_id, client_ref, min(class * 10000000000000 + min_start), sum(visits), sum(auto_closed),
                sum(corrected), sum(unknown_card), sum(uncorrected), sum(late), sum(incomplete), sum(withdrawn)
           FROM report_quality_cells ${scan} WHERE day BETWEEN @d0 AND @d1${scope} GROUP BY reader_id, client_ref`,
      )
      .raw()
      .all(range) as Array<[string, string | null, number, ...number[]]>,
  );

  return {
    planned,
    executed,
    diffs: {
      count: n,
      sumLengthMs: s[1],
      sumPlannedMinutes: s[2],
      median:
        n === 0
          ? null
          : ranks.median.length === 1
            ? get(ranks.median[0]!)
            : (get(ranks.median[0]!) + get(ranks.median[1]!)) / 2,
      p10: n === 0 ? null : get(ranks.p10),
      p90: n === 0 ? null : get(ranks.p90),
      bins: DIFF_BINS.map((_, i) => s[3 + i] ?? 0),
    },
    quality,
  };
}

/**
 * The first days (day numbers) of the periods after the first that lie in [d0, d1]: Mondays (ISO weeks,
 * reports/executed.ts periodOf) or the 1st of each month; none for the whole range.
 */
function periodStarts(period: ExecutedParams['period'], d0: number, d1: number): number[] {
  const out: number[] = [];
  if (period === 'week') for (let d = d0 + 1 + ((((4 - d0 - 1) % 7) + 7) % 7); d <= d1; d += 7) out.push(d);
  else if (period === 'month')
    for (let d = d0 + 1; d <= d1; d++) if (dateOfDayNo(d).endsWith('-01')) out.push(d);
  return out;
}

/**
 * SQL numbering the period `x` (an SQL expression) falls in, given the later periods' first values in
 * order: a CASE nested as a binary search (0 for the first period).
 */
function caseOf(x: string, bounds: readonly string[], base = 0): string {
  if (bounds.length === 0) return String(base);
  const mid = bounds.length >> 1;
  return `(CASE WHEN ${x} < ${bounds[mid]!} THEN ${caseOf(x, bounds.slice(0, mid), base)} ELSE ${caseOf(x, bounds.slice(mid + 1), base + mid + 1)} END)`;
}

/**
 * Continuity's cells for the period [fromDate, toDate] from the kept cells (the caller checked they are
 * current for the clock's zone and the registries' inputs: SqliteReportSource.cellsReady), limited to
 * `clients` (null: all), or null when they cannot give exactly the on-the-fly answer: other counted hours
 * or late-delivery threshold than the cells keep, an occasion whose span the period's edge cuts, or, for a
 * scope, an occasion a scope would change (a double-staffed group with visits of several clients).
 */
export function continuityCellsFromStore(
  db: Db,
  w: UtcWindow,
  p: ContinuityCellParams,
  clock: ReportClock,
  clients: readonly string[] | null,
  contacts: ReadonlyMap<string, string>,
): ContinuityCells | null {
  if ((p.lateDeliveryHours ?? 24) * 3_600_000 !== CELL_LATE_MS) return null;
  if (p.countFromMinute !== CELL_COUNT_FROM || p.countToMinute !== CELL_COUNT_TO) return null;
  if (w.fromMs !== clock.startOfDay(p.fromDate) || w.toMs !== clock.window(p.fromDate, p.toDate).toMs)
    return null;
  const d0 = dayNoOf(p.fromDate);
  const d1 = dayNoOf(p.toDate);
  const scope = clients === null ? '' : ' AND client_ref IN (SELECT value FROM json_each(@clients))';
  const args = { d0, d1, ...(clients === null ? {} : { clients: JSON.stringify(clients) }) };
  const across = db
    .prepare(
      `SELECT 1 FROM report_cont_cells WHERE lo <> hi AND ((lo < @d0 AND hi >= @d0) OR (lo <= @d1 AND hi > @d1)) LIMIT 1`,
    )
    .get({ d0, d1 });
  if (across !== undefined) return null;
  if (
    clients !== null &&
    db
      .prepare('SELECT 1 FROM report_cont_cells WHERE day BETWEEN @d0 AND @d1 AND mixed LIMIT 1')
      .get({ d0, d1 }) !== undefined
  )
    return null;

  const dates = new Map<number, string>();
  const dateOf = (day: number) => {
    let d = dates.get(day);
    if (d === undefined) dates.set(day, (d = dateOfDayNo(day)));
    return d;
  };
  const days: ContinuityDayCell[] = [];
  for (const [clientRef, day, occasions, doubleStaffed] of db
    .prepare(
      `SELECT client_ref, day, occasions, double_staffed
         FROM report_cont_cells WHERE day BETWEEN @d0 AND @d1 AND occasions > 0${scope}`,
    )
    .raw()
    .iterate(args) as IterableIterator<[string, number, number, number]>)
    days.push({ clientRef, date: dateOf(day), occasions, doubleStaffed });
  // The staff met: distinct over the days' sets (JSON in the cells, expanded by SQLite: far cheaper than
  // parsing each cell in JavaScript), their counted visits and those by the named contact.
  db.exec(
    'CREATE TEMP TABLE IF NOT EXISTS report_cont_contacts (client_ref TEXT PRIMARY KEY, staff_ref TEXT)',
  );
  db.exec('DELETE FROM temp.report_cont_contacts');
  const clientCells: ContinuityClientCell[] = [];
  try {
    const add = db.prepare('INSERT INTO temp.report_cont_contacts VALUES (?, ?)');
    for (const [c, s] of contacts) add.run(c, s);
    // One pass over the days' staff objects: a value is 2 x the counted visits + 1 when first counted staff.
    for (const [clientRef, staff, firstStaff, counted, byContact] of db
      .prepare(
        `SELECT c.client_ref, count(DISTINCT CASE WHEN s.value >= 2 THEN s.key END),
                count(DISTINCT CASE WHEN s.value & 1 THEN s.key END), sum(s.value >> 1),
                coalesce(sum(CASE WHEN s.key = k.staff_ref THEN s.value >> 1 END), 0)
           FROM report_cont_cells c CROSS JOIN json_each(c.staff) s
           LEFT JOIN temp.report_cont_contacts k ON k.client_ref = c.client_ref
          WHERE c.day BETWEEN @d0 AND @d1 AND c.staff <> '{}'${scope.replaceAll('client_ref', 'c.client_ref')}
          GROUP BY c.client_ref`,
      )
      .raw()
      .iterate(args) as IterableIterator<[string, number, number, number, number]>)
      if (counted > 0) clientCells.push({ clientRef, staff, firstStaff, counted, byContact });
  } finally {
    db.exec('DELETE FROM temp.report_cont_contacts');
  }
  const quality = toQualityCells(
    db
      .prepare(
        `SELECT reader_id, client_ref, min(ord), sum(visits), sum(auto_closed), sum(corrected), sum(unknown_card),
                sum(uncorrected), sum(late), sum(incomplete), sum(withdrawn)
           FROM report_cont_quality WHERE day BETWEEN @d0 AND @d1${scope} GROUP BY reader_id, client_ref`,
      )
      .raw()
      .all(args) as Array<[string, string | null, number, ...number[]]>,
  );
  return {
    days,
    clients: clientCells,
    quality,
  };
}
