/**
 * The care plan as the composition root sees it: one factory, its routes, its migrations.
 * Tables: store/sqlite/care-migrations.ts (`careMigrations`, applied after the gateway's own list); the
 * port is store/care.ts, adapters store/sqlite/care.ts and store/postgres/care.ts.
 */
import type pino from 'pino';
import type { Clock } from '../../../protocol/index.js';
import type { AdminRoute } from '../admin/types.js';
import type { MetricsRegistry } from '../metrics.js';
import type { CareStore } from '../store/care.js';
import { careRoutes } from './routes.js';
import { CarePlan, type CarePlanConfig } from './service.js';

export { careMigrations } from '../store/sqlite/care-migrations.js';
export { CarePlan, type CarePlanConfig } from './service.js';

export interface CareModule {
  plan: CarePlan;
  routes: AdminRoute[];
}

export function createCareModule(opts: {
  /** The care tables: the composition root's adapter (store/sqlite/care.ts on the gateway's file). */
  store: CareStore;
  clock: Clock;
  logger: pino.Logger;
  metrics?: MetricsRegistry;
  config?: Partial<CarePlanConfig>;
  /** Wake the forwarder after alert events were queued. */
  onQueued?: () => void;
}): CareModule {
  const plan = new CarePlan({
    store: opts.store,
    clock: opts.clock,
    logger: opts.logger,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    ...(opts.config ? { config: opts.config } : {}),
    ...(opts.onQueued ? { onQueued: opts.onQueued } : {}),
  });
  return { plan, routes: careRoutes(plan) };
}
