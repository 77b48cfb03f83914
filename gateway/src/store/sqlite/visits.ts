import type { Clock, VisitEvent } from '../../../../protocol/index.js';
import type {
  Anchor,
  AnchorScanRow,
  AnomalyListRow,
  AnomalyQuery,
  AnomalyRecord,
  CardStatus,
  StoredEventRow,
  VisitAuditRecord,
  VisitQuery,
  VisitRow,
  VisitStore,
  VisitTx,
} from '../ports.js';
import { SqliteCardStore } from './cards.js';
import { openDatabase, type Db } from './db.js';
import { createSqliteIngestStore } from './ingest-store.js';
import type { IngestStore } from '../ingest-store.js';
import { SqliteOutbox } from './outbox.js';
import { statementCache } from './stmt-cache.js';
import { VisitIndex, type SharedWrites } from './visit-index.js';
import {
  ANCHOR_SCAN_KEY,
  cardStatusOf,
  clockOffsetKey,
  MAX_OPEN_SCAN_MS,
  rawToVisit,
  readerScanKey,
  syncedOffsetKey,
  type RawVisit,
} from '../rows.js';

export { ANCHOR_SCAN_KEY, MAX_OPEN_SCAN_MS, rawToVisit, type RawVisit } from '../rows.js';

/**
 * The visits engine's tables on SQLite (port: VisitStore in ../ports.ts). A turn is ONE synchronous
 * better-sqlite3 transaction over statements prepared once: `runTurn` answers synchronously, and
 * `isolated` is a savepoint (a nested transaction), so a faulty event rolls back alone. One process
 * owns the file, so `readerIds` needs no lock here.
 */
