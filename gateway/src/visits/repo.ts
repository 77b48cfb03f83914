import type { Clock } from '../../../protocol/index.js';
import type { AnomalyRecord, VisitAuditRecord, VisitRow, VisitTx } from '../store/ports.js';
import type { SharedWrites, VisitIndex } from '../store/sqlite/visit-index.js';
import { rawToVisit, type SqliteVisitStore } from '../store/sqlite/visits.js';
import type { TimeQuality } from './time.js';

export type { VisitRow } from '../store/ports.js';
/** A stored visit row (SQLite column names) as a VisitRow. */
export const toVisit = rawToVisit;

const QUALITY_RANK: Record<TimeQuality, number> = { synced: 0, corrected: 1, uncorrected: 2 };
export const worstQuality = (a: TimeQuality, b: TimeQuality): TimeQuality =>
  QUALITY_RANK[a] >= QUALITY_RANK[b] ? a : b;

export interface VisitRepoOptions {
  /** The visits tables (store/sqlite/visits.ts), built by the composition root. */
  store: SqliteVisitStore;
  clock: Clock;
  /** Check every answer of the in-memory index against SQLite and throw on a difference (tests). */
  verifyIndex?: boolean;
  /** The engine runs in its own thread: the write counter the two threads' indexes share (store/sqlite/visit-index.ts). */
  sharedWrites?: SharedWrites;
  /** Visits the in-memory index holds at most (store/sqlite/visit-index.ts DEFAULT_MAX_VISITS when absent). */
  indexMaxVisits?: number;
}

/**
 * The visit engine's view of its tables: every read and write goes to the store's VisitTx (the SQL is
 * in store/sqlite/visits.ts), with an in-memory index of recent visits (store/sqlite/visit-index.ts) in front of
 * the "same staff member elsewhere" question. Every write of a visit row goes through `upsert`; code
 * that changes visit rows with its own SQL calls `index.invalidate()` afterwards.
 */
export class VisitRepo {
  private readonly store: SqliteVisitStore;
  private readonly tx: VisitTx;
  readonly index: VisitIndex;
  private readonly verify: boolean;
  constructor(opts: VisitRepoOptions) {
    this.store = opts.store;
    this.tx = this.store.live;
    this.index = this.store.visitIndex({
      clock: opts.clock,
      ...(opts.sharedWrites ? { shared: opts.sharedWrites } : {}),
      ...(opts.indexMaxVisits !== undefined ? { maxVisits: opts.indexMaxVisits } : {}),
    });
    this.verify = opts.verifyIndex ?? false;
  }

  cursor(readerId: string): number {
    return this.tx.cursor(readerId);
  }

  setCursor(readerId: string, upto: number): void {
    this.tx.setCursor(readerId, upto);
  }

  /** Readers whose contiguous prefix is ahead of the engine's cursor. */
  readersBehind(): string[] {
    return this.store.readersBehind();
  }

  contiguousUpto(readerId: string): number {
    return this.tx.contiguousUpto(readerId);
  }

  events(
    readerId: string,
    after: number,
    upto: number,
    limit: number,
  ): Array<{ seq: number; event_json: string | null; received_at_ms: number }> {
    return this.tx.events(readerId, after, upto, limit);
  }

  /** The client a reader served at `atMs` (history first, then the reader's current assignment). */
  clientAt(readerId: string, atMs: number): string | null {
    return this.tx.clientAt(readerId, atMs);
  }

  visit(readerId: string, visitId: string): VisitRow | null {
    return this.tx.visit(readerId, visitId);
  }

  visitsById(visitId: string): VisitRow[] {
    return this.tx.visitsById(visitId);
  }

  openAtReader(readerId: string): VisitRow[] {
    return this.tx.openAtReader(readerId);
  }

  /**
   * A visit of the same staff member (or the same card when the staff is unknown) elsewhere at `atMs`:
   * the one that started last (ties: the greater reader id, then visit id). From the in-memory index;
   * the store when `atMs` is older than the index holds.
   */
  overlappingElsewhere(q: {
    readerId: string;
    staffRef: string | null;
    cardRef: string;
    atMs: number;
  }): VisitRow | null {
    const hit = this.index.overlappingElsewhere({
      by: q.staffRef === null ? 'card' : 'staff',
      key: q.staffRef ?? q.cardRef,
      readerId: q.readerId,
      atMs: q.atMs,
    });
    if (hit === undefined) return this.overlappingElsewhereSql(q);
    const v = hit ? this.visit(hit.readerId, hit.visitId) : null;
    if (this.verify) {
      const sql = this.overlappingElsewhereSql(q);
      if (
        (sql?.readerId ?? null) !== (v?.readerId ?? null) ||
        (sql?.visitId ?? null) !== (v?.visitId ?? null)
      ) {
        throw new Error(
          `visit index out of step with SQLite: ${JSON.stringify(q)} → index ${JSON.stringify(hit)}, sql ${sql?.readerId}/${sql?.visitId}`,
        );
      }
    }
    return v;
  }

  /** The same question answered by the store (bounded by the longest a device keeps a visit open). */
  overlappingElsewhereSql(q: {
    readerId: string;
    staffRef: string | null;
    cardRef: string;
    atMs: number;
  }): VisitRow | null {
    return this.tx.overlappingElsewhere(q);
  }

  /** Whether the reader has a visit that started or ended at or after `ms` (it has reported from after then). */
  deliveredSince(readerId: string, ms: number): boolean {
    return this.tx.deliveredSince(readerId, ms);
  }

  /** A visit of the same staff member (or card) at another reader that started inside (fromMs, toMs). */
  startedElsewhereDuring(q: {
    readerId: string;
    staffRef: string | null;
    cardRef: string;
    fromMs: number;
    toMs: number;
  }): VisitRow | null {
    return this.tx.startedElsewhereDuring(q);
  }

  /** Inserts or updates a visit row. A visit's card never changes: an update keeps card_ref. */
  upsert(v: VisitRow): void {
    this.tx.upsert(v);
    this.index.written(v);
  }

  /** Records an anomaly once per key; returns false if it was already recorded. */
  insertAnomaly(a: AnomalyRecord): boolean {
    return this.tx.insertAnomaly(a);
  }

  audit(a: VisitAuditRecord): void {
    this.tx.audit(a);
  }
}
