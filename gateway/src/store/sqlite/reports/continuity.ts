/**
 * The continuity measure's cells aggregated in SQLite: the same cells as `continuityCellsOf` (reports/continuity.ts)
 * computes from facts in memory, without reading every visit into JavaScript. Only per client and day
 * (occasions), per client and staff member (visits in the counted hours, first staff of an occasion) and
 * per reader and client (data quality) reach JavaScript, where `continuityFromCells` makes the report.
 *
 * The rules are reports/continuity.ts's, written in SQL:
 * - occasions: a visit alone, or the visits of one group at one reader (double staffing; a stop without a
 *   start joins it); an occasion starts at its earliest start and belongs to the client of its first visit
 *   with one (by start, then row); occasions without a start or a client are not used;
 * - an occasion linked to a planned visit (the matching's per-visit link, else a plan match listing the
 *   visit; the planned visit active and starting in the window) whose service codes are all safety alarm or
 *   meal delivery is not a home-care visit; which code lists are those is decided in JavaScript by
 *   `isAlarmOrMealOnly` over the window's distinct lists, and the link is not even looked up without one;
 * - visits of home-nursing staff (by the registry's category) are not home-care visits and not counted; an
 *   occasion of only those is not one;
 * - a staff member counts for a visit that started in the counted hours (local minute of the day in
 *   [from, to)); the first counted staff of an occasion is the earliest start, then the staff ref;
 * - withdrawn visits count nowhere; data quality counts them.
 * test/reports/sqlite-continuity.test.ts checks the report is byte-identical to the in-memory one.
 */
import type { Db } from '../db.js';
import {
  int,
  lateMsOf,
  localDayExpr,
  nearLink,
  offsetExpr,
  qualityColumns,
  qualitySums,
  recvOf,
  sqlParts,
  toQualityCells,
} from './parts.js';
import { dateOfDayNo, type ReportClock } from '../../report-time.js';
import type {
  ContinuityCellParams,
  ContinuityCells,
  ContinuityClientCell,
  ContinuityDayCell,
  UtcWindow,
} from '../../report-types.js';

const DAY = 86_400_000;

export interface SqliteContinuityOptions {
  /** Only these clients (a scoped report); null: all. */
  clients: readonly string[] | null;
  /** Staff refs of the home-nursing categories. */
  excludedStaff: readonly string[];
  /** Is a planned visit with this service-code list (JSON as stored) only a safety alarm / meal delivery? */
  alarmOrMealOnly: (serviceCodesJson: string) => boolean;
  /** [client, named care contact] of clients who have one. */
  contacts: ReadonlyArray<readonly [string, string]>;
}

const COLUMNS = `client_ref TEXT, day INTEGER, occ INTEGER, dbl INTEGER, staff_ref TEXT, inwin INTEGER,
  first INTEGER, q INTEGER, reader_id TEXT, own_client TEXT, ord INTEGER, w INTEGER, auto_closed INTEGER,
  corrected INTEGER, unknown_card INTEGER, uncorrected INTEGER, incomplete INTEGER, at INTEGER,
  start_seq INTEGER, end_seq INTEGER, lo INTEGER, hi INTEGER, mixed INTEGER`;

/**
 * Which visits `fillContinuityRows` takes: a report's window (`cells` false: the visits that started in it,
 * stops without a start that ended in it, groups as far as they lie in it), or whole local days for the
 * kept cells (`cells` true, cells.ts): every group that starts in them whole (its visits within a
 * day of them), the planned-visit link and planned visit at any time; each row then carries the span of
 * local days `lo..hi` its occasion's figures depend on (see cells.ts) and `mixed`, an occasion
 * whose figures a scope would change (visits of several clients, or an alarm/meal link to another client).
 */
export interface ContinuityFill {
  w: UtcWindow;
  cells: boolean;
}

/**
 * The continuity measure's rows, one per visit and one per group occasion, into temp.report_cont: the
 * occasions of a client's days (occ), the staff met in the counted hours (inwin, first) and the data quality
 * of each visit used (q). The caller clears the temporary tables (`clearContinuityRows`).
 */
