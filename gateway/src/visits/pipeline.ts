import type pino from 'pino';
import type { Clock } from '../../../protocol/index.js';
import type { AdminRoute } from '../admin/types.js';
import { CardRegistry } from '../cards/registry.js';
import type { CommitOutcome, IngestItem, IngestLog, IngestStore } from '../store/ingest-store.js';
import type { CardAssignResult, CardStore } from '../store/ports.js';
import type { MetricsRegistry } from '../metrics.js';
import { Forwarder } from '../outbox/forwarder.js';
import type { BackendSettings, ForwarderStatus } from '../outbox/forwarder.js';
import type { SqliteOutbox } from '../store/sqlite/outbox.js';
import type { SqliteVisitSide } from '../store/sqlite/visits.js';
import { VisitEmitter } from './emit.js';
import { VisitEngine } from './engine.js';
import { EngineThread } from './engine-thread.js';
import { HandedEvents, type CommittedEvents } from './handed.js';
import { closeVisitManually } from './manual-close.js';
import type { ManualCloseResult } from './manual-close.js';
import { VisitRepo } from './repo.js';
import { visitRoutes } from './routes.js';
import { TimeAnchors } from './time.js';

export type { BackendSettings } from '../outbox/forwarder.js';

/** Events processed per event-loop turn before yielding (chunks of up to 500 per reader). */
const DRAIN_BUDGET = 1000;

export interface VisitPipelineOptions {
  /** The visits tables, outbox and cards on the gateway's file (store/sqlite/visits.ts), opened by the composition root. */
  store: SqliteVisitSide;
  clock: Clock;
  random: () => number;
  logger: pino.Logger;
  metrics: MetricsRegistry;
  fetch?: typeof fetch;
  /** Absent: visits are recorded and queued but nothing is forwarded. */
  backend?: BackendSettings;
  /** Forwarder safety poll when idle (default 5000 ms). */
  idlePollMs?: number;
  /** Cross-check the in-memory visit index against SQLite on every query (tests; slow). */
  verifyVisitIndex?: boolean;
  /** Visits the in-memory visit index holds at most (config `store.visitIndexMaxVisits`; default 50,000). */
  visitIndexMaxVisits?: number;
  /**
   * Run the engine in a worker thread with its own connection to the file (engine-thread.ts) once started;
   * needs a file database and the system clock. Catch-up at start and `processNow` stay in this thread.
   */
  thread?: boolean;
}

export interface VisitPipeline {
  /**
   * Called by ingest after each group commit: schedules processing, never throws, never blocks.
   * `committed`: the events of the commit in memory (gateway seqs), so the engine need not read them back.
   */
  onCommitted(readerIds: string[], committed?: CommittedEvents): void;
  /**
   * Committed events not processed yet, as counted in memory from `onCommitted` (0 once every marked
   * reader has caught up): the ingest's back-pressure.
   */
  backlog(): number;
  /**
   * The ingest's event log to give the ingest: while the engine's thread runs, each group commit is done there,
   * on the thread's connection, and the thread processes its events from memory (one connection does every hot
   * write, so the two never wait for each other's write lock, and this thread neither writes the events nor
   * waits for their fsync). Otherwise, and for every read, `store`.
   */
  ingestLog(store: IngestStore): IngestLog;
  /** Whether the engine runs in its worker thread now (VisitPipelineOptions.thread, started, alive). */
  readonly threaded: boolean;
  /** Catches up on everything committed before (crash recovery), then starts the forwarder. */
  start(): Promise<void>;
  stop(): Promise<void>;
  routes: AdminRoute[];
  registry: {
    /** Registers the card and attributes its earlier taps (gateway/src/store/sqlite/attribution.ts). */
    addCard(c: { cardRef: string; staffRef: string; actor?: string }): CardAssignResult;
    /** Several cards in ONE transaction (CSV import): all or none. References must be valid. */
    addCards(cs: ReadonlyArray<{ cardRef: string; staffRef: string; actor: string }>): CardAssignResult[];
    /** Returns false when the card was unknown or already revoked. */
    revokeCard(cardRef: string): boolean;
  };
  /**
   * Ends the engine's worker thread at once, as a crash would (fault tests); its work comes back here.
   * `duringCommit`: at a moment when the thread holds an ingest commit it has not answered.
   */
  killThread(opts?: { duringCommit?: boolean }): Promise<void>;
  /** Synchronously processes what is pending (all readers, or the given ones). For tests and tools. */
  processNow(readerIds?: string[]): number;
  closeVisit(req: { visitId: string; actor: string; reason: string }): ManualCloseResult;
  /** The visits held open at a reader, oldest first. */
  openVisitIds(readerId: string): string[];
  /** The forwarder, when a backend URL is configured. */
  forwarder: Forwarder | null;
  /** For writers outside the engine (visit corrections): the repo keeps the visit index current; the outbox keys events. */
  visitWriter: { repo: VisitRepo; outbox: Pick<SqliteOutbox, 'enqueue'> };
  /** The card registry's read side (unknown cards, a card's holder, allow-lists). */
  cards: Pick<CardStore, 'get' | 'unknown' | 'refs'>;
}

