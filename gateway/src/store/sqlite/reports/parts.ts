/**
 * SQL pieces the reports' SQLite aggregations share (executed.ts, continuity.ts): local days
 * and minutes from a CASE over the zone's offset changes, which visits count (not withdrawn), when a visit
 * counts as corrected, the link from a visit to its planned visit, and the data-quality counts per visit.
 * Each is the SQL form of a rule the in-memory reports apply (reports/facts.ts, reports/quality.ts).
 */
import type { Db } from '../db.js';
import type { QualityCell, UtcWindow } from '../../report-types.js';
import type { ReportClock } from '../../report-time.js';

export const int = (n: number): string => {
  if (!Number.isSafeInteger(n)) throw new Error(`not an integer: ${n}`);
  return String(n);
};

/** SQL for the zone's offset (ms) at a UTC ms expression, exact inside the window (ReportClock.offsetSegments). */
export function offsetExpr(clock: ReportClock, w: UtcWindow, col: string): string {
  const segs = clock.offsetSegments(w.fromMs, w.toMs);
  if (segs.length <= 1) return int(segs[0]?.offsetMs ?? 0);
  const cases = segs
    .slice(1)
    .map((s, i) => `WHEN ${col} < ${int(s.fromMs)} THEN ${int(segs[i]!.offsetMs)}`)
    .join(' ');
  return `(CASE ${cases} ELSE ${int(segs[segs.length - 1]!.offsetMs)} END)`;
}

/** SQL for the local day number (days since 1970-01-01 in the zone) of a UTC ms expression. */
export function localDayExpr(clock: ReportClock, w: UtcWindow, col: string): string {
  return `((${col} + ${offsetExpr(clock, w, col)}) / 86400000)`;
}

/** Does the gateway record withdrawals (the corrections' `kind` column, corrections-002)? */
export function hasWithdrawals(db: Db): boolean {
  return (
    db.prepare("SELECT 1 FROM pragma_table_info('visit_corrections') WHERE name = 'kind'").get() !== undefined
  );
}

/**
 * SQL that is true for a visit `v` withdrawn as a mistaken tap, or null when no visit is withdrawn (the
 * corrections tables absent or no withdrawal yet): the condition then need not be evaluated at all.
 */
export function withdrawnExpr(db: Db): string | null {
  if (!hasWithdrawals(db)) return null;
  const any = db.prepare("SELECT 1 FROM visit_corrections WHERE kind = 'withdrawn' LIMIT 1").get();
  return any === undefined
    ? null
    : `((v.reader_id, v.visit_id) IN (SELECT reader_id, visit_id FROM visit_corrections WHERE kind = 'withdrawn'))`;
}

/** The pieces of one report's SQL over the window `w`, limited to `clients` (null: all). */
export interface SqlParts {
  W0: string;
  W1: string;
  /** ` AND col IN (the scope's clients)`, or '' for all clients. */
  inClients: (col: string) => string;
  /** Parameters every statement binds (the scope's clients). */
  bind: Record<string, string>;
  has: { plan: boolean; planMatches: boolean; visitMatches: boolean; reasons: boolean };
  /** True for a visit `v` a person changed (a manual close, a visit_audit row). */
  corrected: string;
  /** True for a withdrawn visit `v`, or null when none is withdrawn. */
  withdrawn: string | null;
  /** ` AND NOT withdrawn` (or ''): the visits that count. */
  counts: string;
  /** `v` started in the window. */
  started: string;
  /** `v` has no start and ended in the window. */
  stopOnly: string;
  /** The planned visit id of `v` (needs `vmJoin`): the matching's per-visit link, else a plan match listing it. */
  link: string;
  vmJoin: string;
  /** Joins `p`, the planned visit `pv` when it is active and starts in the window (and is in scope). */
  planJoin: (pv: string) => string;
}

