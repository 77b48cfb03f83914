import { VisitEvent } from '../../../../protocol/index.js';
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
import { ANCHOR_SCAN_KEY, MAX_OPEN_SCAN_MS, rawToVisit, type RawVisit } from '../rows.js';
import { TurnNeedsData } from '../turn.js';
import { inTransaction, lockReaders, type PgClient, type PgPool } from './db.js';
import { enqueueOn } from './outbox.js';

/** Fetch rounds per turn before giving up (each round fetches every read the previous run missed). */
const MAX_ROUNDS = 10_000;

const toVisit = rawToVisit;

const vkey = (readerId: string, visitId: string) => `${readerId}\n${visitId}`;
/** Byte order of ASCII ids, as SQLite's BINARY collation and PostgreSQL's "C". */
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

type Fetch = (c: PgClient) => Promise<unknown>;

/** What one run of a turn wrote (applied to the database only when the run completes without a miss). */
interface Writes {
  cursors: Map<string, number>;
  visits: Map<string, VisitRow>;
  anomalies: AnomalyRecord[];
  anomalyKeys: Set<string>;
  audits: VisitAuditRecord[];
  outbox: Array<{ event: VisitEvent; nowMs: number }>;
  outboxKeys: Set<string>;
  anchors: Map<string, { readerId: string; bootId: string; a: Anchor }>;
}

const emptyWrites = (): Writes => ({
  cursors: new Map(),
  visits: new Map(),
  anomalies: [],
  anomalyKeys: new Set(),
  audits: [],
  outbox: [],
  outboxKeys: new Set(),
  anchors: new Map(),
});

const copyWrites = (w: Writes): Writes => ({
  cursors: new Map(w.cursors),
  visits: new Map(w.visits),
  anomalies: [...w.anomalies],
  anomalyKeys: new Set(w.anomalyKeys),
  audits: [...w.audits],
  outbox: [...w.outbox],
  outboxKeys: new Set(w.outboxKeys),
  anchors: new Map(w.anchors),
});

/**
 * The visits engine's tables on PostgreSQL (port: VisitStore in ../ports.ts).
 *
 * A turn is one transaction holding the advisory lock of each of its readers (taken in sorted order,
 * so instances never deadlock), so two instances that receive the same reader's events serialise and
 * the cursor makes the second a no-op. The rules are ONE synchronous implementation, so `work` runs
 * over a synchronous view: every read is answered from what this transaction already fetched,
 * overlaid with the run's own writes; a read not fetched yet is recorded and answered by a
 * TurnNeedsData throw; the adapter then fetches every missed read (inside the same transaction, under
 * the locks) and runs `work` again from the start, discarding the failed run's writes. A run without
 * a miss has its writes applied in the order they were made (outbox rows keep their order) and the
 * transaction commits. Reads that cross readers (`overlappingElsewhere`, `startedElsewhereDuring`,
 * `visitsById`) fetch every candidate row of their window and apply the predicate again in memory
 * over the overlay, so a row this run changed is judged by its new content, as on SQLite.
 */
export class PgVisitStore implements VisitStore {
  constructor(private readonly pool: PgPool) {}