export function fillContinuityRows(
  db: Db,
  fill: ContinuityFill,
  p: Pick<ContinuityCellParams, 'countFromMinute' | 'countToMinute'>,
  clock: ReportClock,
  opts: SqliteContinuityOptions & { alarmCodes?: readonly string[] },
): void {
  const { w, cells } = fill;
  // Offsets for instants near the window (in cells, linked planned visits may lie further away).
  const ow: UtcWindow = cells ? { fromMs: w.fromMs - 400 * DAY, toMs: w.toMs + 400 * DAY } : w;
  const parts = sqlParts(db, w, opts.clients);
  const { W0, W1, inClients, started, stopOnly, counts } = parts;
  const wd = parts.withdrawn ?? '0';
  const N0 = int(w.fromMs - DAY);
  const N1 = int(w.toMs + DAY);
  const dayOf = (col: string) => localDayExpr(clock, ow, col);

  // On the fly: the window's service-code lists that make a planned visit alarm/meal only (usually one or
  // two, often none). In cells: the alarm/meal codes, checked against the linked planned visit's list.
  const alarmLists =
    !cells && parts.has.plan
      ? (
          db
            .prepare(
              `SELECT DISTINCT service_codes_json FROM care_planned_visits
                WHERE active = 1 AND start_ms >= ${W0} AND start_ms < ${W1}${inClients('client_ref')}`,
            )
            .raw()
            .all(parts.bind) as Array<[string]>
        )
          .map(([json]) => json)
          .filter((json) => opts.alarmOrMealOnly(json))
      : [];
  const linked = cells ? parts.has.plan && (opts.alarmCodes ?? []).length > 0 : alarmLists.length > 0;
  const near = nearLink();
  const link = !linked ? 'NULL' : cells ? near.link : parts.link;
  const vmJoin = !linked ? '' : cells ? near.vmJoin : parts.vmJoin;
  const unlinked = linked && cells ? `(${near.unlinked} AND ${link} IS NOT NULL)` : '0';
  const planJoin = (pv: string) =>
    !linked
      ? ''
      : cells
        ? `LEFT JOIN care_planned_visits p ON p.planned_visit_id = ${pv} AND p.active = 1`
        : parts.planJoin(pv);
  const alarm = !linked
    ? '0'
    : cells
      ? `coalesce(p.planned_visit_id IS NOT NULL AND json_array_length(p.service_codes_json) > 0
           AND NOT EXISTS (SELECT 1 FROM json_each(p.service_codes_json) j
                            WHERE coalesce(json_extract(j.value, '$.code') NOT IN (SELECT value FROM json_each(@alarmCodes)), 1)), 0)`
      : 'coalesce(p.service_codes_json IN (SELECT value FROM json_each(@alarm)), 0)';
  // The span of an occasion on day `day` whose planned visit decides it is an alarm/meal response: the
  // planned visit's day too, and a day either side when the link came from a plan match nearby.
  const span = (day: string, u: string, al: string, pStart: string) =>
    !linked || !cells
      ? [day, day]
      : [
          `min(${day}, CASE WHEN ${al} THEN ${dayOf(pStart)} ELSE ${day} END) - ${u}`,
          `max(${day}, CASE WHEN ${al} THEN ${dayOf(pStart)} ELSE ${day} END) + ${u}`,
        ];
  // An alarm/meal link to another client's planned visit: a scope could leave that visit out.
  const foreign = (client: string, al: string) =>
    linked && cells ? `(${al} AND p.client_ref IS NOT ${client})` : '0';
  const ex =
    opts.excludedStaff.length > 0
      ? `coalesce(v.staff_ref, '') IN (SELECT value FROM json_each(@excluded))`
      : '0';
  const inHours = (local: string) =>
    `((${local}) % 86400000 / 60000 >= ${int(p.countFromMinute)} AND (${local}) % 86400000 / 60000 < ${int(p.countToMinute)})`;
  const args = {
    ...parts.bind,
    ...(linked && !cells ? { alarm: JSON.stringify(alarmLists) } : {}),
    ...(linked && cells ? { alarmCodes: JSON.stringify(opts.alarmCodes) } : {}),
    excluded: JSON.stringify(opts.excludedStaff),
  };

  db.exec(`CREATE TEMP TABLE IF NOT EXISTS report_cont (${COLUMNS})`);
  db.exec(`CREATE TEMP TABLE IF NOT EXISTS report_cont_g (reader_id TEXT, group_id TEXT, rid INTEGER,
             client_ref TEXT, staff_ref TEXT, card_ref TEXT, s INTEGER, ex INTEGER, pv TEXT, ord INTEGER,
             auto_closed INTEGER, corrected INTEGER, unknown_card INTEGER, uncorrected INTEGER,
             incomplete INTEGER, at INTEGER, start_seq INTEGER, end_seq INTEGER, gday INTEGER, u INTEGER)`);
  db.exec('CREATE TEMP TABLE IF NOT EXISTS report_contacts (client_ref TEXT PRIMARY KEY, staff_ref TEXT)');
  db.exec(`CREATE TEMP TABLE IF NOT EXISTS report_cont_o (reader_id TEXT, group_id TEXT, client_ref TEXT,
             start INTEGER, home INTEGER, dbl INTEGER, first_staff TEXT, lo INTEGER, hi INTEGER, mixed INTEGER)`);
  clearContinuityRows(db);
  db.prepare(
    `INSERT INTO temp.report_contacts SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(@contacts)`,
  ).run({ contacts: JSON.stringify(opts.contacts) });
  // Visits alone (each its own occasion) and withdrawn visits (data quality only), of a known client.
  const [lo, hi] = span('x.day', 'x.u', 'x.al', 'x.p_start');
  db.prepare(
    `INSERT INTO temp.report_cont
     SELECT x.client_ref, x.day, x.home, 0, x.staff_ref,
            x.home AND x.staff_ref IS NOT NULL AND ${inHours('x.l')},
            x.home AND x.staff_ref IS NOT NULL AND ${inHours('x.l')},
            1, x.reader_id, x.client_ref, x.ord, x.w, x.auto_closed, x.corrected, x.unknown_card,
            x.uncorrected, x.incomplete, x.at, x.start_seq, x.end_seq, ${lo}, ${hi}, x.fo
       FROM (SELECT y.*, y.l / 86400000 AS day, NOT y.w AND NOT y.ex AND NOT ${alarm} AS home, ${alarm} AS al,
                    ${foreign('y.client_ref', alarm)} AS fo${linked && cells ? ', p.start_ms AS p_start' : ''}
               FROM (SELECT v.client_ref, v.reader_id, v.staff_ref, ${link} AS pv, ${ex} AS ex, ${unlinked} AS u,
                            v.started_at_ms + ${offsetExpr(clock, ow, 'v.started_at_ms')} AS l,
                            ${qualityColumns(parts, wd, false)}
                       FROM visits v ${vmJoin}
                      WHERE ${started} AND v.client_ref IS NOT NULL AND (v.group_id IS NULL OR ${wd})
                            ${inClients('v.client_ref')}) y
               ${planJoin('y.pv')}) x`,
  ).run(args);

  // Double staffing: the counted visits of a group at a reader (stops without a start join it). In cells,
  // whole groups: their visits within a day of the days, kept when the group starts in them.
  const member = (where: string) => `
    SELECT v.reader_id, v.group_id, v.rowid AS rid, v.client_ref, v.staff_ref, v.card_ref, v.started_at_ms AS s,
           ${ex} AS ex, ${link} AS pv, ${qualityColumns(parts, '0', false)},
           ${dayOf('coalesce(v.started_at_ms, v.ended_at_ms)')} AS gday, ${unlinked} AS u
      FROM visits v ${vmJoin}
     WHERE ${where} AND v.group_id IS NOT NULL${inClients('v.client_ref')}${counts}`;
  const near0 = cells ? `v.started_at_ms >= ${N0} AND v.started_at_ms < ${N1}` : started;
  const near1 = cells
    ? `v.started_at_ms IS NULL AND v.ended_at_ms >= ${N0} AND v.ended_at_ms < ${N1}`
    : stopOnly;
  db.prepare(
    `INSERT INTO temp.report_cont_g
     SELECT reader_id, group_id, rid, client_ref, staff_ref, card_ref, s, ex, pv, ord, auto_closed,
            corrected, unknown_card, uncorrected, incomplete, at, start_seq, end_seq, gday, u
       FROM (${member(near0)} UNION ALL ${member(near1)})`,
  ).run(args);
  // The groups' occasions that are used: a start (in cells: in the days) and a client.
  const [olo, ohi] = span(dayOf('o.start'), 'o.u', alarm, 'p.start_ms');
  db.prepare(
    `INSERT INTO temp.report_cont_o
     SELECT o.reader_id, o.group_id, o.client_ref, o.start, o.care > 0 AND NOT ${alarm}, o.people > 1,
            substr(o.first_key, 16), min(o.glo, ${olo}), max(o.ghi, ${ohi}),
            o.clients > 1 OR ${foreign('o.client_ref', alarm)}
       FROM (SELECT reader_id, group_id, min(s) AS start, min(pv) AS pv, min(gday) AS glo, max(gday) AS ghi,
                    max(u) AS u, count(DISTINCT coalesce(client_ref, '')) AS clients,
                    substr(min(CASE WHEN client_ref IS NOT NULL
                               THEN printf('%d%020d%020d', s IS NULL, coalesce(s, 0), rid) || client_ref END), 42) AS client_ref,
                    sum(NOT ex) AS care,
                    count(DISTINCT CASE WHEN NOT ex THEN coalesce(staff_ref, card_ref) END) AS people,
                    min(CASE WHEN NOT ex AND s IS NOT NULL AND staff_ref IS NOT NULL
                                  AND ${inHours(`s + ${offsetExpr(clock, ow, 's')}`)}
                             THEN printf('%015d', s) || staff_ref END) AS first_key
               FROM temp.report_cont_g GROUP BY reader_id, group_id) o
       ${planJoin('o.pv')}
      WHERE o.start IS NOT NULL AND o.client_ref IS NOT NULL${cells ? ` AND o.start >= ${W0} AND o.start < ${W1}` : ''}`,
  ).run(args);
  // Each occasion once (its day, home care or not, double staffing and first counted staff member) ...
  db.prepare(
    `INSERT INTO temp.report_cont (client_ref, day, occ, dbl, staff_ref, inwin, first, q, lo, hi, mixed)
     SELECT client_ref, ${dayOf('start')}, home, home AND dbl, first_staff, 0, home AND first_staff IS NOT NULL, 0,
            lo, hi, mixed
       FROM temp.report_cont_o`,
  ).run();
  // ... and each of its visits: counted staff (by the occasion's client) and data quality (by its own).
  db.prepare(
    `INSERT INTO temp.report_cont
     SELECT o.client_ref, ${dayOf('o.start')}, 0, 0, g.staff_ref,
            o.home AND NOT g.ex AND g.s IS NOT NULL AND g.staff_ref IS NOT NULL
              AND ${inHours(`g.s + ${offsetExpr(clock, ow, 'g.s')}`)},
            0, 1, g.reader_id, g.client_ref, g.ord, 0, g.auto_closed, g.corrected, g.unknown_card, g.uncorrected,
            g.incomplete, g.at, g.start_seq, g.end_seq, o.lo, o.hi, o.mixed
       FROM temp.report_cont_g g
       JOIN temp.report_cont_o o ON o.reader_id = g.reader_id AND o.group_id = g.group_id`,
  ).run();
}

