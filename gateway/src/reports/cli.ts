/**
 * `visittag-gateway report …`: the reports on the gateway's database (read-only), for scheduled runs.
 * Definitions: docs/reports.md.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT } from '../../../runtime/cli.js';
import { onPostgres, withPg } from '../cli/pg-offline.js';
import { loadSubcommandSettings, parseSubcommand } from '../cli-gateway.js';
import { PgReportSource } from '../store/postgres/reports.js';
import { SqliteReportSource } from '../store/sqlite/reports/source.js';
import { DIMENSIONS, type Dimension, type Period } from './executed.js';
import { jsonPage, tablesOf, toCsv, toXlsx, type AnyReport, type Lang } from './export.js';
import { runContinuity, runExecuted, runMonthly, runQuality, runStaffing } from './run.js';
import type { ReportSource } from './source.js';
import { ReportClock } from './time.js';

type Out = (line: string) => void;

export const REPORT_HELP = `visittag-gateway report executed --from YYYY-MM-DD --to YYYY-MM-DD [--period day|week|month|range] [--by client,team,area,provider,serviceCode]
visittag-gateway report continuity --from YYYY-MM-DD (a Monday; 14 days)
visittag-gateway report monthly --from YYYY-MM --to YYYY-MM [--threshold 15]
visittag-gateway report staffing --from YYYY-MM-DD --to YYYY-MM-DD
visittag-gateway report quality --from YYYY-MM-DD --to YYYY-MM-DD
Options: --format json|csv|xlsx (default json)  --lang sv|en (default sv)  --out FILE (xlsx needs it)
         --tz ZONE (default Europe/Stockholm)  --late-hours N (default 24)  --offset N --limit N (json)
         --table NAME (csv; default the main table)  --config FILE
Reads the gateway's database without changing it (store.engine postgres: the shared PostgreSQL database).
Definitions: docs/reports.md.`;

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const MONTH = /^\d{4}-\d{2}$/;

export async function reportCommand(argv: string[], out: Out, err: Out): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    {
      config: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      period: { type: 'string' },
      by: { type: 'string' },
      threshold: { type: 'string' },
      format: { type: 'string' },
      lang: { type: 'string' },
      out: { type: 'string' },
      tz: { type: 'string' },
      'late-hours': { type: 'string' },
      offset: { type: 'string' },
      limit: { type: 'string' },
      table: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    REPORT_HELP,
    out,
    err,
  );
  if (typeof parsed === 'number') return parsed;
  const { values: v, positionals } = parsed;
  const kind = positionals[0];
  const problems: string[] = [];
  const format = v.format ?? 'json';
  const lang = (v.lang ?? 'sv') as Lang;
  const period = (v.period ?? 'month') as Period;
  const by = (v.by ?? 'area').split(',').filter(Boolean) as Dimension[];
  const lateDeliveryHours = v['late-hours'] === undefined ? undefined : Number(v['late-hours']);
  if (!['executed', 'continuity', 'monthly', 'staffing', 'quality'].includes(kind ?? ''))
    problems.push('name a report: executed, continuity, monthly, staffing or quality');
  const dateLike = kind === 'monthly' ? MONTH : DATE;
  if (!v.from || !dateLike.test(v.from))
    problems.push(`--from ${kind === 'monthly' ? 'YYYY-MM' : 'YYYY-MM-DD'} is required`);
  if (kind !== 'continuity' && (!v.to || !dateLike.test(v.to)))
    problems.push(`--to ${kind === 'monthly' ? 'YYYY-MM' : 'YYYY-MM-DD'} is required`);
  if (!['json', 'csv', 'xlsx'].includes(format)) problems.push('--format is json, csv or xlsx');
  if (format === 'xlsx' && !v.out) problems.push('--format xlsx needs --out FILE.xlsx');
  if (!['sv', 'en'].includes(lang)) problems.push('--lang is sv or en');
  if (!['day', 'week', 'month', 'range'].includes(period))
    problems.push('--period is day, week, month or range');
  const badDims = by.filter((d) => !DIMENSIONS.includes(d));
  if (badDims.length) problems.push(`--by takes ${DIMENSIONS.join(',')} (not ${badDims.join(',')})`);
  if (lateDeliveryHours !== undefined && !(lateDeliveryHours > 0))
    problems.push('--late-hours is a positive number');
  if (problems.length) {
    err(`${problems.join('\n')}\n\n${REPORT_HELP}`);
    return EXIT.usage;
  }
  let clock: ReportClock;
  try {
    clock = new ReportClock(v.tz ?? 'Europe/Stockholm');
  } catch (e) {
    err((e as Error).message);
    return EXIT.usage;
  }
  const loaded = loadSubcommandSettings(v.config, err);
  if (typeof loaded === 'number') return loaded;
  const produce = async (source: ReportSource): Promise<number> => {
    const from = v.from!;
    const to = v.to ?? from;
    let report: AnyReport;
    switch (kind) {
      case 'executed':
        report = await runExecuted(
          source,
          { fromDate: from, toDate: to, period, groupBy: by, lateDeliveryHours },
          clock,
        );
        break;
      case 'continuity':
        report = await runContinuity(source, { fromDate: from, lateDeliveryHours }, clock);
        break;
      case 'monthly':
        report = await runMonthly(
          source,
          {
            fromMonth: from,
            toMonth: to,
            threshold: v.threshold === undefined ? 15 : Number(v.threshold),
            lateDeliveryHours,
          },
          clock,
        );
        break;
      case 'staffing':
        report = await runStaffing(source, { fromDate: from, toDate: to, lateDeliveryHours }, clock);
        break;
      case 'quality':
      case undefined:
      default:
        report = await runQuality(source, { fromDate: from, toDate: to, lateDeliveryHours }, clock);
    }
    let body: string | Buffer;
    if (format === 'xlsx') body = await toXlsx(report, lang);
    else if (format === 'csv') {
      const tables = tablesOf(report);
      const t = v.table === undefined ? tables[0] : tables.find((x) => x.name === v.table);
      if (!t) {
        err(`no table ${v.table}; this report has ${tables.map((x) => x.name).join(', ')}`);
        return EXIT.usage;
      }
      body = toCsv(t, lang);
    } else body = JSON.stringify(jsonPage(report, Number(v.offset ?? 0), Number(v.limit ?? 500)), null, 2);
    if (v.out) writeFileSync(v.out, body);
    else out(typeof body === 'string' ? body.trimEnd() : '');
    return EXIT.ok;
  };
  // store.engine postgres: the facts are in the shared database (the instance's file holds none of them)
  if (onPostgres(loaded.config)) {
    try {
      return await withPg(loaded.config, (pool) => produce(new PgReportSource(pool)));
    } catch (e) {
      err((e as Error).message);
      return EXIT.failure;
    }
  }
  const dbPath = join(loaded.config.dataDir, 'gateway.db');
  if (!existsSync(dbPath)) {
    err(
      `no gateway database at ${dbPath}: run the gateway once (visittag-gateway run) or check dataDir in the config`,
    );
    return EXIT.noInput;
  }
  const source = SqliteReportSource.openReadOnly(dbPath);
  try {
    return await produce(source);
  } catch (e) {
    err((e as Error).message);
    return EXIT.failure;
  } finally {
    source.close();
  }
}