  runTurn<T>(readerIds: readonly string[] | 'all', work: (tx: VisitTx) => T): Promise<T> {
    return inTransaction(this.pool, async (c) => {
      if (readerIds !== 'all') await lockReaders(c, readerIds);
      const cache = new Map<string, unknown>();
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const missed = new Map<string, Fetch>();
        let w = emptyWrites();
        const read = <R>(key: string, fetch: (c: PgClient) => Promise<R>): R => {
          if (cache.has(key)) return cache.get(key) as R;
          missed.set(key, fetch);
          throw new TurnNeedsData(key);
        };
        const tx = this.view(
          read,
          () => w,
          (next) => (w = next),
        );
        let out: T | undefined;
        try {
          out = work(tx);
        } catch (err) {
          if (!(err instanceof TurnNeedsData)) throw err;
        }
        if (missed.size === 0) {
          await applyWrites(c, w);
          return out as T;
        }
        for (const [key, fetch] of missed) cache.set(key, await fetch(c));
      }
      throw new Error(`visits turn still missing data after ${MAX_ROUNDS} rounds`);
    });
  }

  private view(
    read: <R>(key: string, fetch: (c: PgClient) => Promise<R>) => R,
    writes: () => Writes,
    setWrites: (w: Writes) => void,
  ): VisitTx {
    const rows = async (c: PgClient, sql: string, p: unknown[]) =>
      (await c.query<RawVisit>(sql, p)).rows.map(toVisit);
    const num = (key: string, sql: string, p: unknown[]) =>
      read(key, async (c) => (await c.query<{ v: number }>(sql, p)).rows[0]?.v ?? 0);
    /** Fetched rows overlaid with this run's visit writes, filtered again by `keep`. */
    const merged = (fetched: VisitRow[], keep: (v: VisitRow) => boolean): VisitRow[] => {
      const w = writes().visits;
      const out = new Map<string, VisitRow>();
      for (const v of fetched) out.set(vkey(v.readerId, v.visitId), w.get(vkey(v.readerId, v.visitId)) ?? v);
      for (const [k, v] of w) out.set(k, v);
      return [...out.values()].filter(keep);
    };
    const tx: VisitTx = {
      cursor: (readerId) =>
        writes().cursors.get(readerId) ??
        num(`cursor:${readerId}`, 'SELECT processed_upto AS v FROM visit_cursor WHERE reader_id = $1', [
          readerId,
        ]),
      setCursor: (readerId, upto) => void writes().cursors.set(readerId, upto),
      contiguousUpto: (readerId) =>
        num(`upto:${readerId}`, 'SELECT contiguous_upto AS v FROM reader_seq WHERE reader_id = $1', [
          readerId,
        ]),
      events: (readerId, after, upto, limit) =>
        read(`events:${readerId}:${after}:${upto}:${limit}`, async (c) =>
          (
            await c.query<StoredEventRow>(
              `SELECT seq, event_json, received_at_ms FROM events
                WHERE reader_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`,
              [readerId, after, upto, limit],
            )
          ).rows.map((r) => ({ ...r })),
        ),
      clientAt: (readerId, atMs) => {
        const h = read(`clients:${readerId}`, async (c) => ({
          history: (
            await c.query<{ client_ref: string | null; from_ms: number }>(
              'SELECT client_ref, from_ms FROM reader_client_history WHERE reader_id = $1 ORDER BY from_ms',
              [readerId],
            )
          ).rows,
          current:
            (
              await c.query<{ client_ref: string | null }>(
                'SELECT client_ref FROM readers WHERE reader_id = $1',
                [readerId],
              )
            ).rows[0]?.client_ref ?? null,
        }));
        let found: { client_ref: string | null } | undefined;
        for (const x of h.history) if (x.from_ms <= atMs) found = x;
        return found ? found.client_ref : h.current;
      },
      visit: (readerId, visitId) => {
        const mine = writes().visits.get(vkey(readerId, visitId));
        if (mine) return mine;
        return read(
          `visit:${readerId}:${visitId}`,
          async (c) =>
            (
              await rows(c, 'SELECT * FROM visits WHERE reader_id = $1 AND visit_id = $2', [
                readerId,
                visitId,
              ])
            )[0] ?? null,
        );
      },
      visitsById: (visitId) =>
        merged(
          read(`by-id:${visitId}`, (c) => rows(c, 'SELECT * FROM visits WHERE visit_id = $1', [visitId])),
          (v) => v.visitId === visitId,
        ).sort((a, b) => cmp(a.readerId, b.readerId)),
      openAtReader: (readerId) =>
        merged(
          read(`open:${readerId}`, (c) =>
            rows(c, `SELECT * FROM visits WHERE reader_id = $1 AND state = 'open'`, [readerId]),
          ),
          (v) => v.readerId === readerId && v.state === 'open',
        ).sort((a, b) => (a.startedAtMs ?? 0) - (b.startedAtMs ?? 0) || cmp(a.visitId, b.visitId)),
      overlappingElsewhere: (x) => {
        const by = x.staffRef === null ? 'card_ref' : 'staff_ref';
        const who = x.staffRef ?? x.cardRef;
        const from = x.atMs - MAX_OPEN_SCAN_MS;
        const fetched = read(`overlap:${by}:${who}:${x.readerId}:${x.atMs}`, (c) =>
          rows(
            c,
            `SELECT * FROM visits WHERE ${by} = $1 AND reader_id <> $2 AND started_at_ms <= $3 AND started_at_ms >= $4
               AND (state = 'open' OR ended_at_ms > $3)`,
            [who, x.readerId, x.atMs, from],
          ),
        );
        const hits = merged(
          fetched,
          (v) =>
            (x.staffRef === null ? v.cardRef === who : v.staffRef === who) &&
            v.readerId !== x.readerId &&
            v.startedAtMs !== null &&
            v.startedAtMs <= x.atMs &&
            v.startedAtMs >= from &&
            (v.state === 'open' || (v.endedAtMs !== null && v.endedAtMs > x.atMs)),
        ).sort(
          (a, b) =>
            (b.startedAtMs ?? 0) - (a.startedAtMs ?? 0) ||
            cmp(b.readerId, a.readerId) ||
            cmp(b.visitId, a.visitId),
        );
        return hits[0] ?? null;
      },
      startedElsewhereDuring: (x) => {
        const by = x.staffRef === null ? 'card_ref' : 'staff_ref';
        const who = x.staffRef ?? x.cardRef;
        const fetched = read(`started:${by}:${who}:${x.readerId}:${x.fromMs}:${x.toMs}`, (c) =>
          rows(
            c,
            `SELECT * FROM visits WHERE ${by} = $1 AND reader_id <> $2 AND started_at_ms > $3 AND started_at_ms < $4`,
            [who, x.readerId, x.fromMs, x.toMs],
          ),
        );
        const hits = merged(
          fetched,
          (v) =>
            (x.staffRef === null ? v.cardRef === who : v.staffRef === who) &&
            v.readerId !== x.readerId &&
            v.startedAtMs !== null &&
            v.startedAtMs > x.fromMs &&
            v.startedAtMs < x.toMs,
        ).sort(
          (a, b) =>
            (a.startedAtMs ?? 0) - (b.startedAtMs ?? 0) ||
            cmp(a.readerId, b.readerId) ||
            cmp(a.visitId, b.visitId),
        );
        return hits[0] ?? null;
      },
      deliveredSince: (readerId, ms) => {
        const fetched = read(`since:${readerId}:${ms}`, (c) =>
          rows(
            c,
            'SELECT * FROM visits WHERE reader_id = $1 AND (started_at_ms >= $2 OR ended_at_ms >= $2)',
            [readerId, ms],
          ),
        );
        return (
          merged(
            fetched,
            (v) =>
              v.readerId === readerId &&
              ((v.startedAtMs !== null && v.startedAtMs >= ms) ||
                (v.endedAtMs !== null && v.endedAtMs >= ms)),
          ).length > 0
        );
      },
      upsert: (v) => {
        const w = writes();
        const before = w.visits.get(vkey(v.readerId, v.visitId)) ?? tx.visit(v.readerId, v.visitId);
        // a visit's card never changes: an update keeps card_ref (as the SQLite upsert does)
        w.visits.set(vkey(v.readerId, v.visitId), before ? { ...v, cardRef: before.cardRef } : { ...v });
      },
      insertAnomaly: (a) => {
        const w = writes();
        if (w.anomalyKeys.has(a.key)) return false;
        const exists = read(
          `anomaly:${a.key}`,
          async (c) =>
            ((await c.query('SELECT 1 FROM anomalies WHERE idempotency_key = $1', [a.key])).rowCount ?? 0) >
            0,
        );
        if (exists) return false;
        w.anomalyKeys.add(a.key);
        w.anomalies.push({ ...a });
        return true;
      },
      audit: (a) => void writes().audits.push({ ...a }),
      enqueue: (event, nowMs) => {
        const e = VisitEvent.parse(event);
        const w = writes();
        if (w.outboxKeys.has(e.idempotencyKey)) return false;
        const exists = read(
          `outbox:${e.idempotencyKey}`,
          async (c) =>
            ((await c.query('SELECT 1 FROM outbox WHERE idempotency_key = $1', [e.idempotencyKey]))
              .rowCount ?? 0) > 0,
        );
        if (exists) return false;
        w.outboxKeys.add(e.idempotencyKey);
        w.outbox.push({ event: e, nowMs });
        return true;
      },
      cardStatusAt: (cardRef, atMs): CardStatus => {
        const card = read(
          `card:${cardRef}`,
          async (c) =>
            (
              await c.query<{ staff_ref: string; revoked_at: number | null }>(
                'SELECT staff_ref, revoked_at FROM cards WHERE card_ref = $1',
                [cardRef],
              )
            ).rows[0] ?? null,
        );
        if (!card) return { kind: 'unknown' };
        if (card.revoked_at !== null && card.revoked_at <= atMs) {
          return { kind: 'revoked', staffRef: card.staff_ref, revokedAtMs: card.revoked_at };
        }
        return { kind: 'known', staffRef: card.staff_ref };
      },
      anchor: (readerId, bootId) =>
        writes().anchors.get(vkey(readerId, bootId))?.a ??
        read(`anchor:${readerId}:${bootId}`, async (c) => {
          const r = (
            await c.query<{ offset_ms: number; exact: number }>(
              'SELECT offset_ms, exact FROM time_anchors WHERE reader_id = $1 AND boot_id = $2',
              [readerId, bootId],
            )
          ).rows[0];
          return r ? { offsetMs: r.offset_ms, exact: r.exact === 1 } : null;
        }),
      putAnchor: (readerId, bootId, a) =>
        void writes().anchors.set(vkey(readerId, bootId), { readerId, bootId, a }),
      isolated: <R>(fn: () => R): R => {
        const saved = copyWrites(writes());
        try {
          return fn();
        } catch (err) {
          setWrites(saved);
          throw err;
        }
      },
    };
    return tx;
  }

  async readersBehind(): Promise<string[]> {
    const r = await this.pool.query<{ id: string }>(
      `SELECT s.reader_id AS id FROM reader_seq s LEFT JOIN visit_cursor c ON c.reader_id = s.reader_id
        WHERE s.contiguous_upto > COALESCE(c.processed_upto, 0) ORDER BY s.reader_id COLLATE "C"`,
    );
    return r.rows.map((x) => x.id);
  }

  readonly anchorScan = {
    cursor: async (): Promise<number> =>
      (
        await this.pool.query<{ value: number }>('SELECT value FROM visit_meta WHERE key = $1', [
          ANCHOR_SCAN_KEY,
        ])
      ).rows[0]?.value ?? 0,
    rows: async (afterId: number, limit: number): Promise<AnchorScanRow[]> =>
      (
        await this.pool.query<AnchorScanRow>(
          'SELECT id, reader_id, event_json, sent_at_json, received_at_ms FROM events WHERE id > $1 ORDER BY id LIMIT $2',
          [afterId, limit],
        )
      ).rows,
  };

  async listVisits(x: VisitQuery): Promise<VisitRow[]> {
    const order =
      x.state === 'open' ? 'started_at_ms, visit_id COLLATE "C"' : 'updated_at_ms DESC, visit_id COLLATE "C"';
    const r = await this.pool.query<RawVisit>(
      `SELECT * FROM visits WHERE ${x.state === 'open' ? `state = 'open'` : 'TRUE'}
         AND ($1::text IS NULL OR reader_id = $1) ORDER BY ${order} LIMIT $2`,
      [x.readerId ?? null, x.limit],
    );
    return r.rows.map(toVisit);
  }

  async listAnomalies(x: AnomalyQuery): Promise<AnomalyListRow[]> {
    const r = await this.pool.query<AnomalyListRow>(
      `SELECT id, idempotency_key AS "idempotencyKey", kind, reader_id AS "readerId", visit_id AS "visitId",
         card_ref AS "cardRef", staff_ref AS "staffRef", client_ref AS "clientRef", at_ms AS "atMs", seq, detail,
         created_at_ms AS "createdAtMs", resolved_at_ms AS "resolvedAtMs", resolved_by AS "resolvedBy",
         resolution, resolved_staff_ref AS "resolvedStaffRef"
       FROM anomalies WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR reader_id = $2)
       ORDER BY id DESC LIMIT $3`,
      [x.kind ?? null, x.readerId ?? null, x.limit],
    );
    return r.rows.map((a) => ({ ...a, kind: a.kind }));
  }

  async readersOfVisit(visitId: string): Promise<string[]> {
    const r = await this.pool.query<{ r: string }>(
      'SELECT reader_id AS r FROM visits WHERE visit_id = $1 ORDER BY reader_id COLLATE "C"',
      [visitId],
    );
    return r.rows.map((x) => x.r);
  }

  async openVisitIds(readerId: string): Promise<string[]> {
    const r = await this.pool.query<{ v: string }>(
      `SELECT visit_id AS v FROM visits WHERE reader_id = $1 AND state = 'open'
        ORDER BY started_at_ms, visit_id COLLATE "C"`,
      [readerId],
    );
    return r.rows.map((x) => x.v);
  }

  async gauges(): Promise<{ openVisits: number; lagEvents: number }> {
    const r = await this.pool.query<{ open: number; lag: number }>(
      `SELECT (SELECT COUNT(*) FROM visits WHERE state = 'open') AS open,
              (SELECT COALESCE(SUM(s.contiguous_upto - COALESCE(c.processed_upto, 0)), 0) FROM reader_seq s
                 LEFT JOIN visit_cursor c ON c.reader_id = s.reader_id
                WHERE s.contiguous_upto > COALESCE(c.processed_upto, 0)) AS lag`,
    );
    return { openVisits: r.rows[0]?.open ?? 0, lagEvents: r.rows[0]?.lag ?? 0 };
  }
}

