/**
 * Reports, visit corrections and the web app for a gateway instance on PostgreSQL (`store.engine:
 * "postgres"`, gateway/pg-instance.ts mounts what this returns). Several instances share one database:
 *
 * - Reports (gateway/src/reports/): the same routes and report code as the embedded gateway, over
 *   `PgReportSource` (store/postgres/reports.ts), which reads the window's facts (visits, plan, matches,
 *   corrections) from the shared tables; the figures are computed in memory from those facts (the reports'
 *   reference computation; the SQLite cells are a SQLite speed-up). With `reportWorker` they run in a worker
 *   thread with its own pool (reports/pg-worker.ts), so a large month never holds this event loop;
 *   without it in this thread.
 * - Visit corrections (gateway/src/corrections/): the same rules and routes, each correction one
 *   PostgreSQL transaction (store/postgres/corrections.ts) whose outbox event any instance's forwarder
 *   delivers once (keyed `vt1:…:{correctionId}`); period locks and care staff's flags shared. A correction
 *   re-matches the care plan at once on the instance that made it (`carePlan`).
 * - Scoped callers (coordinators, unit managers) on the other modules' routes (visits, anomalies, unknown
 *   cards, reader and plan alerts, plan matches, registry, import): with `access`, their scope is read from
 *   PostgreSQL's registry per request (store/postgres/care.ts `PgCareScopeReader`), and a manual close
 *   checks PostgreSQL's period locks; not a snapshot, so a client moved or a period locked through another
 *   instance counts from the next request on.
 * - The web app's files (they hold no data; every API call they make is checked as on SQLite).
 */
import type pino from 'pino';
import type { Clock } from '../protocol/index.js';
import { WEB_PUBLIC_PATHS, webRoutes } from './src/admin/web-assets.js';
import type { AdminRoute, Principal } from './src/admin/types.js';
import type { Access } from './src/auth/index.js';
import { scopeOf } from './src/auth/scope.js';
import type { CarePlan } from './src/care/service.js';
import { correctionRoutes } from './src/corrections/index.js';
import { PgVisitCorrections } from './src/corrections/pg.js';
import { PgReportWorker, type PgReportWorkerOptions } from './src/reports/pg-worker.js';
import { reportRoutes } from './src/reports/routes.js';
import { InProcessRunner, type ReportRunner } from './src/reports/runner.js';
import type { ReportSource } from './src/reports/source.js';
import { PgCareScopeReader } from './src/store/postgres/care.js';
import { PgCorrectionStore, PgFlagStore, PgPeriodLockStore } from './src/store/postgres/corrections.js';
import type { PgPool } from './src/store/postgres/db.js';
import { PgReportSource } from './src/store/postgres/reports.js';

/** PG_MODE entries (gateway/pg-instance.ts): what this adds to what is served on PostgreSQL. */
export const PG_REPORTING_MODE = {
  onPostgres: [
    'reports (executed vs planned, continuity, monthly, staffing, quality, CSV/XLSX: computed from the shared visits, plan and corrections)',
    'visit corrections, added and withdrawn visits, period locks, care staff flags (one transaction each; events once by key)',
    'web app',
  ],
  /** No longer in PG_MODE.notServed. */
  served: ['reports', 'visit corrections', 'web app'],
} as const;

export interface PgReportingDeps {
  pool: PgPool;
  clock: Clock;
  /** The care plan's time zone (reports' local days, a period lock's month). */
  timeZone: string;
  /** Wake the forwarder after a correction queued its event. */
  wake: () => void;
  /** A visit was corrected, added or withdrawn (default with `carePlan`: re-match it now). */
  changed?: () => void;
  /** The access module: its scoped routes and the manual close's lock check then read PostgreSQL. */
  access?: Pick<Access, 'useScopes' | 'lockCloses'>;
  /** The care plan: a correction re-matches it at once on this instance (CarePlan.visitsChanged). */
  carePlan?: Pick<CarePlan, 'visitsChanged'>;
  logger?: Pick<pino.Logger, 'error'>;
  /** Reports in a worker thread with its own pool to this database (absent: in this thread). */
  reportWorker?: PgReportWorkerOptions;
}

export interface PgReporting {
  /** Before the API routes: the web app's files, public. */
  leading: AdminRoute[];
  leadingPublicPaths: string[];
  /** Among the visit routes: corrections, locks, flags, reports. */
  routes: AdminRoute[];
  corrections: PgVisitCorrections;
  /** Where reports run (the worker, or this thread). */
  reports: ReportRunner;
  /** Ends the report worker. */
  stop(): Promise<void>;
}

export function createPgReporting(d: PgReportingDeps): PgReporting {
  const scopes = new PgCareScopeReader(d.pool);
  const corrections = new PgVisitCorrections({
    store: new PgCorrectionStore(d.pool),
    locks: new PgPeriodLockStore(d.pool),
    flags: new PgFlagStore(d.pool),
    scopes: {
      clients: (s) => scopes.clients(s),
      staffInScope: (s, staffRef) => scopes.staffInScope(s, staffRef),
    },
    clock: d.clock,
    timeZone: d.timeZone,
  });
  const source: ReportSource = new PgReportSource(d.pool);
  const reports: ReportRunner = d.reportWorker
    ? new PgReportWorker(d.reportWorker)
    : new InProcessRunner(source);
  if (d.access) {
    d.access.useScopes(scopes);
    d.access.lockCloses((clientRef, startedAtMs) =>
      corrections.lockFor(clientRef, [startedAtMs, d.clock.now()]),
    );
  }
  const plan = d.carePlan;
  const changed =
    d.changed ??
    (plan
      ? () =>
          void plan
            .visitsChanged()
            .catch((err: unknown) => d.logger?.error({ err }, 'care plan re-match after a correction failed'))
      : undefined);
  return {
    leading: webRoutes(),
    leadingPublicPaths: WEB_PUBLIC_PATHS,
    corrections,
    routes: [
      ...correctionRoutes({
        corrections,
        visibleFor: (p: Principal | undefined) => corrections.visibleFor(scopeOf(p)),
        wake: d.wake,
        ...(changed ? { changed } : {}),
      }),
      ...reportRoutes({ source, timeZone: d.timeZone, runner: reports }),
    ],
    reports,
    stop: () => reports.close(),
  };
}
