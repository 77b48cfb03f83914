import type pino from 'pino';
import { TapEvent } from '../../../protocol/index.js';
import type { AnomalyKind, Clock, EventTime } from '../../../protocol/index.js';
import type { StoredEventRow, VisitStore, VisitTx } from '../store/ports.js';
import { VisitEmitter } from './emit.js';
import type { SkipReason } from './engine.js';
import { closeOpenVisit, type ManualCloseResult } from './manual-close.js';
import { VisitRules } from './rules.js';
import type { RulesAnchors, RulesCards, RulesRepo } from './rules.js';
import { learnAnchors, parseJson, resolveTime, SYNCED_OFFSET_BOUND_MS, uncertaintyOf } from './time.js';
import type { ResolvedTime } from './time.js';

export interface TxVisitTurnsOptions {
  /** Any VisitStore; made for one whose turn is a Promise (PostgreSQL: store/postgres/visits.ts). */
  store: VisitStore;
  clock: Clock;
  logger: pino.Logger;
  /** Events per reader per turn (default 500). */
  chunk?: number;
  onAnomalies?: (kinds: AnomalyKind[]) => void;
  onSkipped?: (reason: SkipReason) => void;
  /** How far a "synced" clock may be off before it is corrected or distrusted (default SYNCED_OFFSET_BOUND_MS). */
  syncedOffsetBoundMs?: number;
}

/** Rows of one reader's anchor scan per turn (a longer backlog is scanned over several turns). */
const ANCHOR_ROWS = 2000;

/**
 * The visits engine's turn for a store that answers asynchronously (PostgreSQL): the SAME rules
 * (rules.ts) run over the turn's VisitTx, for several readers in ONE turn (one transaction, one
 * advisory lock per reader). The store is told the chunk size (`TurnHint`), so it fetches every
 * reader's cursor, prefix, events, open visits and client history before the first run, and batches
 * the rest per kind of read; a turn is a handful of statements whatever the number of events.
 *
 * The work may run several times (the store runs it again after fetching what a run missed), so it
 * keeps no state outside the turn: the rules' context points at the current run's VisitTx, and what
 * the emitter recorded is reset at each run's start.
 *
 * Time anchors: where the SQLite engine scans every stored row once by `events.id` (one writer), a
 * turn scans each of its readers' rows past that reader's own mark (`VisitTx.anchorRows`: one
 * reader's ids commit in order under its lock, which the ingest holds too), before any event is
 * processed, with the SAME learning rules (time.ts `learnAnchors`): exact offsets of synced times,
 * batch-`sentAt` estimates of unsynced boots, and the measured offset of a "synced" clock (corrected
 * when ahead, its uncertainty widened when behind). The reader's uncertainty is the offset of its latest
 * measured boot, stored (`clockOffset`), so every instance judges it alike.
 * The rules' log lines are held until the turn commits and written once (a repeated run logs nothing twice).
 */
export class TxVisitTurns {
  private readonly o: TxVisitTurnsOptions;
  private readonly log: pino.Logger;
  private tx: VisitTx | null = null;
  private readonly rules: VisitRules;
  private readonly flushLog: () => void;
  private readonly emitter: VisitEmitter;
  /** The rules' log lines of the current run, written once the turn committed (a run may be repeated). */
  private logged: Array<{ level: 'info' | 'warn' | 'error'; obj: object; msg?: string }> = [];
  private busy: Promise<unknown> = Promise.resolve();
  /** Readers the last turn left with a full chunk processed (more may be waiting). */
  lastFull: string[] = [];
  constructor(opts: TxVisitTurnsOptions) {
    this.o = opts;
    this.log = opts.logger.child({ module: 'visit-turns' });
    const cur = (): VisitTx => {
      if (!this.tx) throw new Error('visit rules used outside a turn');
      return this.tx;
    };
    const repo: RulesRepo = {
      visit: (r, v) => cur().visit(r, v),
      clientAt: (r, at) => cur().clientAt(r, at),
      openAtReader: (r) => cur().openAtReader(r),
      upsert: (v) => cur().upsert(v),
      overlappingElsewhere: (q) => cur().overlappingElsewhere(q),
      deliveredSince: (r, ms) => cur().deliveredSince(r, ms),
      startedElsewhereDuring: (q) => cur().startedElsewhereDuring(q),
    };
    const cards: RulesCards = { statusAt: (c, at) => cur().cardStatusAt(c, at) };
    const bound = opts.syncedOffsetBoundMs ?? SYNCED_OFFSET_BOUND_MS;
    const anchors: RulesAnchors = {
      resolve: (readerId: string, t: EventTime): ResolvedTime =>
        resolveTime(
          t,
          {
            syncedOffset: () => cur().syncedOffset(readerId, t.bootId),
            anchor: () => cur().anchor(readerId, t.bootId),
          },
          bound,
        ),
      uncertaintyMs: (readerId: string) => uncertaintyOf(cur().clockOffset(readerId), bound),
    };
    this.emitter = new VisitEmitter({
      repo: { insertAnomaly: (a) => cur().insertAnomaly(a) },
      outbox: { enqueue: (e, now) => cur().enqueue(e, now) },
    });
    const rulesLog = opts.logger.child({ module: 'visit-rules' });
    const buffered = (level: 'info' | 'warn' | 'error') => (obj: object, msg?: string) => {
      this.logged.push({ level, obj, msg });
    };
    const logger = {
      info: buffered('info'),
      warn: buffered('warn'),
      error: buffered('error'),
      debug: () => undefined,
      child: () => logger,
    } as unknown as pino.Logger;
    this.flushLog = () => {
      for (const l of this.logged) rulesLog[l.level](l.obj, l.msg);
      this.logged = [];
    };
    this.rules = new VisitRules({
      clock: opts.clock,
      logger,
      repo,
      emitter: this.emitter,
      cards,
      anchors,
    });
  }

