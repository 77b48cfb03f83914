import type pino from 'pino';
import { TapEvent } from '../../../protocol/index.js';
import type { AnomalyKind, Clock } from '../../../protocol/index.js';
import type { CardRegistry } from '../cards/registry.js';
import type { VisitTx } from '../store/ports.js';
import type { VisitEmitter } from './emit.js';
import type { VisitRepo } from './repo.js';
import { VisitRules } from './rules.js';
import { parseJson } from './time.js';
import type { TimeAnchors } from './time.js';

export type SkipReason = 'invalid-event' | 'handler-error';

/**
 * A visits store that answers a turn synchronously (SQLite: store/sqlite/visits.ts). The rules are
 * synchronous; PostgreSQL's turn (a Promise) needs an async engine loop around them (not yet).
 */
export interface SyncVisitTurns {
  runTurn<T>(readerIds: readonly string[] | 'all', work: (tx: VisitTx) => T): T;
}

export interface VisitEngineOptions {
  /** Each chunk is one turn of the store (one transaction); a faulty event is isolated in it. */
  turns: SyncVisitTurns;
  clock: Clock;
  logger: pino.Logger;
  repo: VisitRepo;
  emitter: VisitEmitter;
  cards: CardRegistry;
  anchors: TimeAnchors;
  /** Events per transaction (default 500). */
  chunk?: number;
  onAnomalies?: (kinds: AnomalyKind[]) => void;
  onSkipped?: (reason: SkipReason) => void;
}

/**
 * Turns each reader's contiguous event prefix into visits, anomalies and outbox rows. Per reader it
 * reads events with seq in (cursor, contiguous_upto] in seq order and writes everything together with
 * the new cursor in ONE transaction, so a crash re-processes at most a whole chunk, idempotently.
 * The rules themselves are in rules.ts.
 */
export class VisitEngine {
  private readonly o: VisitEngineOptions;
  private readonly log: pino.Logger;
  private readonly rules: VisitRules;
  constructor(opts: VisitEngineOptions) {
    this.o = opts;
    this.rules = new VisitRules(opts);
    this.log = opts.logger.child({ module: 'visit-engine' });
  }

  /** Processes every reader that is behind. Returns the number of events processed. */
  processAll(): number {
    this.o.anchors.scan();
    let n = 0;
    for (const r of this.o.repo.readersBehind()) n += this.processReaderInner(r);
    return n;
  }

  /** Processes one reader, at most `maxChunks` transactions of up to `chunk` events. */
  processReader(readerId: string, maxChunks = 100_000): number {
    this.o.anchors.scan();
    return this.processReaderInner(readerId, maxChunks);
  }

  /** Whether the reader has committed events not yet processed. */
  isBehind(readerId: string): boolean {
    return this.o.repo.contiguousUpto(readerId) > this.o.repo.cursor(readerId);
  }

  private processReaderInner(readerId: string, maxChunks = 100_000): number {
    const { repo, turns } = this.o;
    const chunk = this.o.chunk ?? 500;
    let total = 0;
    for (let round = 0; round < maxChunks; round++) {
      const cursor = repo.cursor(readerId);
      const upto = repo.contiguousUpto(readerId);
      if (upto <= cursor) break;
      const rows = repo.events(readerId, cursor, upto, chunk);
      const mark = this.o.emitter.recordedCount;
      const skipped: SkipReason[] = [];
      // Fast path: the whole chunk in one transaction. If a rule throws, the chunk is rolled back and
      // redone with one savepoint per event, so only the faulty event is skipped.
      const run = (safe: boolean): void =>
        turns.runTurn([readerId], (tx) => {
          skipped.length = 0;
          for (const row of rows) this.handleRow(tx, readerId, row, safe, skipped);
          // Sequences held but without a row (none today) are skipped; the cursor never passes upto.
          const last = rows.length < chunk ? upto : (rows[rows.length - 1]?.seq ?? upto);
          repo.setCursor(readerId, last);
        });
      try {
        try {
          run(false);
        } catch {
          this.o.emitter.discardRecorded(mark);
          run(true);
        }
      } catch (err) {
        this.o.emitter.discardRecorded(mark);
        this.log.error({ err, readerId }, 'visit processing transaction failed; will retry');
        break;
      }
      skipped.forEach((r) => this.o.onSkipped?.(r));
      const kinds = this.o.emitter.drainRecorded();
      if (kinds.length) this.o.onAnomalies?.(kinds);
      total += rows.length;
      if (rows.length < chunk) break;
    }
    return total;
  }

  /** One event; in safe mode inside a savepoint, so a poison event is logged and skipped. */
  private handleRow(
    tx: VisitTx,
    readerId: string,
    row: { seq: number; event_json: string | null; received_at_ms: number },
    safe: boolean,
    skipped: SkipReason[],
  ): void {
    const ev = parseJson(row.event_json, TapEvent);
    if (!ev || ev.readerId !== readerId || ev.seq !== row.seq) {
      this.log.warn({ readerId, seq: row.seq }, 'stored event does not validate; skipped');
      skipped.push('invalid-event');
      return;
    }
    if (!safe) return this.rules.handle(ev);
    const mark = this.o.emitter.recordedCount;
    try {
      tx.isolated(() => this.rules.handle(ev));
    } catch (err) {
      this.o.emitter.discardRecorded(mark);
      this.log.error({ err, readerId, seq: row.seq }, 'visit rule failed for an event; skipped');
      skipped.push('handler-error');
    }
  }
}
