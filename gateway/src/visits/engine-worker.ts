/**
 * The visits engine's thread (started by EngineThread, engine-thread.ts): its own connection to the
 * gateway's SQLite file and its own engine (rules, visit index, time anchors, card look-ups, outbox writes),
 * fed with the events each ingest commit handed over. It works like the in-thread drain of pipeline.ts: one
 * transaction per turn over the marked readers (each reader's chunk in its own savepoint), a cursor written
 * with the rows, so a crash loses nothing and repeats nothing. The gateway's thread keeps the MQTT side, the
 * ingest commits and the acks. Both connections begin their transactions IMMEDIATE (store/sqlite/db.ts), so
 * they take turns at SQLite's one write lock.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type pino from 'pino';
import { systemClock, type AnomalyKind } from '../../../protocol/index.js';
import { CardRegistry } from '../cards/registry.js';
import { SqliteVisitSide } from '../store/sqlite/visits.js';
import { VisitEmitter } from './emit.js';
import { VisitEngine, type SkipReason } from './engine.js';
import { newlyCommitted, type CommitOutcome, type IngestItem } from '../store/ingest-store.js';
import type { EngineWorkerData, ToEngine, FromEngine } from './engine-thread.js';
import { HandedEvents } from './handed.js';
import { VisitRepo } from './repo.js';
import { TimeAnchors } from './time.js';

if (parentPort === null) throw new Error('engine-worker.ts runs as a worker thread (EngineThread)');
const port: MessagePort = parentPort;
const data = workerData as EngineWorkerData;
const post = (m: FromEngine): void => port.postMessage(m);

/** A pino-shaped logger that hands each line to the gateway's logger (levels and destination are its). */
function forwardingLogger(bindings: Record<string, unknown>): pino.Logger {
  const line =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (objOrMsg: unknown, msg?: string): void => {
      const obj: Record<string, unknown> =
        typeof objOrMsg === 'object' && objOrMsg !== null ? { ...objOrMsg } : {};
      const text = typeof objOrMsg === 'string' ? objOrMsg : (msg ?? '');
      const err = obj.err;
      if (err instanceof Error) obj.err = { message: err.message, stack: err.stack };
      try {
        post({ t: 'log', level, bindings, obj, msg: text });
      } catch {
        post({ t: 'log', level, bindings, obj: {}, msg: text });
      }
    };
  const logger = {
    debug: line('debug'),
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    trace: () => undefined,
    fatal: line('error'),
    child: (more: Record<string, unknown>) => forwardingLogger({ ...bindings, ...more }),
  };
  return logger as unknown as pino.Logger;
}

const logger = forwardingLogger({ thread: 'visits' });
const log = logger.child({ module: 'visits' });
const clock = systemClock;
// this thread's entry is its composition root: it opens its own connection to the file
const side = SqliteVisitSide.open(data.path, clock);
const outbox = side.outbox;
const visitStore = side.visits;
const repo = new VisitRepo({
  clock,
  store: visitStore,
  sharedWrites: { gen: data.writes, role: 'engine' },
  ...(data.indexMaxVisits !== undefined ? { indexMaxVisits: data.indexMaxVisits } : {}),
});
const cards = new CardRegistry({ store: side.cards, clock });
const emitter = new VisitEmitter({ repo, outbox });
const anchors = new TimeAnchors({ store: visitStore.anchors });
const handed = new HandedEvents();
let kinds: AnomalyKind[] = [];
let skipped: SkipReason[] = [];
const engine = new VisitEngine({
  turns: visitStore,
  handed,
  clock,
  logger,
  repo,
  emitter,
  cards,
  anchors,
  onAnomalies: (k) => kinds.push(...k),
  onSkipped: (r) => skipped.push(r),
});

const dirty = new Set<string>();
/** The id of the last `committed` message taken in (the main thread's backlog is exact when idle). */
let seen = 0;
let scheduled = false;
let stopping = false;

const schedule = (): void => {
  if (scheduled) return;
  scheduled = true;
  setImmediate(drain);
};

/** One turn over the marked readers (at most `budget` events), then a report to the gateway's thread. */
function drain(): void {
  scheduled = false;
  let n = 0;
  if (dirty.size > 0) {
    try {
      const readers = [...dirty];
      visitStore.runTurn(readers, () => {
        const turn = engine.processTurn(readers, data.budget);
        n = turn.n;
        // a failed reader (logged) is retried on its next commit; the rest stay marked while behind
        for (const r of readers) if (!turn.behind.has(r)) dirty.delete(r);
      });
    } catch (err) {
      // the whole turn rolled back (cursors included): nothing was half-recorded
      log.error({ err }, 'visit processing failed; will retry on the next commit');
      n = 0;
      dirty.clear();
      engine.forget();
    }
  }
  post({ t: 'turn', n, kinds, skipped, seen, idle: dirty.size === 0 });
  kinds = [];
  skipped = [];
  if (dirty.size > 0) schedule();
  else if (stopping) finish();
}

function finish(): void {
  try {
    side.close();
  } finally {
    post({ t: 'stopped' });
    port.close();
  }
}

/** Per reader, the contiguous mark after this thread's last commit (read once from the file, then kept). */
const highWater = new Map<string, number>();

/**
 * An ingest group commit on this connection: durable before the answer, so the gateway's thread acks only
 * what is on disk. Its new events (above the reader's earlier contiguous mark, minus seqs held with other
 * content) go to this thread's engine from memory, as the ingest would hand them over.
 */
function commit(id: number, items: readonly IngestItem[]): void {
  const ingest = side.ingest();
  let outcome: CommitOutcome;
  try {
    for (const it of items)
      if (it.kind === 'events' && !highWater.has(it.readerId))
        highWater.set(it.readerId, ingest.seqState(it.readerId).contiguousUpto);
    outcome = ingest.commit(items);
  } catch (err) {
    log.error({ err }, 'group commit failed in the visits engine thread; no acks sent');
    post({ t: 'commit-done', id, handed: 0, error: err instanceof Error ? err.message : String(err) });
    return;
  }
  let n = 0;
  for (const c of newlyCommitted(items, outcome, (r) => highWater.get(r) ?? 0)) {
    handed.add(c.readerId, c.events, c.conflicts);
    n += c.events.length;
  }
  for (const o of outcome.readers.values()) {
    highWater.set(o.readerId, o.upTo);
    dirty.add(o.readerId);
  }
  post({ t: 'commit-done', id, outcome, handed: n });
  if (dirty.size > 0) schedule();
}

port.on('message', (m: ToEngine) => {
  if (m.t === 'commit') {
    seen = m.id;
    commit(m.id, m.items);
    return;
  }
  if (m.t === 'committed') {
    seen = m.id;
    for (const c of m.committed) handed.add(c.readerId, c.events, c.conflicts);
    for (const r of m.readerIds) dirty.add(r);
    schedule();
    return;
  }
  // stop: what is marked is finished first (bounded by the caller's timeout), then the connection closes
  stopping = true;
  if (!scheduled) {
    if (dirty.size > 0) schedule();
    else finish();
  }
});
post({ t: 'ready' });
