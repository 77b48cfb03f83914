import type {
  CommitOutcome,
  IngestItem,
  IngestStore,
  ReaderCommitOutcome,
  ReaderSeqState,
  RejectSummary,
  SeqRange,
} from '../ingest-store.js';
import { inTransaction, lockReaders, type PgClient, type PgPool } from './db.js';
import { readerRecord as toRecord, type ReaderRow } from '../rows.js';

/** Rows kept in `rejects` (older ones are pruned; the metrics counter keeps the totals). */
const MAX_REJECT_ROWS = 100_000;
const MAX_ACK_GAPS = 50;
/**
 * Held sequences looked at per reader and commit: bounds the cost when many rows wait above a gap. A
 * longer run (a big gap just filled) advances by this much per commit; the reader's resends bring the
 * next commits.
 */
const ADVANCE_WINDOW = 10_000;

/**
 * The ingest store on PostgreSQL, for one or several gateway instances sharing one database.
 *
 * Several instances: MQTT 5 shared subscriptions may hand two batches of the same reader to two
 * instances at once (a device resend after a reconnect, or two batches in flight). `commit` is ONE
 * transaction that first takes a transaction-level advisory lock per reader that sent events
 * (`pg_advisory_xact_lock(ns, hashtext(reader_id))`, in sorted order so two instances never deadlock).
 * Inside it, under READ COMMITTED, every statement sees whatever an earlier holder of that lock
 * committed, so:
 * - dedupe is `INSERT … ON CONFLICT (reader_id, seq) DO NOTHING` (the unique key would also hold
 *   without the lock: the second writer waits on the first's index entry and then skips it);
 * - the contiguous high-water mark and max_seen in `reader_seq` are read and advanced by one writer at
 *   a time, over every row committed before, so an ack never claims a sequence that is not stored and
 *   never goes backwards, and gaps are computed from committed rows only;
 * - the ack is sent by the caller only after this transaction committed (fsync on: durable).
 *
 * Statements per commit do not grow with the batch or the number of readers in it: all events go in
 * one `INSERT … SELECT FROM unnest(...)`, stored copies of re-sent ones are read in one query, statuses
 * and rejects are one statement each, and every reader's mark is advanced by one statement (held
 * sequences above the old mark numbered in order: where `seq - row_number = old mark` the run is
 * contiguous). Gaps are listed only for readers that have some.
 */
/**
 * Every method of the IngestStore port, answering with a Promise (the port is still synchronous on
 * main; when it becomes `Awaitable`, this adapter `implements IngestStore` as it is). Derived from the
 * port, so a method added there fails the typecheck here until PostgreSQL has it too.
 */
export type PgIngestStore = Promised<IngestStore>;

type Promised<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : Promised<T[K]>;
};

type Queryable = Pick<PgClient, 'query'>;

async function seqStateOn(c: Queryable, readerId: string): Promise<ReaderSeqState> {
  const r = await c.query<{ contiguous_upto: number; max_seen: number }>(
    'SELECT contiguous_upto, max_seen FROM reader_seq WHERE reader_id = $1',
    [readerId],
  );
  const row = r.rows[0];
  return { contiguousUpto: row?.contiguous_upto ?? 0, maxSeen: row?.max_seen ?? 0 };
}

const SEQS_ABOVE = `SELECT seq FROM events WHERE reader_id = $1 AND seq > $2
   UNION SELECT seq FROM rejected_events WHERE reader_id = $1 AND seq > $2
   ORDER BY seq LIMIT $3`;

async function seqsAbove(c: Queryable, readerId: string, seq: number, limit: number): Promise<number[]> {
  const r = await c.query<{ seq: number }>(SEQS_ABOVE, [readerId, seq, limit]);
  return r.rows.map((x) => x.seq);
}