/** Applies a completed run's writes inside the turn's transaction, in the order they were made. */
async function applyWrites(c: PgClient, w: Writes): Promise<void> {
  for (const v of w.visits.values()) {
    await c.query(
      `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms,
           start_seq, ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (reader_id, visit_id) DO UPDATE SET client_ref = excluded.client_ref,
           staff_ref = excluded.staff_ref, group_id = excluded.group_id, state = excluded.state,
           started_at_ms = excluded.started_at_ms, start_seq = excluded.start_seq,
           ended_at_ms = excluded.ended_at_ms, end_seq = excluded.end_seq, end_reason = excluded.end_reason,
           time_quality = excluded.time_quality, anomalies_json = excluded.anomalies_json,
           late_end_seq = excluded.late_end_seq, updated_at_ms = excluded.updated_at_ms`,
      [
        v.readerId,
        v.visitId,
        v.clientRef,
        v.cardRef,
        v.staffRef,
        v.groupId,
        v.state,
        v.startedAtMs,
        v.startSeq,
        v.endedAtMs,
        v.endSeq,
        v.endReason,
        v.timeQuality,
        JSON.stringify(v.anomalies),
        v.lateEndSeq,
        v.updatedAtMs,
      ],
    );
  }
  for (const a of w.anomalies) {
    await c.query(
      `INSERT INTO anomalies (idempotency_key, kind, reader_id, visit_id, card_ref, staff_ref, client_ref, at_ms,
           seq, detail, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (idempotency_key) DO NOTHING`,
      [
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
      ],
    );
  }
  for (const a of w.audits) {
    await c.query(
      'INSERT INTO visit_audit (reader_id, visit_id, action, actor, reason, at_ms) VALUES ($1, $2, $3, $4, $5, $6)',
      [a.readerId, a.visitId, a.action, a.actor, a.reason, a.atMs],
    );
  }
  for (const o of w.outbox) await enqueueOn(c, o.event, o.nowMs);
  for (const [readerId, upto] of w.cursors) {
    await c.query(
      `INSERT INTO visit_cursor (reader_id, processed_upto) VALUES ($1, $2)
         ON CONFLICT (reader_id) DO UPDATE SET processed_upto = excluded.processed_upto`,
      [readerId, upto],
    );
  }
  for (const { readerId, bootId, a } of w.anchors.values()) {
    await c.query(
      `INSERT INTO time_anchors (reader_id, boot_id, offset_ms, exact) VALUES ($1, $2, $3, $4)
         ON CONFLICT (reader_id, boot_id) DO UPDATE SET offset_ms = excluded.offset_ms, exact = excluded.exact`,
      [readerId, bootId, a.offsetMs, a.exact ? 1 : 0],
    );
  }
}
