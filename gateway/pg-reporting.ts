/**
 * Reports, visit corrections and the web app for a gateway instance on PostgreSQL (`store.engine:
 * "postgres"`, gateway/pg-instance.ts mounts what this returns). Several instances share one database:
 *
 * - Reports (gateway/src/reports/): the same routes and report code as the embedded gateway, over
 *   `PgReportSource` (store/postgres/reports.ts), which reads the window's facts (visits, plan, matches,
 *   corrections) from the shared tables; the figures are computed in memory from those facts (the reports'
 *   reference computation; the SQLite cells are a SQLite speed-up). Reports run in this thread (no
 *   worker): the SQL waits on PostgreSQL, the computation takes the event loop while it runs.
 * - Visit corrections (gateway/src/corrections/): the same rules and routes, each correction one
 *   PostgreSQL transaction (store/postgres/corrections.ts) whose outbox event any instance's forwarder
 *   delivers once (keyed `vt1:…:{correctionId}`); period locks and care staff's flags shared.
 * - The web app's files (they hold no data; every API call they make is checked as on SQLite).
 */
import type { Clock } from '../protocol/index.js';
import { WEB_PUBLIC_PATHS, webRoutes } from './src/admin/web-assets.js';
import type { AdminRoute, Principal } from './src/admin/types.js';
import { scopeOf } from './src/auth/scope.js';
import { correctionRoutes } from './src/corrections/index.js';
import { PgVisitCorrections } from './src/corrections/pg.js';
import { reportRoutes } from './src/reports/routes.js';
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
  /** A visit was corrected, added or withdrawn (the care plan's sweep picks the change up). */
  changed?: () => void;
}

export interface PgReporting {
  /** Before the API routes: the web app's files, public. */
  leading: AdminRoute[];
  leadingPublicPaths: string[];
  /** Among the visit routes: corrections, locks, flags, reports. */
  routes: AdminRoute[];
  corrections: PgVisitCorrections;
}

export function createPgReporting(d: PgReportingDeps): PgReporting {
  const scopes = new PgCareScopeReader(d.pool);
  const corrections = new PgVisitCorrections({
    store: new PgCorrectionStore(d.pool),
    locks: new PgPeriodLockStore(d.pool),
    flags: new PgFlagStore(d.pool),
    scopes: {
      clients: (s) => scopes.clients(s),
      staffInScope: async (s, staffRef) =>
        ((
          await d.pool.query('SELECT 1 FROM care_staff WHERE staff_ref = $1 AND area_id = ANY($2::text[])', [
            staffRef,
            [...s.areas],
          ])
        ).rowCount ?? 0) > 0,
    },
    clock: d.clock,
    timeZone: d.timeZone,
  });
  const source: ReportSource = new PgReportSource(d.pool);
  return {
    leading: webRoutes(),
    leadingPublicPaths: WEB_PUBLIC_PATHS,
    corrections,
    routes: [
      ...correctionRoutes({
        corrections,
        visibleFor: (p: Principal | undefined) => corrections.visibleFor(scopeOf(p)),
        wake: d.wake,
        ...(d.changed ? { changed: d.changed } : {}),
      }),
      ...reportRoutes({ source, timeZone: d.timeZone }),
    ],
  };
}
