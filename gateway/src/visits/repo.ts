import type { AnomalyKind, Clock } from '../../../protocol/index.js';
import type { Db } from '../store/sqlite/db.js';
import { statementCache } from '../store/sqlite/stmt-cache.js';
import type { TimeQuality } from './time.js';
import { MAX_OPEN_SCAN_MS, VisitIndex } from './visit-index.js';

export interface VisitRow {
  readerId: string;
  visitId: string;
  clientRef: string | null;
  cardRef: string;
  staffRef: string | null;
  groupId: string | null;
  state: 'open' | 'closed';
  startedAtMs: number | null;
  startSeq: number | null;
  endedAtMs: number | null;
  endSeq: number | null;
  endReason: string | null;
  timeQuality: TimeQuality;
  anomalies: AnomalyKind[];
  lateEndSeq: number | null;
  updatedAtMs: number;
}

interface RawVisit {
  reader_id: string;
  visit_id: string;
  client_ref: string | null;
  card_ref: string;
  staff_ref: string | null;
  group_id: string | null;
  state: 'open' | 'closed';
  started_at_ms: number | null;
  start_seq: number | null;
  ended_at_ms: number | null;
  end_seq: number | null;
  end_reason: string | null;
  time_quality: TimeQuality;
  anomalies_json: string;
  late_end_seq: number | null;
  updated_at_ms: number;
}

export const toVisit = (r: RawVisit): VisitRow => ({
  readerId: r.reader_id,
  visitId: r.visit_id,
  clientRef: r.client_ref,
  cardRef: r.card_ref,
  staffRef: r.staff_ref,
  groupId: r.group_id,
  state: r.state,
  startedAtMs: r.started_at_ms,
  startSeq: r.start_seq,
  endedAtMs: r.ended_at_ms,
  endSeq: r.end_seq,
  endReason: r.end_reason,
  timeQuality: r.time_quality,
  anomalies: JSON.parse(r.anomalies_json) as AnomalyKind[],
  lateEndSeq: r.late_end_seq,
  updatedAtMs: r.updated_at_ms,
});

const QUALITY_RANK: Record<TimeQuality, number> = { synced: 0, corrected: 1, uncorrected: 2 };
export const worstQuality = (a: TimeQuality, b: TimeQuality): TimeQuality =>
  QUALITY_RANK[a] >= QUALITY_RANK[b] ? a : b;

export interface VisitRepoOptions {
  db: Db;
  clock: Clock;
  /** Check every answer of the in-memory index against SQLite and throw on a difference (tests). */
  verifyIndex?: boolean;
}

/**
 * SQL of the visits, anomalies and cursor tables (all written inside the engine's transaction), plus
 * an in-memory index of recent visits (visit-index.ts). Every write of a visit row goes through
 * `upsert`; code that changes visit rows with its own SQL calls `index.invalidate()` afterwards.
 */
export class VisitRepo {
  private readonly db: Db;
  private readonly q: ReturnType<typeof statementCache>;
  readonly index: VisitIndex;
  private readonly verify: boolean;
  constructor(opts: VisitRepoOptions) {
    this.db = opts.db;
    this.q = statementCache(opts.db);
    this.index = new VisitIndex({ db: opts.db, clock: opts.clock });
    this.verify = opts.verifyIndex ?? false;
  }

  cursor(readerId: string): number {
    const r = this.q('SELECT processed_upto FROM visit_cursor WHERE reader_id = ?').get(readerId) as
      { processed_upto: number } | undefined;
    return r?.processed_upto ?? 0;
  }

  setCursor(readerId: string, upto: number): void {
    this.q(
      `INSERT INTO visit_cursor (reader_id, processed_upto) VALUES (?, ?)
         ON CONFLICT (reader_id) DO UPDATE SET processed_upto = excluded.processed_upto`,
    ).run(readerId, upto);
  }

  /** Readers whose contiguous prefix is ahead of the engine's cursor. */
  readersBehind(): string[] {
    return (
      this.q(
        `SELECT s.reader_id AS id FROM reader_seq s LEFT JOIN visit_cursor c ON c.reader_id = s.reader_id
           WHERE s.contiguous_upto > COALESCE(c.processed_upto, 0)`,
      ).all() as { id: string }[]
    ).map((r) => r.id);
  }

  contiguousUpto(readerId: string): number {
    const r = this.q('SELECT contiguous_upto FROM reader_seq WHERE reader_id = ?').get(readerId) as
      { contiguous_upto: number } | undefined;
    return r?.contiguous_upto ?? 0;
  }