/**
 * Continuity's kept cells from the rows `fillContinuityRows` made for whole days (`cells`): per day, client
 * and span, the occasions, the double-staffed ones, the counted visits, the staff met (a JSON object of
 * 2 x counted visits + 1 for an occasion's first counted staff), into `cellsTable`; the quality counts
 * per day, reader and client (late: after `lateMs`) into `qualityTable` (cells.ts's tables).
 */
export function continuityCellRows(db: Db, cellsTable: string, qualityTable: string, lateMs: number): void {
  db.exec(`INSERT INTO ${cellsTable}
           SELECT day, client_ref, lo, hi, max(mixed), sum(occ), sum(dbl), sum(n),
                  '{' || coalesce(group_concat(CASE WHEN n > 0 OR f THEN json_quote(staff_ref) || ':' || (n * 2 + f) END), '') || '}',
                  '[]'
             FROM (SELECT day, client_ref, lo, hi, staff_ref, max(mixed) AS mixed, sum(occ) AS occ, sum(dbl) AS dbl,
                          sum(inwin) AS n, max(first) AS f
                     FROM temp.report_cont WHERE occ = 1 OR inwin = 1 OR first = 1 OR lo <> hi OR mixed
                    GROUP BY day, client_ref, lo, hi, staff_ref)
            GROUP BY day, client_ref, lo, hi`);
  // The receipt time is looked up here, where rows come grouped by reader.
  db.prepare(
    `INSERT INTO ${qualityTable}
     SELECT day, reader_id, own_client, ${qualitySums(recvOf('t'))}
       FROM temp.report_cont t WHERE q = 1 GROUP BY reader_id, own_client, day`,
  ).run({ lateMs });
}

