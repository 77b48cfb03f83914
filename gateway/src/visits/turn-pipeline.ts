import type pino from 'pino';
import type { AnomalyKind, Clock } from '../../../protocol/index.js';
import type { MetricsRegistry } from '../metrics.js';
import { Forwarder } from '../outbox/forwarder.js';
import type { BackendSettings } from '../outbox/forwarder.js';
import type { OutboxStore, VisitStore } from '../store/ports.js';
import type { ManualCloseResult } from './manual-close.js';
import { TxVisitTurns } from './tx-turns.js';

/** Readers per turn (one transaction holding their locks). */
const MAX_READERS = 64;

export interface TurnVisitPipelineOptions {
  /** A visits store whose turn answers with a Promise (PostgreSQL). */
  store: VisitStore;
  outbox: OutboxStore;
  clock: Clock;
  random: () => number;
  logger: pino.Logger;
  metrics: MetricsRegistry;
  fetch?: typeof fetch;
  /** Absent: visits are recorded and queued but nothing is forwarded. */
  backend?: BackendSettings;
  idlePollMs?: number;
  /** Events per reader per turn (default 500). */
  chunk?: number;
  /**
   * How often every reader behind is looked for (default 5000 ms; 0: only at start). Several
   * instances: one that committed a reader's batch and died before its turn leaves that reader behind
   * until some instance looks; this sweep is that look.
   */
  catchUpMs?: number;
  onAnomalies?: (kinds: AnomalyKind[]) => void;
}

export interface TurnVisitPipeline {
  /** Called after each ingest commit: marks the readers and drains them; never throws, never blocks. */
  onCommitted(readerIds: string[]): void;
  /** Catches up on every reader behind (crash recovery, other instances' leftovers), then forwards; sweeps again every `catchUpMs`. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** An operator closes an open visit (the same close as on SQLite: visits/manual-close.ts). */
  closeVisit(req: { visitId: string; actor: string; reason: string }): Promise<ManualCloseResult>;
  /** Resolves when nothing is marked and no turn is in flight (tests, tools). */
  idle(): Promise<void>;
  forwarder: Forwarder | null;
}

/**
 * The visit side of a gateway instance on an async store (PostgreSQL; several instances on one
 * database): the marked readers are drained by ONE turn at a time over all of them
 * (visits/tx-turns.ts), and the outbox is forwarded through its port (PgOutbox claims rows with
 * leases, so several instances never send a row twice at once). The readers' advisory locks make two
 * instances that were told about the same reader take turns; the cursor makes the later one a no-op.
 */
export function createTurnVisitPipeline(o: TurnVisitPipelineOptions): TurnVisitPipeline {
  const log = o.logger.child({ module: 'visits' });
  const turns = new TxVisitTurns({
    store: o.store,
    clock: o.clock,
    logger: o.logger,
    chunk: o.chunk,
    onAnomalies: o.onAnomalies,
  });
  const forwarder = o.backend?.url
    ? new Forwarder({
        outbox: o.outbox,
        backend: o.backend,
        clock: o.clock,
        random: o.random,
        logger: o.logger,
        fetch: o.fetch ?? globalThis.fetch,
        metrics: {
          delivered: o.metrics.counter('visittag_forward_delivered_total', 'Visit events delivered (2xx).'),
          retried: o.metrics.counter(
            'visittag_forward_retried_total',
            'Visit event deliveries that failed and will be retried.',
          ),
          deadLettered: o.metrics.counter(
            'visittag_forward_dead_lettered_total',
            'Visit events moved to the dead letters.',
          ),
          latency: o.metrics.histogram(
            'visittag_forward_latency_seconds',
            'Planning backend request latency.',
            [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
          ),
        },
        idlePollMs: o.idlePollMs,
      })
    : null;
  if (!forwarder) log.warn('no planning backend URL configured: visit events are queued, not forwarded');

  const dirty = new Set<string>();
  let running = false;
  let sweep: ReturnType<typeof setInterval> | null = null;
  const catchUp = async (): Promise<void> => {
    for (const r of await o.store.readersBehind()) dirty.add(r);
    kick();
  };
  let draining: Promise<void> | null = null;

  const drain = async (): Promise<void> => {
    // bounded: each turn either processes events or clears the readers it was given
    for (let i = 0; i < 1_000_000 && running && dirty.size > 0; i++) {
      // at most MAX_READERS per turn: a turn holds its readers' locks (their ingest waits meanwhile)
      const ids = [...dirty].sort().slice(0, MAX_READERS);
      for (const r of ids) dirty.delete(r);
      const n = await turns.process(ids);
      // a full chunk: more may be waiting; a failed turn (n = 0, logged) waits for the next commit
      for (const r of turns.lastFull) dirty.add(r);
      if (n > 0) forwarder?.wake();
    }
  };
  const kick = (): void => {
    if (!running || draining) return;
    draining = drain()
      .catch((err: unknown) => log.error({ err }, 'visit drain failed; will retry on the next commit'))
      .finally(() => {
        draining = null;
        if (running && dirty.size > 0) kick();
      });
  };

  return {
    onCommitted(readerIds) {
      for (const r of readerIds) dirty.add(r);
      kick();
    },
    async start() {
      running = true;
      await catchUp();
      forwarder?.start();
      const every = o.catchUpMs ?? 5000;
      if (every > 0) {
        sweep = setInterval(() => {
          catchUp().catch((err: unknown) =>
            log.warn({ err }, 'looking for readers behind failed; will retry'),
          );
        }, every);
        sweep.unref();
      }
    },
    async stop() {
      running = false;
      if (sweep) clearInterval(sweep);
      await draining;
      await forwarder?.stop();
    },
    async closeVisit(req) {
      const r = await turns.closeVisit(req);
      if (r.ok) forwarder?.wake();
      return r;
    },
    async idle() {
      for (let i = 0; i < 1_000_000 && (draining || (running && dirty.size > 0)); i++) {
        await (draining ?? Promise.resolve());
      }
    },
    forwarder,
  };
}