async function gapsOn(c: Queryable, readerId: string, limit: number): Promise<SeqRange[]> {
  const s = await seqStateOn(c, readerId);
  if (s.maxSeen <= s.contiguousUpto) return [];
  const out: SeqRange[] = [];
  let next = s.contiguousUpto + 1;
  let after = s.contiguousUpto;
  for (;;) {
    const seqs = await seqsAbove(c, readerId, after, 10_000);
    for (const seq of seqs) {
      if (seq > next) {
        out.push({ from: next, to: seq - 1 });
        if (out.length >= limit) return out;
      }
      next = seq + 1;
    }
    if (seqs.length < 10_000) return out;
    after = next - 1;
  }
}

export function createPgIngestStore(pool: PgPool): PgIngestStore {
  let rejectsSincePrune = 0;

  const commitTx = async (c: PgClient, items: readonly IngestItem[]): Promise<CommitOutcome> => {
    const readers = new Map<string, ReaderCommitOutcome>();
    const out: CommitOutcome = { readers, inserted: 0, duplicates: 0, conflicts: 0 };
    const outcome = (readerId: string): ReaderCommitOutcome => {
      let o = readers.get(readerId);
      if (!o) {
        o = {
          readerId,
          upTo: 0,
          maxSeen: 0,
          gaps: [],
          inserted: 0,
          duplicates: 0,
          conflicts: [],
          invalidEvents: [],
        };
        readers.set(readerId, o);
      }
      return o;
    };
    const eventItems = items.filter((i): i is Extract<IngestItem, { kind: 'events' }> => i.kind === 'events');
    await lockReaders(
      c,
      eventItems.map((i) => i.readerId),
    );

    // 1. every event of the group commit in one statement, in arrival order
    const rows: Array<{ readerId: string; seq: number; json: string; receivedAtMs: number; sentAt: string }> =
      [];
    for (const item of eventItems) {
      outcome(item.readerId);
      const sentAt = JSON.stringify(item.sentAt);
      for (const e of item.events) {
        rows.push({
          readerId: item.readerId,
          seq: e.seq,
          json: JSON.stringify(e),
          receivedAtMs: item.receivedAtMs,
          sentAt,
        });
      }
    }
    const key = (r: string, s: number): string => `${r}\u0000${s}`;
    const insertedKeys = new Set<string>();
    if (rows.length > 0) {
      const r = await c.query<{ reader_id: string; seq: number }>(
        `INSERT INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json)
         SELECT r, s, j, t, a FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[])
           WITH ORDINALITY AS u(r, s, j, t, a, o)
          -- at or below the contiguous mark and held nowhere: its row was deleted by retention
          -- (gateway/src/retention): settled, a duplicate, never stored (or paired) again (as on SQLite)
          WHERE NOT EXISTS (SELECT 1 FROM reader_seq q WHERE q.reader_id = u.r AND u.s <= q.contiguous_upto)
             OR EXISTS (SELECT 1 FROM rejected_events x WHERE x.reader_id = u.r AND x.seq = u.s)
          ORDER BY o
         ON CONFLICT (reader_id, seq) DO NOTHING
         RETURNING reader_id, seq`,
        [
          rows.map((x) => x.readerId),
          rows.map((x) => x.seq),
          rows.map((x) => x.json),
          rows.map((x) => x.receivedAtMs),
          rows.map((x) => x.sentAt),
        ],
      );
      for (const x of r.rows) insertedKeys.add(key(x.reader_id, x.seq));
    }
    // 2. the copies that were not inserted: duplicates (same text) or conflicts (first copy kept)
    const stored = new Map<string, string>();
    const firstSeen = new Set<string>();
    const needStored: Array<{ readerId: string; seq: number }> = [];
    for (const x of rows) {
      const k = key(x.readerId, x.seq);
      if (insertedKeys.has(k) && !firstSeen.has(k)) {
        stored.set(k, x.json); // this copy is the one the statement inserted (first in order)
      } else if (!insertedKeys.has(k) && !firstSeen.has(k)) {
        needStored.push({ readerId: x.readerId, seq: x.seq });
      }
      firstSeen.add(k);
    }
    if (needStored.length > 0) {
      const r = await c.query<{ reader_id: string; seq: number; event_json: string }>(
        `SELECT e.reader_id, e.seq, e.event_json FROM events e
           JOIN unnest($1::text[], $2::bigint[]) AS u(r, s) ON e.reader_id = u.r AND e.seq = u.s`,
        [needStored.map((x) => x.readerId), needStored.map((x) => x.seq)],
      );
      for (const x of r.rows) stored.set(key(x.reader_id, x.seq), x.event_json);
    }
    const conflictRows: Array<{ readerId: string; seq: number; json: string; atMs: number }> = [];
    const counted = new Set<string>();
    for (const x of rows) {
      const k = key(x.readerId, x.seq);
      const o = outcome(x.readerId);
      if (insertedKeys.has(k) && !counted.has(k)) {
        counted.add(k);
        o.inserted++;
        if (x.seq > o.maxSeen) o.maxSeen = x.seq;
      } else if (!stored.has(k) || stored.get(k) === x.json) {
        // not stored at all: left out above as settled (pruned by retention), a duplicate
        o.duplicates++;
      } else {
        o.conflicts.push(x.seq);
        conflictRows.push({ readerId: x.readerId, seq: x.seq, json: x.json, atMs: x.receivedAtMs });
      }
    }
    if (conflictRows.length > 0) {
      await c.query(
        `INSERT INTO duplicate_conflicts (reader_id, seq, event_json, at_ms)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])`,
        [
          conflictRows.map((x) => x.readerId),
          conflictRows.map((x) => x.seq),
          conflictRows.map((x) => x.json),
          conflictRows.map((x) => x.atMs),
        ],
      );
    }
    // 3. events that can never be valid, unless a valid copy is held
    for (const item of eventItems) {
      if (!item.invalid?.length) continue;
      const o = outcome(item.readerId);
      const held = await c.query<{ seq: number }>(
        'SELECT seq FROM events WHERE reader_id = $1 AND seq = ANY($2::bigint[])',
        [item.readerId, item.invalid.map((b) => b.seq)],
      );
      const heldSeqs = new Set(held.rows.map((x) => x.seq));
      for (const bad of item.invalid) {
        if (heldSeqs.has(bad.seq)) continue;
        await c.query(
          `INSERT INTO rejected_events (reader_id, seq, reason, detail, at_ms) VALUES ($1, $2, 'invalid-event', $3, $4)
           ON CONFLICT DO NOTHING`,
          [item.readerId, bad.seq, bad.detail, item.receivedAtMs],
        );
        o.invalidEvents.push(bad);
        if (bad.seq > o.maxSeen) o.maxSeen = bad.seq;
      }
    }
    // 4. status (the last one per reader), command results, rejects: one statement each kind
    const statuses = new Map<string, { json: string; at: number }>();
    const rejects: Array<Extract<IngestItem, { kind: 'reject' }>> = [];
    for (const item of items) {
      switch (item.kind) {
        case 'events':
          break;
        case 'status':
          statuses.set(item.readerId, { json: JSON.stringify(item.status), at: item.receivedAtMs });
          break;
        case 'command-result':
          await c.query(
            `INSERT INTO command_results (reader_id, command_id, result_json, received_at_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (reader_id, command_id) DO UPDATE SET result_json = excluded.result_json,
               received_at_ms = excluded.received_at_ms`,
            [item.readerId, item.result.commandId, JSON.stringify(item.result), item.receivedAtMs],
          );
          break;
        case 'reject':
          rejects.push(item);
          break;
      }
    }
    if (statuses.size > 0) {
      const ids = [...statuses.keys()];
      await c.query(
        `INSERT INTO reader_status (reader_id, status_json, received_at_ms)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
         ON CONFLICT (reader_id) DO UPDATE SET status_json = excluded.status_json,
           received_at_ms = excluded.received_at_ms`,
        [ids, ids.map((id) => statuses.get(id)?.json), ids.map((id) => statuses.get(id)?.at)],
      );
    }
    if (rejects.length > 0) {
      await c.query(
        `INSERT INTO rejects (reader_id, reason, detail, at_ms)
         SELECT r, re, d, t FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
           WITH ORDINALITY AS u(r, re, d, t, o) ORDER BY o`,
        [
          rejects.map((x) => x.readerId),
          rejects.map((x) => x.reason),
          rejects.map((x) => x.detail.slice(0, 500)),
          rejects.map((x) => x.atMs),
        ],
      );
      rejectsSincePrune += rejects.length;
    }
    // 5. every reader of the commit in one statement (we hold their locks): the held sequences above
    //    the old mark, numbered in order; those with seq - row_number = old mark are the contiguous run.
    if (readers.size > 0) {
      const list = [...readers.values()];
      const r = await c.query<{ reader_id: string; contiguous_upto: number; max_seen: number }>(
        `WITH r AS (
           SELECT u.reader_id, COALESCE(s.contiguous_upto, 0) AS upto,
                  GREATEST(COALESCE(s.max_seen, 0), u.batch_max) AS max_seen
             FROM unnest($1::text[], $2::bigint[]) AS u(reader_id, batch_max)
             LEFT JOIN reader_seq s ON s.reader_id = u.reader_id),
         held AS (
           SELECT r.reader_id, r.upto, h.seq,
                  h.seq - ROW_NUMBER() OVER (PARTITION BY r.reader_id ORDER BY h.seq) AS d
             FROM r CROSS JOIN LATERAL (
               (SELECT seq FROM events e WHERE e.reader_id = r.reader_id AND e.seq > r.upto
                UNION SELECT seq FROM rejected_events x WHERE x.reader_id = r.reader_id AND x.seq > r.upto)
               ORDER BY seq LIMIT ${ADVANCE_WINDOW}) h),
         adv AS (SELECT reader_id, MAX(seq) AS upto FROM held WHERE d = upto GROUP BY reader_id)
         INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen)
         SELECT r.reader_id, COALESCE(adv.upto, r.upto), r.max_seen FROM r LEFT JOIN adv ON adv.reader_id = r.reader_id
         ON CONFLICT (reader_id) DO UPDATE SET contiguous_upto = excluded.contiguous_upto,
           max_seen = excluded.max_seen
         RETURNING reader_id, contiguous_upto, max_seen`,
        [list.map((o) => o.readerId), list.map((o) => o.maxSeen)],
      );
      const after = new Map(r.rows.map((x) => [x.reader_id, x]));
      for (const o of list) {
        const x = after.get(o.readerId);
        o.upTo = x?.contiguous_upto ?? 0;
        o.maxSeen = x?.max_seen ?? o.maxSeen;
        out.inserted += o.inserted;
        out.duplicates += o.duplicates;
        out.conflicts += o.conflicts.length;
      }
    }
    for (const o of readers.values()) {
      o.gaps = o.maxSeen > o.upTo ? await gapsOn(c, o.readerId, MAX_ACK_GAPS) : [];
    }
    if (rejectsSincePrune >= 1000) {
      await c.query('DELETE FROM rejects WHERE id <= (SELECT MAX(id) FROM rejects) - $1', [MAX_REJECT_ROWS]);
      rejectsSincePrune = 0;
    }
    return out;
  };

  const one = async <T extends object>(sql: string, params: unknown[] = []): Promise<T | undefined> =>
    (await pool.query<T>(sql, params)).rows[0];

  return {
    commit: (items) => inTransaction(pool, (c) => commitTx(c, items)),
    seqState: (readerId) => seqStateOn(pool, readerId),
    gaps: (readerId, limit) => gapsOn(pool, readerId, limit),
    async readersWithGaps() {
      const r = await pool.query<{ reader_id: string; contiguous_upto: number; max_seen: number }>(
        'SELECT reader_id, contiguous_upto, max_seen FROM reader_seq WHERE max_seen > contiguous_upto ORDER BY reader_id',
      );
      return r.rows.map((x) => ({
        readerId: x.reader_id,
        contiguousUpto: x.contiguous_upto,
        maxSeen: x.max_seen,
      }));
    },
    async countEvents(readerId) {
      const r =
        readerId === undefined
          ? await one<{ n: number }>('SELECT COUNT(*) AS n FROM events')
          : await one<{ n: number }>('SELECT COUNT(*) AS n FROM events WHERE reader_id = $1', [readerId]);
      return r?.n ?? 0;
    },
    async rejectSummary(readerId) {
      const r = await pool.query<RejectSummary>(
        `SELECT reason, COUNT(*)::int AS count, MAX(at_ms) AS "lastAtMs",
           (SELECT detail FROM rejects r2 WHERE r2.reader_id = r.reader_id AND r2.reason = r.reason
            ORDER BY id DESC LIMIT 1) AS "lastDetail"
         FROM rejects r WHERE reader_id = $1 GROUP BY reader_id, reason ORDER BY reason`,
        [readerId],
      );
      return r.rows.map((x) => ({ ...x }));
    },
    async lastStatus(readerId) {
      const r = await one<{ status_json: string; received_at_ms: number }>(
        'SELECT status_json, received_at_ms FROM reader_status WHERE reader_id = $1',
        [readerId],
      );
      return r ? { status: JSON.parse(r.status_json) as unknown, receivedAtMs: r.received_at_ms } : undefined;
    },
    async getReader(readerId) {
      const r = await one<ReaderRow>('SELECT * FROM readers WHERE reader_id = $1', [readerId]);
      return r ? toRecord(r) : undefined;
    },
    async listReaders() {
      return (await pool.query<ReaderRow>('SELECT * FROM readers ORDER BY reader_id')).rows.map(toRecord);
    },
    insertReader: (r) =>
      inTransaction(pool, async (c) => {
        await c.query(
          'INSERT INTO readers (reader_id, password_hash, client_ref, label, revoked_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
          [r.readerId, r.passwordHash, r.clientRef, r.label, r.revokedAt, r.createdAt],
        );
        await c.query(
          'INSERT INTO reader_client_history (reader_id, client_ref, from_ms) VALUES ($1, $2, $3)',
          [r.readerId, r.clientRef, r.createdAt],
        );
      }),
    async setPasswordHash(readerId, hash) {
      await pool.query('UPDATE readers SET password_hash = $1 WHERE reader_id = $2', [hash, readerId]);
    },
    async setRevoked(readerId, atMs) {
      await pool.query('UPDATE readers SET revoked_at = $1 WHERE reader_id = $2', [atMs, readerId]);
    },
    setClientRef: (readerId, clientRef, atMs) =>
      inTransaction(pool, async (c) => {
        await c.query('UPDATE readers SET client_ref = $1 WHERE reader_id = $2', [clientRef, readerId]);
        await c.query(
          'INSERT INTO reader_client_history (reader_id, client_ref, from_ms) VALUES ($1, $2, $3)',
          [readerId, clientRef, atMs],
        );
      }),
    authTags: {
      async get(readerId) {
        return (
          await one<{ tag: Buffer }>('SELECT tag FROM reader_auth_cache WHERE reader_id = $1', [readerId])
        )?.tag;
      },
      async set(readerId, tag) {
        await pool.query(
          `INSERT INTO reader_auth_cache (reader_id, tag) VALUES ($1, $2)
           ON CONFLICT (reader_id) DO UPDATE SET tag = excluded.tag`,
          [readerId, tag],
        );
      },
      async delete(readerId) {
        await pool.query('DELETE FROM reader_auth_cache WHERE reader_id = $1', [readerId]);
      },
      flush: () => Promise.resolve(),
    },
  };
}
