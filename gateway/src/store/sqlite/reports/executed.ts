/**
 * Executed vs planned aggregated in SQLite: the same cells as `executedCellsOf` (reports/executed.ts) computes from
 * facts in memory, without reading every visit and planned visit into JavaScript. Local dates come from a
 * CASE over the zone's offset changes in the window (ReportClock.offsetSegments: a handful per year), so a
 * visit is placed in the local day it started, DST days included.
 *
 * The rules are reports/executed.ts's, written in SQL:
 * - occasions: a visit alone, or the visits of one group at one reader (double staffing); an occasion starts
 *   at its earliest start; its length is first start to last end, its staff time the sum of the visits'
 *   lengths, both unknown when any visit's length is unknown (no start or end, or an uncorrected auto-close);
 * - an occasion's planned visit is the link the care plan's matching wrote for its visits
 *   (`care_visit_matches`), else a plan match listing the visit (searched among the client's matches);
 * - a planned visit counts only when it is active and starts in the window;
 * - a visit withdrawn as a mistaken tap (`visit_corrections.kind = 'withdrawn'`) is in no cell; data quality
 *   counts it as withdrawn.
 * test/reports/sqlite-executed.test.ts checks the cells equal the in-memory ones on the same database.
 */
import type { Db } from '../db.js';
import { DIFF_BINS, diffRanks } from '../../report-rules.js';
import type {
  ExecutedCell,
  ExecutedCells,
  ExecutedParams,
  PlannedCell,
  ServiceCodes,
  UtcWindow,
} from '../../report-types.js';
import { int, localDayExpr, sqlParts, windowQualityCells } from './parts.js';
import { dateOfDayNo, type ReportClock } from '../../report-time.js';

export interface SqliteExecutedOptions {
  /** Only these clients (a scoped report); null: all. */
  clients: readonly string[] | null;
}

export function sqliteExecutedCells(
  db: Db,
  w: UtcWindow,
  params: ExecutedParams,
  clock: ReportClock,
  opts: SqliteExecutedOptions = { clients: null },
): ExecutedCells {
  const parts = sqlParts(db, w, opts.clients);
  const { inClients, bind, corrected, counts, started, stopOnly, link, vmJoin, planJoin } = parts;
  const hasPlan = parts.has.plan;
  const len = `(CASE WHEN v.started_at_ms IS NULL OR v.ended_at_ms IS NULL OR (v.end_reason IS 'auto-close' AND NOT ${corrected})
      THEN NULL ELSE max(0, v.ended_at_ms - v.started_at_ms) END)`;
  const pCols = hasPlan ? 'p.service_codes_json, p.planned_minutes' : 'NULL, NULL';

  db.exec(`CREATE TEMP TABLE IF NOT EXISTS report_occasions (
             day INTEGER NOT NULL, client_ref TEXT, codes TEXT, planned_minutes REAL, length_ms INTEGER, staff_ms INTEGER)`);
  db.exec('DELETE FROM temp.report_occasions');
  try {
    // Visits alone.
    db.prepare(
      `INSERT INTO temp.report_occasions
       SELECT o.day, o.client_ref, ${pCols}, o.length_ms, o.staff_ms
         FROM (SELECT ${localDayExpr(clock, w, 'v.started_at_ms')} AS day, v.client_ref, ${link} AS pv,
                      CASE WHEN ${len} IS NULL THEN NULL ELSE v.ended_at_ms - v.started_at_ms END AS length_ms,
                      ${len} AS staff_ms
                 FROM visits v ${vmJoin}
                WHERE ${started} AND v.group_id IS NULL${inClients('v.client_ref')}${counts}) o
         ${planJoin('o.pv')}`,
    ).run(bind);
    // Double staffing: the visits of a group at a reader are one occasion (a stop without a start joins it).
    db.prepare(
      `INSERT INTO temp.report_occasions
       SELECT ${localDayExpr(clock, w, 'o.start_ms')}, o.client_ref, ${pCols}, o.length_ms, o.staff_ms
         FROM (SELECT min(g.s) AS start_ms,
                      substr(min(CASE WHEN g.client_ref IS NOT NULL
                                 THEN printf('%d%020d%020d', g.s IS NULL, coalesce(g.s, 0), g.rid) || g.client_ref END), 42) AS client_ref,
                      min(g.pv) AS pv,
                      CASE WHEN count(g.len) = count(*) THEN max(g.e) - min(g.s) END AS length_ms,
                      CASE WHEN count(g.len) = count(*) THEN sum(g.len) END AS staff_ms
                 FROM (SELECT v.reader_id, v.group_id, v.rowid AS rid, v.client_ref, v.started_at_ms AS s,
                              v.ended_at_ms AS e, ${len} AS len, ${link} AS pv
                         FROM visits v ${vmJoin}
                        WHERE ${started} AND v.group_id IS NOT NULL${inClients('v.client_ref')}${counts}
                       UNION ALL
                       SELECT v.reader_id, v.group_id, v.rowid, v.client_ref, v.started_at_ms, v.ended_at_ms, ${len}, ${link}
                         FROM visits v ${vmJoin}
                        WHERE ${stopOnly} AND v.group_id IS NOT NULL${inClients('v.client_ref')}${counts}) g
                GROUP BY g.reader_id, g.group_id
               HAVING min(g.s) IS NOT NULL) o
         ${planJoin('o.pv')}`,
    ).run(bind);

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

    const executed: ExecutedCell[] = (
      db
        .prepare(
          `SELECT day, client_ref, codes, count(*) AS n,
                  sum(length_ms IS NULL OR staff_ms IS NULL) AS without_minutes,
                  coalesce(sum(CASE WHEN length_ms IS NOT NULL AND staff_ms IS NOT NULL THEN length_ms END), 0) AS length_ms,
                  coalesce(sum(CASE WHEN length_ms IS NOT NULL AND staff_ms IS NOT NULL THEN staff_ms END), 0) AS staff_ms
             FROM temp.report_occasions GROUP BY day, client_ref, codes`,
        )
        .raw()
        .all() as Array<[number, string | null, string | null, number, number, number, number]>
    ).map(([day, clientRef, codes, n, without, lengthMs, staffMs]) => ({
      date: dateOf(day),
      clientRef,
      codes: codes === null ? null : codesOf(codes),
      occasions: n,
      withoutMinutes: without,
      lengthMs,
      staffMs,
    }));

    // The per-visit differences: sums and bins in one pass, the ranks the median and percentiles need in one sort.
    const diffSql = `SELECT length_ms / 60000.0 - planned_minutes AS d, length_ms, planned_minutes
                       FROM temp.report_occasions WHERE codes IS NOT NULL AND length_ms IS NOT NULL`;
    const s = db
      .prepare(
        `SELECT count(*) AS n, coalesce(sum(length_ms), 0) AS len, coalesce(sum(planned_minutes), 0) AS planned,
                sum(d < -15), sum(d >= -15 AND d < -5), sum(d >= -5 AND d <= 5), sum(d > 5 AND d <= 15), sum(d > 15)
           FROM (${diffSql})`,
      )
      .raw()
      .get() as [number, number, number, ...Array<number | null>];
    const n = s[0];
    const ranks = diffRanks(n);
    const wanted = [...ranks.median, ranks.p10, ranks.p90];
    const at = new Map<number, number>();
    if (n > 0)
      for (const [rn, d] of db
        .prepare(
          `SELECT rn, d FROM (SELECT row_number() OVER (ORDER BY d) - 1 AS rn, d FROM (${diffSql}))
            WHERE rn IN (${wanted.map(int).join(', ')})`,
        )
        .raw()
        .all() as Array<[number, number]>)
        at.set(rn, d);
    const get = (i: number) => at.get(i)!;

    return {
      planned: hasPlan
        ? plannedCells(db, w, params, inClients, bind, parts.has.planMatches, parts.has.reasons, codesOf)
        : [],
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
      quality: windowQualityCells(db, parts, params.lateDeliveryHours, 'occasions'),
    };
  } finally {
    db.exec('DELETE FROM temp.report_occasions');
  }
}

