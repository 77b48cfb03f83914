/**
 * The continuity measure's cells aggregated in SQLite: the same cells as `continuityCellsOf` (continuity.ts)
 * computes from facts in memory, without reading every visit into JavaScript. Only per client and day
 * (occasions), per client and staff member (visits in the counted hours, first staff of an occasion) and
 * per reader and client (data quality) reach JavaScript, where `continuityFromCells` makes the report.
 *
 * The rules are continuity.ts's, written in SQL:
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
import type { Db } from '../store/sqlite/db.js';
import {
  int,
  lateMsOf,
  localDayExpr,
  offsetExpr,
  qualityColumns,
  qualitySums,
  recvOf,
  sqlParts,
  toQualityCells,
} from './sqlite-parts.js';
import { dateOfDayNo, type ReportClock } from './time.js';
import type {
  ContinuityCellParams,
  ContinuityCells,
  ContinuityClientCell,
  ContinuityDayCell,
  UtcWindow,
} from './types.js';

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
  start_seq INTEGER, end_seq INTEGER`;

export function sqliteContinuityCells(
  db: Db,
  w: UtcWindow,
  p: ContinuityCellParams,
  clock: ReportClock,
  opts: SqliteContinuityOptions,
): ContinuityCells {
  const parts = sqlParts(db, w, opts.clients);
  const { W0, W1, inClients, started, stopOnly, counts } = parts;
  const wd = parts.withdrawn ?? '0';

  // The window's service-code lists that make a planned visit alarm/meal only (usually one or two, often none).
  const alarmLists = parts.has.plan
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
  const linked = alarmLists.length > 0;
  const link = linked ? parts.link : 'NULL';
  const vmJoin = linked ? parts.vmJoin : '';
  const alarm = linked ? 'coalesce(p.service_codes_json IN (SELECT value FROM json_each(@alarm)), 0)' : '0';
  const ex =
    opts.excludedStaff.length > 0
      ? `coalesce(v.staff_ref, '') IN (SELECT value FROM json_each(@excluded))`
      : '0';
  const inHours = (local: string) =>
    `((${local}) % 86400000 / 60000 >= ${int(p.countFromMinute)} AND (${local}) % 86400000 / 60000 < ${int(p.countToMinute)})`;
  const args = {
    ...parts.bind,
    alarm: JSON.stringify(alarmLists),
    excluded: JSON.stringify(opts.excludedStaff),
  };

  db.exec(`CREATE TEMP TABLE IF NOT EXISTS report_cont (${COLUMNS})`);
  db.exec(`CREATE TEMP TABLE IF NOT EXISTS report_cont_g (reader_id TEXT, group_id TEXT, rid INTEGER,
             client_ref TEXT, staff_ref TEXT, card_ref TEXT, s INTEGER, ex INTEGER, pv TEXT, ord INTEGER,
             auto_closed INTEGER, corrected INTEGER, unknown_card INTEGER, uncorrected INTEGER,
             incomplete INTEGER, at INTEGER, start_seq INTEGER, end_seq INTEGER)`);
  db.exec('CREATE TEMP TABLE IF NOT EXISTS report_contacts (client_ref TEXT PRIMARY KEY, staff_ref TEXT)');
  db.exec(`CREATE TEMP TABLE IF NOT EXISTS report_cont_o (reader_id TEXT, group_id TEXT, client_ref TEXT,
             start INTEGER, home INTEGER, dbl INTEGER, first_staff TEXT)`);
  const clear = () =>
    db.exec(
      'DELETE FROM temp.report_cont; DELETE FROM temp.report_cont_g; DELETE FROM temp.report_cont_o; DELETE FROM temp.report_contacts;',
    );
  clear();
  try {
    db.prepare(
      `INSERT INTO temp.report_contacts SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(@contacts)`,
    ).run({ contacts: JSON.stringify(opts.contacts) });
    // Visits alone (each its own occasion) and withdrawn visits (data quality only), of a known client.
    db.prepare(
      `INSERT INTO temp.report_cont
       SELECT x.client_ref, x.l / 86400000, x.home, 0, x.staff_ref,
              x.home AND x.staff_ref IS NOT NULL AND ${inHours('x.l')},
              x.home AND x.staff_ref IS NOT NULL AND ${inHours('x.l')},
              1, x.reader_id, x.client_ref, x.ord, x.w, x.auto_closed, x.corrected, x.unknown_card,
              x.uncorrected, x.incomplete, x.at, x.start_seq, x.end_seq
         FROM (SELECT y.*, NOT y.w AND NOT y.ex AND NOT ${alarm} AS home
                 FROM (SELECT v.client_ref, v.reader_id, v.staff_ref, ${link} AS pv, ${ex} AS ex,
                              v.started_at_ms + ${offsetExpr(clock, w, 'v.started_at_ms')} AS l,
                              ${qualityColumns(parts, wd, false)}
                         FROM visits v ${vmJoin}
                        WHERE ${started} AND v.client_ref IS NOT NULL AND (v.group_id IS NULL OR ${wd})
                              ${inClients('v.client_ref')}) y
                 ${linked ? parts.planJoin('y.pv') : ''}) x`,
    ).run(args);

    // Double staffing: the counted visits of a group at a reader (stops without a start join it).
    const member = (where: string) => `
      SELECT v.reader_id, v.group_id, v.rowid AS rid, v.client_ref, v.staff_ref, v.card_ref, v.started_at_ms AS s,
             ${ex} AS ex, ${link} AS pv, ${qualityColumns(parts, '0', false)}
        FROM visits v ${vmJoin}
       WHERE ${where} AND v.group_id IS NOT NULL${inClients('v.client_ref')}${counts}`;
    db.prepare(
      `INSERT INTO temp.report_cont_g
       SELECT reader_id, group_id, rid, client_ref, staff_ref, card_ref, s, ex, pv, ord, auto_closed,
              corrected, unknown_card, uncorrected, incomplete, at, start_seq, end_seq
         FROM (${member(started)} UNION ALL ${member(stopOnly)})`,
    ).run(args);
    // The groups' occasions that are used: a start and a client.
    db.prepare(
      `INSERT INTO temp.report_cont_o
       SELECT o.reader_id, o.group_id, o.client_ref, o.start, o.care > 0 AND NOT ${alarm}, o.people > 1,
              substr(o.first_key, 16)
         FROM (SELECT reader_id, group_id, min(s) AS start, min(pv) AS pv,
                      substr(min(CASE WHEN client_ref IS NOT NULL
                                 THEN printf('%d%020d%020d', s IS NULL, coalesce(s, 0), rid) || client_ref END), 42) AS client_ref,
                      sum(NOT ex) AS care,
                      count(DISTINCT CASE WHEN NOT ex THEN coalesce(staff_ref, card_ref) END) AS people,
                      min(CASE WHEN NOT ex AND s IS NOT NULL AND staff_ref IS NOT NULL
                                    AND ${inHours(`s + ${offsetExpr(clock, w, 's')}`)}
                               THEN printf('%015d', s) || staff_ref END) AS first_key
                 FROM temp.report_cont_g GROUP BY reader_id, group_id) o
         ${linked ? parts.planJoin('o.pv') : ''}
        WHERE o.start IS NOT NULL AND o.client_ref IS NOT NULL`,
    ).run(args);
    // Each home-care occasion once (its day, double staffing and first counted staff member) ...
    db.prepare(
      `INSERT INTO temp.report_cont (client_ref, day, occ, dbl, staff_ref, inwin, first, q)
       SELECT client_ref, ${localDayExpr(clock, w, 'start')}, 1, dbl, first_staff, 0, first_staff IS NOT NULL, 0
         FROM temp.report_cont_o WHERE home`,
    ).run();
    // ... and each of its visits: counted staff (by the occasion's client) and data quality (by its own).
    db.prepare(
      `INSERT INTO temp.report_cont
       SELECT o.client_ref, NULL, 0, 0, g.staff_ref,
              o.home AND NOT g.ex AND g.s IS NOT NULL AND g.staff_ref IS NOT NULL
                AND ${inHours(`g.s + ${offsetExpr(clock, w, 'g.s')}`)},
              0, 1, g.reader_id, g.client_ref, g.ord, 0, g.auto_closed, g.corrected, g.unknown_card, g.uncorrected,
              g.incomplete, g.at, g.start_seq, g.end_seq
         FROM temp.report_cont_g g
         JOIN temp.report_cont_o o ON o.reader_id = g.reader_id AND o.group_id = g.group_id`,
    ).run();

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
    clear();
  }
}