/**
 * Composition of the visit side of the gateway: card registry, visit engine, outbox, forwarder,
 * metrics and admin routes. The tables must exist before it is created: the composition root opens
 * the database with the whole schema (store/sqlite/migrations.ts).
 */
export function createVisitPipeline(opts: VisitPipelineOptions): VisitPipeline {
  const { store: side, clock, metrics } = opts;
  const log = opts.logger.child({ module: 'visits' });
  const outbox = side.outbox;
  const visitStore = side.visits;
  // with the engine in its thread, this thread's visit writers count their writes for the engine's index
  const writes = opts.thread && side.path !== null ? new Int32Array(new SharedArrayBuffer(4)) : null;
  const repo = new VisitRepo({
    clock,
    store: visitStore,
    verifyIndex: opts.verifyVisitIndex,
    ...(opts.visitIndexMaxVisits !== undefined ? { indexMaxVisits: opts.visitIndexMaxVisits } : {}),
    ...(writes ? { sharedWrites: { gen: writes, role: 'writer' as const } } : {}),
  });
  const cards = new CardRegistry({ store: side.cards, clock });
  const emitter = new VisitEmitter({ repo, outbox });
  const anchors = new TimeAnchors({ store: visitStore.anchors });

  const anomalies = metrics.counter('visittag_visit_anomalies_total', 'Visit anomalies recorded, by kind.');
  const skipped = metrics.counter(
    'visittag_visit_events_skipped_total',
    'Stored events the visit engine skipped, by reason.',
  );
  // a gauge is 0 once the database is closed (a late scrape never throws)
  metrics.gauge('visittag_visits_open', 'Visits currently open.', () =>
    side.open ? visitStore.gauges().openVisits : 0,
  );
  metrics.gauge(
    'visittag_visit_processing_lag_events',
    'Committed events the visit engine has not processed yet.',
    () => (side.open ? visitStore.gauges().lagEvents : 0),
  );
  metrics.gauge(
    'visittag_visit_index_visits',
    "Visits held by this thread's in-memory index of recent visits (at most store.visitIndexMaxVisits, plus open ones).",
    () => {
      const n = repo.index.size();
      return n.staffVisits + n.cardVisits;
    },
  );
  metrics.gauge(
    'visittag_writer_thread',
    "1 while the ingest's group commits and the visits engine run in their worker thread (store.writerThread), else 0.",
    () => (thread?.alive ? 1 : 0),
  );
  metrics.gauge('visittag_outbox_depth', 'Visit events waiting for delivery.', () =>
    side.open ? outbox.stats().pending : 0,
  );
  metrics.gauge('visittag_outbox_oldest_age_seconds', 'Age of the oldest undelivered visit event.', () => {
    const t = side.open ? outbox.stats().oldestPendingCreatedAtMs : null;
    return t === null ? 0 : Math.max(0, (clock.now() - t) / 1000);
  });
  metrics.gauge('visittag_outbox_dead_letters', 'Visit events in the dead-letter queue.', () =>
    side.open ? outbox.stats().dead : 0,
  );
  const fm = {
    delivered: metrics.counter('visittag_forward_delivered_total', 'Visit events delivered (2xx).'),
    retried: metrics.counter(
      'visittag_forward_retried_total',
      'Visit event deliveries that failed and will be retried.',
    ),
    deadLettered: metrics.counter(
      'visittag_forward_dead_lettered_total',
      'Visit events moved to the dead letters.',
    ),
    latency: metrics.histogram(
      'visittag_forward_latency_seconds',
      'Planning backend request latency.',
      [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    ),
  };

  const handed = new HandedEvents();
  const engine = new VisitEngine({
    turns: visitStore,
    handed,
    clock,
    logger: opts.logger,
    repo,
    emitter,
    cards,
    anchors,
    onAnomalies: (kinds) => kinds.forEach((kind) => anomalies.inc({ kind })),
    onSkipped: (reason) => skipped.inc({ reason }),
  });

  const forwarder = opts.backend?.url
    ? new Forwarder({
        outbox,
        backend: opts.backend,
        clock,
        random: opts.random,
        logger: opts.logger,
        fetch: opts.fetch ?? globalThis.fetch,
        metrics: fm,
        idlePollMs: opts.idlePollMs,
      })
    : null;
  if (!forwarder) log.warn('no planning backend URL configured: visit events are queued, not forwarded');

  const dirty = new Set<string>();
  let backlog = 0;
  let scheduled = false;
  let running = false;
  /** The engine's worker thread (opts.thread), from start() until stop() or its death. */
  let thread: EngineThread | null = null;

  const processNow = (readerIds?: string[]): number => {
    let n = 0;
    const work = () =>
      readerIds ? readerIds.reduce((acc, r) => acc + engine.processReader(r), 0) : engine.processAll();
    try {
      // With the engine's thread running, the cursors are read under the write lock (one IMMEDIATE
      // transaction): the thread cannot process the same events between the read and the write.
      n = thread ? visitStore.runTurn('all', work) : work();
    } catch (err) {
      log.error({ err }, 'visit processing failed; will retry on the next commit');
    }
    if (n > 0) forwarder?.wake();
    return n;
  };

  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    // Out of the ingest's call stack (and after its acks): processing never delays an ack.
    setImmediate(drain);
  };

  /** Processes marked readers a chunk at a time, yielding to I/O after DRAIN_BUDGET events. */
  const drain = (): void => {
    scheduled = false;
    if (!running) return;
    let n = 0;
    try {
      // ONE durable commit per drain turn: each reader's chunk runs in its own savepoint inside it (a
      // failing reader rolls back alone), instead of one synchronous=FULL fsync per dirty reader. The
      // time anchors are scanned once per turn, not once per reader.
      const readers = [...dirty];
      visitStore.runTurn(readers, () => {
        const turn = engine.processTurn(readers, DRAIN_BUDGET);
        n = turn.n;
        // a failed reader (logged) is retried on the next commit; the rest stay marked while behind
        for (const r of readers) if (!turn.behind.has(r)) dirty.delete(r);
      });
    } catch (err) {
      // The whole turn rolled back (cursors included): nothing was half-recorded.
      log.error({ err }, 'visit processing failed; will retry on the next commit');
      n = 0;
      dirty.clear();
      engine.forget();
    }
    if (n > 0) forwarder?.wake();
    backlog = dirty.size > 0 ? Math.max(0, backlog - n) : 0;
    if (dirty.size > 0) schedule();
  };

  const closeVisit = (req: { visitId: string; actor: string; reason: string }): ManualCloseResult => {
    const r = closeVisitManually({ turns: visitStore, clock, repo, emitter }, req);
    const kinds = emitter.drainRecorded();
    kinds.forEach((kind) => anomalies.inc({ kind }));
    if (r.ok) log.info({ visitId: req.visitId, actor: req.actor }, 'visit closed manually');
    return r;
  };

  const startThread = (): void => {
    const path = side.path;
    if (!writes || !path) return;
    const t: EngineThread = new EngineThread({
      path,
      writes,
      ...(opts.visitIndexMaxVisits !== undefined ? { indexMaxVisits: opts.visitIndexMaxVisits } : {}),
      logger: opts.logger,
      onTurn: (n, kinds, skips) => {
        kinds.forEach((kind) => anomalies.inc({ kind }));
        skips.forEach((reason) => skipped.inc({ reason }));
        if (n > 0) forwarder?.wake();
      },
      onExit: () => {
        // a dead thread: what it had not processed is caught up here (the cursors are the truth)
        if (thread === t) thread = null;
        engine.forget();
        if (running) {
          processNow();
          for (const r of readersBehindNow()) dirty.add(r);
          if (dirty.size > 0) schedule();
        }
      },
    });
    thread = t;
  };
  const readersBehindNow = (): string[] => {
    try {
      return visitStore.readersBehind();
    } catch {
      return [];
    }
  };

  /** Whether the ingest's commits go to the thread (ingestLog was taken): then the thread has their events. */
  let routed = false;
  return {
    ingestLog(store) {
      routed = true;
      return {
        commit: (items: readonly IngestItem[]): CommitOutcome | Promise<CommitOutcome> =>
          thread?.alive ? thread.commit(items) : store.commit(items),
        seqState: (readerId) => store.seqState(readerId),
        gaps: (readerId, limit) => store.gaps(readerId, limit),
        readersWithGaps: () => store.readersWithGaps(),
      };
    },
    onCommitted(readerIds, committed) {
      if (thread?.alive) {
        if (!routed) thread.committed(readerIds, committed);
        return;
      }
      if (committed)
        for (const c of committed) {
          handed.add(c.readerId, c.events, c.conflicts);
          backlog += c.events.length;
        }
      for (const r of readerIds) dirty.add(r);
      schedule();
    },
    backlog: () => (thread?.alive ? thread.backlog() : backlog),
    get threaded() {
      return thread?.alive === true;
    },
    async start() {
      running = true;
      processNow();
      startThread();
      // the thread opens its connection before the first commit is handed to it (bounded: a thread that
      // does not answer still gets the commits; its messages wait for it)
      if (thread) await Promise.race([thread.ready, new Promise((r) => setTimeout(r, 30_000).unref())]);
      forwarder?.start();
    },
    async stop() {
      running = false;
      const t = thread;
      thread = null;
      await t?.stop();
      await forwarder?.stop();
    },
    routes: visitRoutes({
      visits: visitStore,
      outbox,
      closeVisit,
      wakeForwarder: () => forwarder?.wake(),
      forwarderStatus: (): ForwarderStatus | null => forwarder?.status() ?? null,
    }),
    registry: {
      addCard: (c) => {
        const r = cards.addCard(c);
        // The re-attribution set staff_ref with its own SQL: the visit index reloads.
        if (r.attributed.visits > 0) repo.index.invalidate();
        if (r.attributed.events > 0) forwarder?.wake();
        return r;
      },
      addCards: (cs) => {
        const rs = cards.addCards(cs);
        if (rs.some((r) => r.attributed.visits > 0)) repo.index.invalidate();
        if (rs.some((r) => r.attributed.events > 0)) forwarder?.wake();
        return rs;
      },
      revokeCard: (cardRef) => cards.revokeCard(cardRef),
    },
    cards: cards.store,
    killThread: async (o) => {
      await thread?.kill(o?.duringCommit === true);
    },
    processNow,
    closeVisit,
    openVisitIds: (readerId) => visitStore.openVisitIds(readerId),
    forwarder,
    visitWriter: { repo, outbox },
  };
}