export class SqliteVisitStore implements VisitStore {
  private readonly q: ReturnType<typeof statementCache>;
  /**
   * The statements as a VisitTx. Inside `runTurn` they run in its transaction; outside one (the visit
   * index's cache misses, admin reads) each runs on its own. `isolated` is a savepoint inside a
   * transaction and a transaction outside one.
   */
  readonly live: VisitTx;
  /**
   * What the SQLite engine's time anchors (visits/time.ts `TimeAnchors`) read and write: the anchors and
   * the measured offsets of synced boots (the `live` statements), the global scan over `events.id` and its
   * mark, and `atomically` (a transaction per scan chunk: a savepoint inside a turn).
   */
  readonly anchors: {
    anchor: VisitTx['anchor'];
    putAnchor: VisitTx['putAnchor'];
    syncedOffset: VisitTx['syncedOffset'];
    putSyncedOffset: VisitTx['putSyncedOffset'];
    /** The stored measured offsets of every synced boot of a reader. */
    syncedOffsetsOf: (readerId: string) => number[];
    scanCursor: () => number;
    setScanCursor: (id: number) => void;
    scanRows: (afterId: number, limit: number) => AnchorScanRow[];
    atomically: <T>(fn: () => T) => T;
  };
  constructor(
    private readonly db: Db,
    outbox: Pick<SqliteOutbox, 'enqueue'> = new SqliteOutbox({ db }),
  ) {
    const q = (this.q = statementCache(db));
    const one = <T>(sql: string, ...p: unknown[]) => q(sql).get(...p) as T | undefined;
    const visits = (sql: string, ...p: unknown[]) => (q(sql).all(...p) as RawVisit[]).map(rawToVisit);
    const meta = (key: string): number | null =>
      one<{ v: number }>('SELECT value AS v FROM visit_meta WHERE key = ?', key)?.v ?? null;
    const setMeta = (key: string, value: number): void => {
      q(
        `INSERT INTO visit_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      ).run(key, value);
    };
    this.live = {
      cursor: (readerId) =>
        one<{ v: number }>('SELECT processed_upto AS v FROM visit_cursor WHERE reader_id = ?', readerId)?.v ??
        0,
      setCursor: (readerId, upto) => {
        q(
          `INSERT INTO visit_cursor (reader_id, processed_upto) VALUES (?, ?)
             ON CONFLICT (reader_id) DO UPDATE SET processed_upto = excluded.processed_upto`,
        ).run(readerId, upto);
      },
      contiguousUpto: (readerId) =>
        one<{ v: number }>('SELECT contiguous_upto AS v FROM reader_seq WHERE reader_id = ?', readerId)?.v ??
        0,
      events: (readerId, after, upto, limit) =>
        q(
          `SELECT seq, event_json, received_at_ms FROM events
             WHERE reader_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
        ).all(readerId, after, upto, limit) as StoredEventRow[],
      clientAt: (readerId, atMs) => {
        const h = one<{ c: string | null }>(
          `SELECT client_ref AS c FROM reader_client_history WHERE reader_id = ? AND from_ms <= ?
             ORDER BY from_ms DESC LIMIT 1`,
          readerId,
          atMs,
        );
        if (h) return h.c;
        return (
          one<{ c: string | null }>('SELECT client_ref AS c FROM readers WHERE reader_id = ?', readerId)?.c ??
          null
        );
      },
      visit: (readerId, visitId) =>
        visits('SELECT * FROM visits WHERE reader_id = ? AND visit_id = ?', readerId, visitId)[0] ?? null,
      visitsById: (visitId) => visits('SELECT * FROM visits WHERE visit_id = ? ORDER BY reader_id', visitId),
      openAtReader: (readerId) =>
        visits(
          `SELECT * FROM visits WHERE reader_id = ? AND state = 'open' ORDER BY started_at_ms, visit_id`,
          readerId,
        ),
      overlappingElsewhere: (x) =>
        visits(
          `SELECT * FROM visits WHERE ${x.staffRef === null ? 'card_ref' : 'staff_ref'} = ? AND reader_id != ?
             AND started_at_ms <= ? AND started_at_ms >= ? AND (state = 'open' OR ended_at_ms > ?)
             ORDER BY started_at_ms DESC, reader_id DESC, visit_id DESC LIMIT 1`,
          x.staffRef ?? x.cardRef,
          x.readerId,
          x.atMs,
          x.atMs - MAX_OPEN_SCAN_MS,
          x.atMs,
        )[0] ?? null,
      startedElsewhereDuring: (x) =>
        visits(
          `SELECT * FROM visits WHERE ${x.staffRef === null ? 'card_ref' : 'staff_ref'} = ? AND reader_id != ?
             AND started_at_ms > ? AND started_at_ms < ? ORDER BY started_at_ms, reader_id, visit_id LIMIT 1`,
          x.staffRef ?? x.cardRef,
          x.readerId,
          x.fromMs,
          x.toMs,
        )[0] ?? null,
      deliveredSince: (readerId, ms) =>
        one(
          'SELECT 1 AS x FROM visits WHERE reader_id = ? AND (started_at_ms >= ? OR ended_at_ms >= ?) LIMIT 1',
          readerId,
          ms,
          ms,
        ) !== undefined,
      upsert: (v) => {
        const row = { ...v, anomaliesJson: JSON.stringify(v.anomalies) };
        // A visit that exists already (a stop, an auto-close, a flag), with the same client, staff member and
        // start: only the columns that change, so SQLite maintains 2 of the table's indexes instead of 7 (the
        // staff, client, start and unattributed indexes stay as they are). 14 -> 8 µs per stop in a side-by-side
        // run (bench/README.md, issue 15). Anything else (a new visit, a staff member re-attributed, a start
        // moved) takes the full upsert below, so the row ends the same either way.
        if (
          v.state === 'closed' &&
          q(
            `UPDATE visits SET group_id = @groupId, state = @state, start_seq = @startSeq, ended_at_ms = @endedAtMs,
                 end_seq = @endSeq, end_reason = @endReason, time_quality = @timeQuality,
                 anomalies_json = @anomaliesJson, late_end_seq = @lateEndSeq, updated_at_ms = @updatedAtMs
               WHERE reader_id = @readerId AND visit_id = @visitId AND client_ref IS @clientRef
                 AND staff_ref IS @staffRef AND started_at_ms IS @startedAtMs`,
          ).run(row).changes === 1
        )
          return;
        q(
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
        ).run(row);
      },
      insertAnomaly: (a: AnomalyRecord) =>
        q(
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
        ).changes > 0,
      audit: (a: VisitAuditRecord) => {
        q(
          'INSERT INTO visit_audit (reader_id, visit_id, action, actor, reason, at_ms) VALUES (?, ?, ?, ?, ?, ?)',
        ).run(a.readerId, a.visitId, a.action, a.actor, a.reason, a.atMs);
      },
      enqueue: (event: VisitEvent, nowMs: number) => outbox.enqueue(event, nowMs),
      cardStatusAt: (cardRef, atMs): CardStatus => {
        const c = one<{
          staff_ref: string;
          revoked_at: number | null;
          valid_from_ms: number | null;
          valid_to_ms: number | null;
        }>('SELECT staff_ref, revoked_at, valid_from_ms, valid_to_ms FROM cards WHERE card_ref = ?', cardRef);
        if (!c) return { kind: 'unknown' };
        return cardStatusOf(
          {
            staffRef: c.staff_ref,
            revokedAtMs: c.revoked_at,
            validFromMs: c.valid_from_ms,
            validToMs: c.valid_to_ms,
          },
          atMs,
        );
      },
      anchor: (readerId, bootId): Anchor | null => {
        const r = one<{ offset_ms: number; exact: number }>(
          'SELECT offset_ms, exact FROM time_anchors WHERE reader_id = ? AND boot_id = ?',
          readerId,
          bootId,
        );
        return r ? { offsetMs: r.offset_ms, exact: r.exact === 1 } : null;
      },
      putAnchor: (readerId, bootId, a) => {
        q(
          `INSERT INTO time_anchors (reader_id, boot_id, offset_ms, exact) VALUES (?, ?, ?, ?)
           ON CONFLICT (reader_id, boot_id) DO UPDATE SET offset_ms = excluded.offset_ms, exact = excluded.exact`,
        ).run(readerId, bootId, a.offsetMs, a.exact ? 1 : 0);
      },
      anchorRows: (readerId, limit) =>
        q(
          `SELECT id, reader_id, event_json, sent_at_json, received_at_ms FROM events
             WHERE reader_id = ? AND id > ? ORDER BY id LIMIT ?`,
        ).all(readerId, meta(readerScanKey(readerId)) ?? 0, limit) as AnchorScanRow[],
      setAnchorScanned: (readerId, id) => setMeta(readerScanKey(readerId), id),
      syncedOffset: (readerId, bootId) => meta(syncedOffsetKey(readerId, bootId)),
      putSyncedOffset: (readerId, bootId, offsetMs) => setMeta(syncedOffsetKey(readerId, bootId), offsetMs),
      clockOffset: (readerId) => meta(clockOffsetKey(readerId)),
      setClockOffset: (readerId, offsetMs) => setMeta(clockOffsetKey(readerId), offsetMs),
      isolated: <T>(fn: () => T): T => db.transaction(fn)(),
    };
    const live = this.live;
    this.anchors = {
      anchor: (readerId, bootId) => live.anchor(readerId, bootId),
      putAnchor: (readerId, bootId, a) => live.putAnchor(readerId, bootId, a),
      syncedOffset: (readerId, bootId) => live.syncedOffset(readerId, bootId),
      putSyncedOffset: (readerId, bootId, offsetMs) => live.putSyncedOffset(readerId, bootId, offsetMs),
      syncedOffsetsOf: (readerId) => {
        const prefix = syncedOffsetKey(readerId, '');
        return (
          q('SELECT value FROM visit_meta WHERE key >= ? AND key < ?').all(
            prefix,
            `${prefix}\uffff`,
          ) as Array<{
            value: number;
          }>
        ).map((r) => r.value);
      },
      scanCursor: () => this.anchorScan.cursor(),
      setScanCursor: (id) => setMeta(ANCHOR_SCAN_KEY, id),
      scanRows: (afterId, limit) => this.anchorScan.rows(afterId, limit),
      atomically: <T>(fn: () => T): T => db.transaction(fn)(),
    };
  }