export function sqlParts(db: Db, w: UtcWindow, clients: readonly string[] | null): SqlParts {
  const hasTable = (t: string) =>
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(t) !== undefined;
  const has = {
    plan: hasTable('care_planned_visits'),
    planMatches: hasTable('care_plan_matches'),
    visitMatches: hasTable('care_visit_matches'),
    reasons: hasTable('care_reasons'),
  };
  const audited =
    (db.prepare('SELECT EXISTS (SELECT 1 FROM visit_audit) AS x').get() as { x: number }).x === 1;
  const withdrawn = withdrawnExpr(db);
  const W0 = int(w.fromMs);
  const W1 = int(w.toMs);
  const clientsJson = clients === null ? null : JSON.stringify(clients);
  const inClients = (col: string) =>
    clientsJson === null ? '' : ` AND ${col} IN (SELECT value FROM json_each(@clients))`;
  const fallback = has.planMatches
    ? `(SELECT min(m.planned_visit_id) FROM care_plan_matches m, json_each(m.executed_keys_json) j
         WHERE m.client_ref = v.client_ref AND m.start_ms >= ${W0} AND m.start_ms < ${W1}${inClients('m.client_ref')}
           AND j.value = v.reader_id || '/' || v.visit_id)`
    : 'NULL';
  return {
    W0,
    W1,
    inClients,
    bind: clientsJson === null ? {} : { clients: clientsJson },
    has,
    corrected: `(v.end_reason IS 'manual'${
      audited ? ' OR (v.reader_id, v.visit_id) IN (SELECT reader_id, visit_id FROM visit_audit)' : ''
    })`,
    withdrawn,
    counts: withdrawn === null ? '' : ` AND NOT ${withdrawn}`,
    started: `v.started_at_ms >= ${W0} AND v.started_at_ms < ${W1}`,
    stopOnly: `v.started_at_ms IS NULL AND v.ended_at_ms >= ${W0} AND v.ended_at_ms < ${W1}`,
    link: has.visitMatches
      ? `(CASE WHEN vm.executed_key IS NOT NULL THEN vm.planned_visit_id ELSE ${fallback} END)`
      : fallback,
    vmJoin: has.visitMatches
      ? "LEFT JOIN care_visit_matches vm ON vm.executed_key = v.reader_id || '/' || v.visit_id"
      : '',
    planJoin: (pv: string) =>
      has.plan
        ? `LEFT JOIN care_planned_visits p ON p.planned_visit_id = ${pv} AND p.active = 1
             AND p.start_ms >= ${W0} AND p.start_ms < ${W1}${inClients('p.client_ref')}`
        : '',
  };
}

/**
 * The link from a visit `v` to its planned visit without a report window (the kept cells,
 * cells.ts): the matching's per-visit link, else the least planned visit of a plan match within a day
 * of the visit listing it; `unlinked` is true when the second was used (a report's window may then pick
 * another, so the cells treat the occasion as spanning the days around it).
 */
export function nearLink(): { link: string; unlinked: string; vmJoin: string } {
  const fallback = `(SELECT min(m.planned_visit_id) FROM care_plan_matches m, json_each(m.executed_keys_json) j
         WHERE m.client_ref = v.client_ref AND m.start_ms >= v.started_at_ms - 86400000
           AND m.start_ms < coalesce(v.started_at_ms, v.ended_at_ms) + 86400000
           AND j.value = v.reader_id || '/' || v.visit_id)`;
  return {
    link: `(CASE WHEN vm.executed_key IS NOT NULL THEN vm.planned_visit_id ELSE ${fallback} END)`,
    unlinked: '(vm.executed_key IS NULL)',
    vmJoin: "LEFT JOIN care_visit_matches vm ON vm.executed_key = v.reader_id || '/' || v.visit_id",
  };
}

/**
 * Per-visit data-quality columns of `v` (reports/quality.ts's rules), `w` true for a withdrawn visit: w, ord,
 * auto_closed, corrected, unknown_card, uncorrected, incomplete, at, recv (`LATE` over the last two); without
 * `recv`, the columns to look it up later (start_seq, end_seq; with the reader_id: `recvOf`). `ord` places a visit as the in-memory
 * way orders the visits a report used: visits alone, stops without a start, visits of groups, their stops
 * without a start; withdrawn visits after all of them (`order` 'source': in the order a source gives the
 * window's visits, by start, stops without a start last).
 */