function plannedCells(
  db: Db,
  w: UtcWindow,
  params: ExecutedParams,
  inClients: (col: string) => string,
  bind: Record<string, string>,
  hasPlanMatches: boolean,
  hasReasons: boolean,
  codesOf: (json: string) => ServiceCodes,
): PlannedCell[] {
  const W0 = int(w.fromMs);
  const W1 = int(w.toMs);
  const status = hasPlanMatches ? 'm.status' : 'NULL';
  const reason = hasReasons && hasPlanMatches ? 'r.reason_code' : 'NULL';
  const rows = db
    .prepare(
      `SELECT p.local_date, p.client_ref, p.service_codes_json, count(*), total(p.planned_minutes),
              sum(${status} IS 'matched'), sum(${status} IS 'late'), sum(${status} IS 'understaffed'),
              sum(${status} IS NULL OR ${status} IN ('pending', 'unplanned')), sum(${status} IS 'missed'),
              sum(${status} IS 'missed' AND ${reason} IS 'client-cancelled'),
              sum(${status} IS 'missed' AND ${reason} IS 'client-in-hospital'),
              sum(${status} IS 'missed' AND ${reason} IS 'staff-ill'),
              sum(${status} IS 'missed' AND ${reason} IS 'other'),
              sum(${status} IS 'missed' AND (${reason} IS NULL OR ${reason} = ''))
         FROM care_planned_visits p
         ${hasPlanMatches ? `LEFT JOIN care_plan_matches m ON m.planned_visit_id = p.planned_visit_id AND m.start_ms >= ${W0} AND m.start_ms < ${W1}${inClients('m.client_ref')}` : ''}
         ${hasReasons && hasPlanMatches ? 'LEFT JOIN care_reasons r ON r.planned_visit_id = m.planned_visit_id' : ''}
        WHERE p.active = 1 AND p.start_ms >= ${W0} AND p.start_ms < ${W1}
          AND p.local_date >= @fromDate AND p.local_date <= @toDate${inClients('p.client_ref')}
        GROUP BY p.local_date, p.client_ref, p.service_codes_json`,
    )
    .raw()
    .all({ ...bind, fromDate: params.fromDate, toDate: params.toDate }) as Array<
    [string, string, string, ...number[]]
  >;
  return rows.map(([date, clientRef, codes, ...n]) => ({
    date,
    clientRef,
    codes: codesOf(codes),
    visits: n[0]!,
    minutes: n[1]!,
    matched: n[2]!,
    late: n[3]!,
    understaffed: n[4]!,
    pending: n[5]!,
    missed: n[6]!,
    reasons: {
      missedClientCancelled: n[7]!,
      missedClientInHospital: n[8]!,
      missedStaffIll: n[9]!,
      missedOther: n[10]!,
      missedNoReason: n[11]!,
    },
  }));
}