  /**
   * The in-memory index of recent visits in front of this file's visits table (./visit-index.ts), for the
   * visits engine's repo (visits/repo.ts); `shared`: the write counter of the engine's thread and the
   * gateway's (the engine in its own thread).
   */
  visitIndex(opts: { clock: Clock; shared?: SharedWrites; maxVisits?: number }): VisitIndex {
    return new VisitIndex({ db: this.db, ...opts });
  }

  runTurn<T>(_readerIds: readonly string[] | 'all', work: (tx: VisitTx) => T): T {
    return this.db.transaction(() => work(this.live))();
  }

  readersBehind(): string[] {
    return (
      this.q(
        `SELECT s.reader_id AS id FROM reader_seq s LEFT JOIN visit_cursor c ON c.reader_id = s.reader_id
           WHERE s.contiguous_upto > COALESCE(c.processed_upto, 0) ORDER BY s.reader_id`,
      ).all() as { id: string }[]
    ).map((r) => r.id);
  }

  readonly anchorScan = {
    cursor: (): number =>
      (
        this.q('SELECT value FROM visit_meta WHERE key = ?').get(ANCHOR_SCAN_KEY) as
          { value: number } | undefined
      )?.value ?? 0,
    rows: (afterId: number, limit: number): AnchorScanRow[] =>
      this.q(
        'SELECT id, reader_id, event_json, sent_at_json, received_at_ms FROM events WHERE id > ? ORDER BY id LIMIT ?',
      ).all(afterId, limit) as AnchorScanRow[],
  };

