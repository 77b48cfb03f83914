import type pino from 'pino';
import type { Clock } from '../../../protocol/index.js';
import type { AdminRoute } from '../admin/types.js';
import type { MetricsRegistry } from '../metrics.js';
import type { Db, Migration } from '../store/db.js';

export interface BackendSettings {
  url: string;
  secret: string;
  timeoutMs: number;
  batchMax: number;
  backoff: { baseMs: number; capMs: number };
}

export interface VisitPipelineOptions {
  db: Db;
  clock: Clock;
  random: () => number;
  logger: pino.Logger;
  metrics: MetricsRegistry;
  fetch?: typeof fetch;
  /** Absent: visits are recorded but nothing is forwarded. */
  backend?: BackendSettings;
}

export interface CardRegistry {
  addCard(c: { cardRef: string; staffRef: string }): void;
  revokeCard(cardRef: string): void;
}

export interface VisitPipeline {
  /** ids 'visits-001'…, to apply after the ingest migrations. */
  migrations: Migration[];
  /** Called by ingest after each group commit (never throws, never blocks). */
  onCommitted(readerIds: string[]): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  routes: AdminRoute[];
  registry: CardRegistry;
}

/** STUB: replaced by the real pipeline shortly. */
export function createVisitPipeline(opts: VisitPipelineOptions): VisitPipeline {
  void opts;
  return {
    migrations: [],
    onCommitted: () => undefined,
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    routes: [],
    registry: { addCard: () => undefined, revokeCard: () => undefined },
  };
}
