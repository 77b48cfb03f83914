/**
 * The report API on the admin server: every report as paged JSON, CSV (one table) or XLSX (the whole
 * report), Swedish headers by default. Read-only. Who may call it is the route policy's business
 * (gateway/src/auth/roles.ts: admins, coordinators and unit managers; not technicians); a caller whose
 * role is scoped to areas sees only the clients, plan and visits of those areas (scoped-source.ts).
 * Definitions of every figure: docs/reports.md.
 */
import { z } from 'zod';
import type { AdminResponse, AdminRoute, Principal } from '../admin/types.js';
import { scopeOf } from '../auth/scope.js';
import { DIMENSIONS, type Dimension } from './executed.js';
import { InProcessRunner, type OutputOpts, type ReportCall, type ReportRunner } from './runner.js';
import type { ReportScope } from './scoped-source.js';
import type { ReportSource } from './source.js';

export const REPORT_PATHS = {
  executed: '/api/reports/executed',
  continuity: '/api/reports/continuity',
  monthly: '/api/reports/continuity-monthly',
  staffing: '/api/reports/staffing',
  quality: '/api/reports/quality',
} as const;

const Day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date YYYY-MM-DD');
const Month = z.string().regex(/^\d{4}-\d{2}$/, 'a month YYYY-MM');

/** Output options every report takes. */
const Output = {
  format: z.enum(['json', 'csv', 'xlsx']).default('json'),
  lang: z.enum(['sv', 'en']).default('sv'),
  /** CSV: which table (default the main one). */
  table: z.string().max(40).optional(),
  /** JSON: the main table's rows [offset, offset + limit). */
  offset: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(5000).default(500),
  lateHours: z.coerce
    .number()
    .positive()
    .max(24 * 365)
    .optional(),
};

const ExecutedQuery = z
  .object({
    from: Day,
    to: Day,
    period: z.enum(['day', 'week', 'month', 'range']).default('month'),
    /** Comma-separated dimensions, e.g. area,serviceCode. */
    by: z
      .string()
      .default('area')
      .refine(
        (s) => s.split(',').every((d) => d === '' || (DIMENSIONS as readonly string[]).includes(d)),
        `comma-separated dimensions of ${DIMENSIONS.join(', ')}`,
      ),
    ...Output,
  })
  .strict();

const ContinuityQuery = z
  .object({ from: Day, days: z.coerce.number().int().min(1).max(62).default(14), ...Output })
  .strict();
const MonthlyQuery = z
  .object({
    from: Month,
    to: Month,
    threshold: z.coerce.number().min(0).max(1000).default(15),
    ...Output,
  })
  .strict();
const RangeQuery = z.object({ from: Day, to: Day, ...Output }).strict();

export interface ReportRoutesDeps {
  source: ReportSource;
  /**
   * Where reports run (runner.ts): the gateway gives a WorkerReportRunner (a worker thread on its own
   * read-only connection), so a report never blocks its event loop. Default: in this thread, on `source`.
   */
  runner?: ReportRunner;
  /** IANA zone of the municipality (default Europe/Stockholm). */
  timeZone?: string;
  /**
   * What a caller may see: null for everything, else the areas (and provider) of its scope. Default: the
   * auth policy's data scope (gateway/src/auth/scope.ts).
   */
  scopeOf?: (p: Principal | undefined) => ReportScope | null;
}

const MAX_DAYS = 800;
const bad = (error: string): AdminResponse => ({ status: 400, body: { error } });

function issues(e: z.ZodError): string {
  return e.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || 'query'}: ${i.message}`)
    .join('; ');
}

const daysBetween = (a: string, b: string) => (Date.parse(b) - Date.parse(a)) / 86_400_000;

function checkRange(from: string, to: string): string | null {
  if (Number.isNaN(Date.parse(from)) || Number.isNaN(Date.parse(to))) return 'from/to are not real dates';
  if (to < from) return `"to" (${to}) is before "from" (${from})`;
  if (daysBetween(from, to) > MAX_DAYS) return `at most ${MAX_DAYS} days per report: split the range`;
  return null;
}

export function reportRoutes(deps: ReportRoutesDeps): AdminRoute[] {
  const timeZone = deps.timeZone ?? 'Europe/Stockholm';
  const runner = deps.runner ?? new InProcessRunner(deps.source);
  /** Parses the query with the route's schema (the server validated it already; this gives the types). */
  const route = <S extends z.ZodType>(
    path: string,
    summary: string,
    schema: S,
    call: (q: z.infer<S>) => ReportCall | string,
    name: string,
  ): AdminRoute => ({
    method: 'GET',
    path,
    // The handler applies the caller's scope itself (a scoped source), which opens it to scoped roles.
    scoped: true,
    schema: { summary, tags: ['reports'], querystring: schema },
    handler: async (req) => {
      const q = schema.safeParse(Object.fromEntries(req.query));
      if (!q.success) return bad(`invalid query: ${issues(q.error)} (see docs/reports.md "HTTP API")`);
      const data = q.data as z.infer<S> & OutputOpts;
      const c = call(q.data);
      if (typeof c === 'string') return bad(c);
      const { format, lang, table, offset, limit } = data;
      return runner.run({
        ...c,
        timeZone,
        scope: (deps.scopeOf ?? scopeOf)(req.principal),
        output: { format, lang, offset, limit, ...(table === undefined ? {} : { table }) },
        name,
      });
    },
  });

  const late = (h: number | undefined) => (h === undefined ? {} : { lateDeliveryHours: h });
  return [
    route(
      REPORT_PATHS.executed,
      'Executed vs planned (and granted) time, grouped and per period, with data quality',
      ExecutedQuery,
      (q) =>
        checkRange(q.from, q.to) ?? {
          kind: 'executed',
          params: {
            fromDate: q.from,
            toDate: q.to,
            period: q.period,
            groupBy: q.by.split(',').filter(Boolean) as Dimension[],
            ...late(q.lateHours),
          },
        },
      'executed-vs-planned',
    ),
    route(
      REPORT_PATHS.continuity,
      'Staff continuity, the national 14-day measure (from a Monday), with exclusions and data quality',
      ContinuityQuery,
      (q) => ({ kind: 'continuity', params: { fromDate: q.from, days: q.days, ...late(q.lateHours) } }),
      'continuity',
    ),
    route(
      REPORT_PATHS.monthly,
      'Staff continuity per calendar month and area, with the threshold that marks months to analyse',
      MonthlyQuery,
      (q) =>
        q.to < q.from
          ? `"to" (${q.to}) is before "from" (${q.from})`
          : daysBetween(`${q.from}-01`, `${q.to}-01`) > MAX_DAYS
            ? `at most ${MAX_DAYS} days per report: split the range`
            : {
                kind: 'monthly',
                params: { fromMonth: q.from, toMonth: q.to, threshold: q.threshold, ...late(q.lateHours) },
              },
      'continuity-monthly',
    ),
    route(
      REPORT_PATHS.staffing,
      'Double staffing: planned vs executed, understaffed visits',
      RangeQuery,
      (q) =>
        checkRange(q.from, q.to) ?? {
          kind: 'staffing',
          params: { fromDate: q.from, toDate: q.to, ...late(q.lateHours) },
        },
      'double-staffing',
    ),
    route(
      REPORT_PATHS.quality,
      'Data quality of the registrations: per area and reader',
      RangeQuery,
      (q) =>
        checkRange(q.from, q.to) ?? {
          kind: 'quality',
          params: { fromDate: q.from, toDate: q.to, ...late(q.lateHours) },
        },
      'data-quality',
    ),
  ];
}