  listVisits(x: VisitQuery): VisitRow[] {
    const order = x.state === 'open' ? 'started_at_ms, visit_id' : 'updated_at_ms DESC, visit_id';
    return (
      this.q(
        `SELECT * FROM visits WHERE ${x.state === 'open' ? `state = 'open'` : '1=1'}
           AND (@readerId IS NULL OR reader_id = @readerId) ORDER BY ${order} LIMIT @limit`,
      ).all({ readerId: x.readerId ?? null, limit: x.limit }) as RawVisit[]
    ).map(rawToVisit);
  }

  listAnomalies(x: AnomalyQuery): AnomalyListRow[] {
    return this.q(
      `SELECT id, idempotency_key AS idempotencyKey, kind, reader_id AS readerId, visit_id AS visitId,
         card_ref AS cardRef, staff_ref AS staffRef, client_ref AS clientRef, at_ms AS atMs, seq, detail,
         created_at_ms AS createdAtMs, resolved_at_ms AS resolvedAtMs, resolved_by AS resolvedBy,
         resolution, resolved_staff_ref AS resolvedStaffRef
       FROM anomalies WHERE (@kind IS NULL OR kind = @kind) AND (@readerId IS NULL OR reader_id = @readerId)
       ORDER BY id DESC LIMIT @limit`,
    ).all({ kind: x.kind ?? null, readerId: x.readerId ?? null, limit: x.limit }) as AnomalyListRow[];
  }

  readersOfVisit(visitId: string): string[] {
    return (
      this.q('SELECT reader_id AS r FROM visits WHERE visit_id = ? ORDER BY reader_id').all(visitId) as {
        r: string;
      }[]
    ).map((x) => x.r);
  }

  openVisitIds(readerId: string): string[] {
    return (
      this.q(
        `SELECT visit_id AS v FROM visits WHERE reader_id = ? AND state = 'open' ORDER BY started_at_ms, visit_id`,
      ).all(readerId) as { v: string }[]
    ).map((x) => x.v);
  }

  gauges(): { openVisits: number; lagEvents: number } {
    const open = this.q(`SELECT COUNT(*) AS n FROM visits WHERE state = 'open'`).get() as { n: number };
    const lag = this.q(
      `SELECT COALESCE(SUM(s.contiguous_upto - COALESCE(c.processed_upto, 0)), 0) AS n FROM reader_seq s
         LEFT JOIN visit_cursor c ON c.reader_id = s.reader_id WHERE s.contiguous_upto > COALESCE(c.processed_upto, 0)`,
    ).get() as { n: number };
    return { openVisits: open.n, lagEvents: lag.n };
  }
}

/**
 * The visits side's adapters on one connection to the gateway's file, which a composition root opens and
 * hands to the visits pipeline (visits/pipeline.ts) or to the engine's thread (visits/engine-worker.ts): the
 * visits tables, the outbox, the cards, and the file itself (a second connection for the engine's thread,
 * the gauges' "still open"). No module of visits/ holds the database handle.
 */
export class SqliteVisitSide {
  readonly outbox: SqliteOutbox;
  readonly visits: SqliteVisitStore;
  /** The card registry's table (its own outbox instance, as before: the same table). */
  readonly cards: SqliteCardStore;
  constructor(
    private readonly db: Db,
    clock: Clock,
  ) {
    this.outbox = new SqliteOutbox({ db });
    this.visits = new SqliteVisitStore(db, this.outbox);
    this.cards = new SqliteCardStore({ db, clock });
  }

  /** Opens the gateway's file (already migrated by the composition root; nothing is applied here). */
  static open(path: string, clock: Clock): SqliteVisitSide {
    return new SqliteVisitSide(openDatabase(path, []), clock);
  }

  /**
   * The ingest's event log on this connection (the engine's thread takes the ingest's group commits too, so
   * one connection does every hot write: visits/engine-worker.ts). Made on first use.
   */
  ingest(): IngestStore {
    this.ingestStore ??= createSqliteIngestStore(this.db);
    return this.ingestStore;
  }
  private ingestStore: IngestStore | null = null;

  /** The file's path, for another connection to it; null for an in-memory database. */
  get path(): string | null {
    return this.db.memory ? null : this.db.name;
  }

  /** False once the connection is closed (a late metrics scrape reads 0). */
  get open(): boolean {
    return this.db.open;
  }

  close(): void {
    this.db.close();
  }
}
