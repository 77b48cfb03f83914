import type pino from 'pino';
import { TapEvent } from '../../../protocol/index.js';
import type { AnomalyKind, Clock } from '../../../protocol/index.js';
import type { CardRegistry } from '../cards/registry.js';
import type { VisitTx } from '../store/ports.js';
import type { VisitEmitter } from './emit.js';
import type { HandedEvents } from './handed.js';
import type { VisitRepo } from './repo.js';
import { VisitRules } from './rules.js';
import { parseJson } from './time.js';
import type { TimeAnchors } from './time.js';

export type SkipReason = 'invalid-event' | 'handler-error';

/** An event of the chunk: null when its stored row does not validate. */
interface ParsedRow {
  seq: number;
  ev: TapEvent | null;
}

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
  /** Events the ingest handed over in memory after its commits (./handed.ts); absent: always read. */
  handed?: HandedEvents;
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
    for (const r of this.o.repo.readersBehind()) n += this.processReaderInner(r).n;
    return n;
  }

  /** Processes one reader, at most `maxChunks` transactions of up to `chunk` events. */
  processReader(readerId: string, maxChunks = 100_000): number {
    this.o.anchors.scan();
    return this.processReaderInner(readerId, maxChunks).n;
  }

  /**
   * One drain turn over several readers (the caller's transaction around it): the time anchors are scanned
   * once for the turn, then each reader gets at most one chunk in its own savepoint, until `budget` events
   * are done. Returns the events processed and the readers still behind (a failed reader stays behind
   * and is retried on the next commit, as before).
   */
  processTurn(
    readerIds: Iterable<string>,
    budget: number,
  ): { n: number; behind: Set<string>; failed: Set<string> } {
    this.o.anchors.scan();
    const behind = new Set<string>();
    const failed = new Set<string>();
    let n = 0;
    let left = budget;
    for (const r of readerIds) {
      if (left <= 0) {
        behind.add(r);
        continue;
      }
      const res = this.processReaderInner(r, 1);
      n += res.n;
      left -= Math.max(res.n, 1);
      if (res.failed) failed.add(r);
      else if (res.behind) behind.add(r);
    }
    return { n, behind, failed };
  }

  /** The surrounding transaction rolled back: the handed events are dropped, the store read again. */
  forget(): void {
    this.o.handed?.clear();
  }

  /** Whether the reader has committed events not yet processed. */
  isBehind(readerId: string): boolean {
    return this.o.repo.contiguousUpto(readerId) > this.o.repo.cursor(readerId);
  }

  /** `behind`: more committed events than this call processed; `failed`: its transaction failed. */
  private processReaderInner(
    readerId: string,
    maxChunks = 100_000,
  ): { n: number; behind: boolean; failed: boolean } {
    const { repo, turns } = this.o;
    const chunk = this.o.chunk ?? 500;
    let total = 0;
    let behind = false;
    for (let round = 0; round < maxChunks; round++) {
      const cursor = repo.cursor(readerId);
      const upto = repo.contiguousUpto(readerId);
      behind = false;
      if (upto <= cursor) break;
      // The events the ingest handed over in memory when it holds every seq of the chunk (./handed.ts),
      // else the stored rows, parsed and validated.
      const handed = this.o.handed?.take(readerId, cursor, upto, chunk) ?? null;
      const rows: ParsedRow[] = handed
        ? handed.map((ev) => ({ seq: ev.seq, ev }))
        : repo
            .events(readerId, cursor, upto, chunk)
            .map((row) => ({ seq: row.seq, ev: parseJson(row.event_json, TapEvent) }));
      const mark = this.o.emitter.recordedCount;
      const skipped: SkipReason[] = [];
      // Sequences held but without a row (none today) are skipped; the cursor never passes upto.
      const last = rows.length < chunk ? upto : (rows[rows.length - 1]?.seq ?? upto);
      // Fast path: the whole chunk in one transaction. If a rule throws, the chunk is rolled back and
      // redone with one savepoint per event, so only the faulty event is skipped.
      const run = (safe: boolean): void =>
        turns.runTurn([readerId], (tx) => {
          skipped.length = 0;
          for (const row of rows) this.handleRow(tx, readerId, row, safe, skipped);
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
        return { n: total, behind: true, failed: true };
      }
      this.o.handed?.processed(readerId, last);
      skipped.forEach((r) => this.o.onSkipped?.(r));
      const kinds = this.o.emitter.drainRecorded();
      if (kinds.length) this.o.onAnomalies?.(kinds);
      total += rows.length;
      if (rows.length < chunk) break;
      behind = true; // a full chunk: there may be more up to `upto`
    }
    return { n: total, behind, failed: false };
  }

  /** One event; in safe mode inside a savepoint, so a poison event is logged and skipped. */
  private handleRow(
    tx: VisitTx,
    readerId: string,
    row: ParsedRow,
    safe: boolean,
    skipped: SkipReason[],
  ): void {
    const ev = row.ev;
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