  /**
   * One turn over `readerIds`: up to `chunk` events of each past its cursor, in one transaction.
   * A rule that throws rolls the turn back and it is run again with each event isolated, so only the
   * faulty event is skipped. Returns the number of events processed.
   */
  process(readerIds: readonly string[]): Promise<number> {
    return this.exclusive(() => this.processNow(readerIds));
  }

  /**
   * An operator closes an open visit (visits/manual-close.ts, the same close as on SQLite) in a turn
   * holding the lock of the visit's reader, so it never interleaves with that reader's events.
   */
  closeVisit(req: { visitId: string; actor: string; reason: string }): Promise<ManualCloseResult> {
    return this.exclusive(async () => {
      const readers = await this.o.store.readersOfVisit(req.visitId);
      if (readers.length === 0) return { ok: false, status: 404, error: 'no such visit' } as const;
      let out: ManualCloseResult;
      try {
        out = await this.o.store.runTurn(readers, (tx): ManualCloseResult => {
          this.tx = tx;
          this.emitter.discardRecorded(0);
          try {
            return closeOpenVisit(
              {
                clock: this.o.clock,
                repo: {
                  visitsById: (id) => tx.visitsById(id),
                  upsert: (v) => tx.upsert(v),
                  audit: (a) => tx.audit(a),
                },
                emitter: this.emitter,
              },
              req,
            );
          } finally {
            this.tx = null;
          }
        });
      } catch (err) {
        this.emitter.discardRecorded(0);
        throw err;
      }
      const kinds = this.emitter.drainRecorded();
      if (kinds.length) this.o.onAnomalies?.(kinds);
      return out;
    });
  }

  /** One turn or close at a time per instance of this class (they share the emitter and the view). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.busy.then(fn, fn);
    this.busy = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async processNow(readerIds: readonly string[]): Promise<number> {
    const ids = [...new Set(readerIds)];
    if (ids.length === 0) return 0;
    const chunk = this.o.chunk ?? 500;
    let skipped: SkipReason[] = [];
    let full: string[] = [];
    this.lastFull = [];
    const run = (safe: boolean) =>
      this.o.store.runTurn(
        ids,
        (tx): number => {
          this.tx = tx;
          this.emitter.discardRecorded(0);
          this.logged = [];
          skipped = [];
          full = [];
          let n = 0;
          try {
            // every reader's anchors first (as the SQLite engine scans before it processes)
            for (const r of ids) if (scanAnchors(tx, r)) full.push(r);
            for (const r of ids) {
              const cursor = tx.cursor(r);
              const upto = tx.contiguousUpto(r);
              if (upto <= cursor) continue;
              const rows = tx.events(r, cursor, upto, chunk);
              for (const row of rows) this.handleRow(tx, r, row, safe, skipped);
              tx.setCursor(r, rows.length < chunk ? upto : (rows[rows.length - 1]?.seq ?? upto));
              n += rows.length;
              if (rows.length >= chunk && !full.includes(r)) full.push(r);
            }
          } finally {
            this.tx = null;
          }
          return n;
        },
        { events: chunk, anchorRows: ANCHOR_ROWS },
      );
    let n: number;
    try {
      try {
        n = await run(false);
      } catch (err) {
        this.log.warn({ err }, 'a visit rule failed in a turn: running it again with each event isolated');
        n = await run(true);
      }
    } catch (err) {
      this.emitter.discardRecorded(0);
      this.logged = [];
      this.log.error({ err, readers: ids.length }, 'visit processing turn failed; will retry');
      return 0;
    }
    this.lastFull = full;
    this.flushLog();
    skipped.forEach((r) => this.o.onSkipped?.(r));
    const kinds = this.emitter.drainRecorded();
    if (kinds.length) this.o.onAnomalies?.(kinds);
    return n;
  }

  private handleRow(
    tx: VisitTx,
    readerId: string,
    row: StoredEventRow,
    safe: boolean,
    skipped: SkipReason[],
  ): void {
    const ev = parseJson(row.event_json, TapEvent);
    if (!ev || ev.readerId !== readerId || ev.seq !== row.seq) {
      skipped.push('invalid-event');
      return;
    }
    if (!safe) return this.rules.handle(ev);
    const mark = this.emitter.recordedCount;
    try {
      tx.isolated(() => this.rules.handle(ev));
    } catch {
      this.emitter.discardRecorded(mark);
      skipped.push('handler-error');
    }
  }
}

/**
 * The reader's anchor scan: its rows stored since the last scan (also those above a gap), learned
 * by the rules both engines share (time.ts `learnAnchors`). Returns true when it stopped at the
 * limit (more rows wait: the reader is drained again).
 */
function scanAnchors(tx: VisitTx, readerId: string): boolean {
  const rows = tx.anchorRows(readerId, ANCHOR_ROWS);
  const last = rows[rows.length - 1];
  if (!last) return false;
  const learned = learnAnchors(rows, tx);
  for (const a of learned.anchors) tx.putAnchor(a.readerId, a.bootId, a.anchor);
  for (const o of learned.offsets) if (o.changed) tx.putSyncedOffset(o.readerId, o.bootId, o.offsetMs);
  const latest = learned.offsets[learned.offsets.length - 1];
  if (latest && tx.clockOffset(readerId) !== latest.offsetMs) tx.setClockOffset(readerId, latest.offsetMs);
  tx.setAnchorScanned(readerId, last.id);
  return rows.length >= ANCHOR_ROWS;
}