export function clearContinuityRows(db: Db): void {
  db.exec(
    'DELETE FROM temp.report_cont; DELETE FROM temp.report_cont_g; DELETE FROM temp.report_cont_o; DELETE FROM temp.report_contacts;',
  );
}

export function sqliteContinuityCells(
  db: Db,
  w: UtcWindow,
  p: ContinuityCellParams,
  clock: ReportClock,
  opts: SqliteContinuityOptions,
): ContinuityCells {
  try {
    fillContinuityRows(db, { w, cells: false }, p, clock, opts);
    const dates = new Map<number, string>();
    const dateOf = (day: number) => {
      let d = dates.get(day);
      if (d === undefined) dates.set(day, (d = dateOfDayNo(day)));
      return d;
    };
    // Per client in one grouping: its occasions' days (day:double-staffed, counted in JavaScript), the distinct
    // staff met in the counted hours, the distinct first staff, the counted visits and those by the contact.
    const days: ContinuityDayCell[] = [];
    const clients: ContinuityClientCell[] = [];
    for (const [clientRef, occ, staff, firstStaff, counted, byContact] of db
      .prepare(
        `SELECT t.client_ref, group_concat(CASE WHEN t.occ = 1 THEN t.day || ':' || t.dbl END),
                count(DISTINCT CASE WHEN t.inwin = 1 THEN t.staff_ref END),
                count(DISTINCT CASE WHEN t.first = 1 THEN t.staff_ref END), sum(t.inwin),
                sum(t.inwin = 1 AND t.staff_ref = c.staff_ref)
           FROM temp.report_cont t LEFT JOIN temp.report_contacts c ON c.client_ref = t.client_ref
          WHERE t.occ = 1 OR t.inwin = 1 OR t.first = 1
          GROUP BY t.client_ref`,
      )
      .raw()
      .iterate() as IterableIterator<[string, string | null, number, number, number, number]>) {
      if (occ !== null) {
        const perDay = new Map<number, [number, number]>();
        for (const x of occ.split(',')) {
          const k = x.indexOf(':');
          const day = Number(x.slice(0, k));
          let d = perDay.get(day);
          if (d === undefined) perDay.set(day, (d = [0, 0]));
          d[0]++;
          d[1] += Number(x.slice(k + 1));
        }
        for (const [day, [occasions, doubleStaffed]] of perDay)
          days.push({ clientRef, date: dateOf(day), occasions, doubleStaffed });
      }
      if (counted > 0) clients.push({ clientRef, staff, firstStaff, counted, byContact });
    }
    // Quality by reader and client; the receipt time is looked up here, where rows come grouped by reader.
    const quality = toQualityCells(
      db
        .prepare(
          `SELECT reader_id, own_client, ${qualitySums(recvOf('t'))}
             FROM temp.report_cont t WHERE q = 1 GROUP BY reader_id, own_client`,
        )
        .raw()
        .all({ lateMs: lateMsOf(p.lateDeliveryHours) }) as Array<
        [string, string | null, number, ...number[]]
      >,
    );
    return { days, clients, quality };
  } finally {
    clearContinuityRows(db);
  }
}