  events(
    readerId: string,
    after: number,
    upto: number,
    limit: number,
  ): Array<{ seq: number; event_json: string | null; received_at_ms: number }> {
    return this.q(
      `SELECT seq, event_json, received_at_ms FROM events
         WHERE reader_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
    ).all(readerId, after, upto, limit) as Array<{
      seq: number;
      event_json: string | null;
      received_at_ms: number;
    }>;
  }

  /** The client a reader served at `atMs` (history first, then the reader's current assignment). */
  clientAt(readerId: string, atMs: number): string | null {
    const h = this.q(
      `SELECT client_ref FROM reader_client_history WHERE reader_id = ? AND from_ms <= ?
         ORDER BY from_ms DESC LIMIT 1`,
    ).get(readerId, atMs) as { client_ref: string | null } | undefined;
    if (h) return h.client_ref;
    const r = this.q('SELECT client_ref FROM readers WHERE reader_id = ?').get(readerId) as
      { client_ref: string | null } | undefined;
    return r?.client_ref ?? null;
  }

  visit(readerId: string, visitId: string): VisitRow | null {
    const r = this.q('SELECT * FROM visits WHERE reader_id = ? AND visit_id = ?').get(readerId, visitId) as
      RawVisit | undefined;
    return r ? toVisit(r) : null;
  }

  visitsById(visitId: string): VisitRow[] {
    return (this.q('SELECT * FROM visits WHERE visit_id = ?').all(visitId) as RawVisit[]).map(toVisit);
  }

  openAtReader(readerId: string): VisitRow[] {
    return (
      this.q(
        `SELECT * FROM visits WHERE reader_id = ? AND state = 'open' ORDER BY started_at_ms, visit_id`,
      ).all(readerId) as RawVisit[]
    ).map(toVisit);
  }

  /**
   * A visit of the same staff member (or the same card when the staff is unknown) elsewhere at `atMs`:
   * the one that started last (ties: the greater reader id, then visit id). From the in-memory index;
   * SQLite when `atMs` is older than the index holds.
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

  /** The same question answered by SQLite (bounded by the longest a device keeps a visit open). */
  overlappingElsewhereSql(q: {
    readerId: string;
    staffRef: string | null;
    cardRef: string;
    atMs: number;
  }): VisitRow | null {
    const who = q.staffRef === null ? 'card_ref = ?' : 'staff_ref = ?';
    const r = this.q(
      `SELECT * FROM visits WHERE ${who} AND reader_id != ? AND started_at_ms <= ? AND started_at_ms >= ?
         AND (state = 'open' OR ended_at_ms > ?) ORDER BY started_at_ms DESC, reader_id DESC, visit_id DESC LIMIT 1`,
    ).get(q.staffRef ?? q.cardRef, q.readerId, q.atMs, q.atMs - MAX_OPEN_SCAN_MS, q.atMs) as
      RawVisit | undefined;
    return r ? toVisit(r) : null;
  }

  /** Whether the reader has a visit that started or ended at or after `ms` (it has reported from after then). */
  deliveredSince(readerId: string, ms: number): boolean {
    return (
      this.q(
        `SELECT 1 AS x FROM visits WHERE reader_id = ? AND (started_at_ms >= ? OR ended_at_ms >= ?) LIMIT 1`,
      ).get(readerId, ms, ms) !== undefined
    );
  }

  /** A visit of the same staff member (or card) at another reader that started inside (fromMs, toMs). */
  startedElsewhereDuring(q: {
    readerId: string;
    staffRef: string | null;
    cardRef: string;
    fromMs: number;
    toMs: number;
  }): VisitRow | null {
    const who = q.staffRef === null ? 'card_ref = ?' : 'staff_ref = ?';
    const r = this.q(
      `SELECT * FROM visits WHERE ${who} AND reader_id != ? AND started_at_ms > ? AND started_at_ms < ?
         ORDER BY started_at_ms LIMIT 1`,
    ).get(q.staffRef ?? q.cardRef, q.readerId, q.fromMs, q.toMs) as RawVisit | undefined;
    return r ? toVisit(r) : null;
  }

  /** Inserts or updates a visit row. A visit's card never changes: an update keeps card_ref. */
  upsert(v: VisitRow): void {
    this.q(
      `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms,
           start_seq, ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq, updated_at_ms)
         VALUES (@readerId, @visitId, @clientRef, @cardRef, @staffRef, @groupId, @state, @startedAtMs, @startSeq,
           @endedAtMs, @endSeq, @endReason, @timeQuality, @anomaliesJson, @lateEndSeq, @updatedAtMs)
         ON CONFLICT (reader_id, visit_id) DO UPDATE SET client_ref = excluded.client_ref,
           staff_ref = excluded.staff_ref, group_id = excluded.group_id, state = excluded.state,
           started_at_ms = excluded.started_at_ms, start_seq = excluded.start_seq,
           ended_at_ms = excluded.ended_at_ms, end_seq = excluded.end_seq, end_reason = excluded.end_reason,
           time_quality = excluded.time_quality, anomalies_json = excluded.anomalies_json,
           late_end_seq = excluded.late_end_seq, updated_at_ms = excluded.updated_at_ms`,
    ).run({ ...v, anomaliesJson: JSON.stringify(v.anomalies) });
    this.index.written(v);
  }

  /** Records an anomaly once per key; returns false if it was already recorded. */
  insertAnomaly(a: {
    key: string;
    kind: AnomalyKind;
    readerId: string;
    visitId: string | null;
    cardRef: string | null;
    staffRef: string | null;
    clientRef: string | null;
    atMs: number;
    seq: number | null;
    detail: string;
    nowMs: number;
  }): boolean {
    return (
      this.q(
        `INSERT OR IGNORE INTO anomalies (idempotency_key, kind, reader_id, visit_id, card_ref, staff_ref,
             client_ref, at_ms, seq, detail, created_at_ms)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        a.key,
        a.kind,
        a.readerId,
        a.visitId,
        a.cardRef,
        a.staffRef,
        a.clientRef,
        a.atMs,
        a.seq,
        a.detail,
        a.nowMs,
      ).changes > 0
    );
  }

  audit(a: {
    readerId: string;
    visitId: string;
    action: string;
    actor: string;
    reason: string;
    atMs: number;
  }): void {
    this.q(
      'INSERT INTO visit_audit (reader_id, visit_id, action, actor, reason, at_ms) VALUES (?, ?, ?, ?, ?, ?)',
    ).run(a.readerId, a.visitId, a.action, a.actor, a.reason, a.atMs);
  }
}