export function qualityColumns(
  parts: SqlParts,
  w: string,
  recv = true,
  order: 'occasions' | 'source' = 'occasions',
): string {
  const rank =
    order === 'source'
      ? '(v.started_at_ms IS NULL)'
      : `(CASE WHEN ${w} THEN 4 + (v.started_at_ms IS NULL)
            ELSE (v.group_id IS NOT NULL) * 2 + (v.started_at_ms IS NULL) END)`;
  return `${w} AS w, ${rank} * 10000000000000 + coalesce(v.started_at_ms, 0) AS ord,
      v.end_reason IS 'auto-close' AND NOT ${parts.corrected} AS auto_closed, ${parts.corrected} AS corrected,
      v.staff_ref IS NULL AS unknown_card, v.time_quality IS 'uncorrected' AS uncorrected,
      v.started_at_ms IS NULL OR v.ended_at_ms IS NULL AS incomplete,
      coalesce(v.ended_at_ms, v.started_at_ms) AS at,
      ${recv ? `${recvOf('v')} AS recv` : 'v.start_seq AS start_seq, v.end_seq AS end_seq'}`;
}

/**
 * When the gateway received the later of the taps of visit `t` (columns reader_id, start_seq, end_seq). Two lookups in the events index: cheap in the order of a reader's taps, slow in time order
 * (every reader in turn), so evaluate it where rows come grouped by reader (an aggregate by reader).
 */
export const recvOf = (t: string): string =>
  `(SELECT max(e.received_at_ms) FROM events e WHERE e.reader_id = ${t}.reader_id AND e.seq IN (${t}.start_seq, ${t}.end_seq))`;

/**
 * Over `qualityColumns`: the visit's last tap reached the gateway later than @lateMs after the visit (no
 * receipt time, 0, or no time of the visit: not late). `recv` appears once, so a flattened subquery runs
 * the events lookup once.
 */
export const LATE = 'coalesce(nullif(recv, 0) - at > @lateMs, 0)';

/**
 * The aggregates over rows with `qualityColumns`, grouped by reader and client, in QualityCell order; `recv`
 * the receipt time's expression (the column, or `recvOf` the rows when they carry no `recv`).
 */
export const qualitySums = (recv = 'recv'): string => `min(ord), sum(NOT w), sum(auto_closed AND NOT w),
  sum(corrected AND NOT w), sum(unknown_card AND NOT w), sum(uncorrected AND NOT w),
  sum(${LATE.replace('recv', recv)} AND NOT w), sum(incomplete AND NOT w), sum(w)`;

export const lateMsOf = (lateDeliveryHours: number | undefined): number =>
  (lateDeliveryHours ?? 24) * 3_600_000;

/** Rows [reader_id, client_ref, ...QUALITY_SUMS] as quality cells. */
export function toQualityCells(rows: Array<[string, string | null, number, ...number[]]>): QualityCell[] {
  return rows.map(([readerId, clientRef, ord, ...n]) => ({
    readerId,
    clientRef,
    ord,
    counts: {
      visits: n[0]!,
      autoClosed: n[1]!,
      corrected: n[2]!,
      unknownCard: n[3]!,
      uncorrectableTime: n[4]!,
      lateDelivered: n[5]!,
      incomplete: n[6]!,
      withdrawn: n[7]!,
    },
  }));
}

/**
 * Quality cells of every visit of the window (started in it, or a stop without a start that ended in it),
 * withdrawn ones counted apart; `order` as `qualityColumns`.
 */
export function windowQualityCells(
  db: Db,
  q: SqlParts,
  lateDeliveryHours: number | undefined,
  order: 'occasions' | 'source',
): QualityCell[] {
  const cols = `v.reader_id, v.client_ref, ${qualityColumns(q, q.withdrawn ?? '0', false, order)}`;
  // The receipt time is looked up in the aggregate, where rows come grouped by reader (recvOf).
  return toQualityCells(
    db
      .prepare(
        `SELECT reader_id, client_ref, ${qualitySums(recvOf('x'))}
           FROM (SELECT ${cols} FROM visits v WHERE ${q.started}${q.inClients('v.client_ref')}
                 UNION ALL
                 SELECT ${cols} FROM visits v WHERE ${q.stopOnly}${q.inClients('v.client_ref')}) x
          GROUP BY reader_id, client_ref`,
      )
      .raw()
      .all({ ...q.bind, lateMs: lateMsOf(lateDeliveryHours) }) as Array<
      [string, string | null, number, ...number[]]
    >,
  );
}
