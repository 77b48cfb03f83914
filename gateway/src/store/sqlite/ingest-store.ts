import { statementCache } from './stmt-cache.js';
import { writeWhenFree } from './write-when-free.js';
import type { Db } from './db.js';
import type {
  CommitOutcome,
  IngestItem,
  IngestStore,
  ReaderCommitOutcome,
  ReaderSeqState,
  RejectSummary,
  SeqRange,
  StoredStatus,
} from '../ingest-store.js';
import { readerRecord as toRecord, type ReaderRow } from '../rows.js';

/** Rows kept in `rejects` (older ones are pruned; the metrics counter keeps the totals). */
const MAX_REJECT_ROWS = 100_000;
const MAX_ACK_GAPS = 50;

/** SQLite implementation of IngestStore over the shared gateway.db handle (WAL, synchronous=FULL). */
export function createSqliteIngestStore(db: Db): IngestStore {
  /** Statements of the less frequent calls, prepared once on first use. */
  const q = statementCache(db);
  const st = {
    insertEvent: db.prepare(
      'INSERT OR IGNORE INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json) VALUES (?, ?, ?, ?, ?)',
    ),
    eventJson: db.prepare('SELECT event_json FROM events WHERE reader_id = ? AND seq = ?').pluck(),
    insertConflict: db.prepare(
      'INSERT INTO duplicate_conflicts (reader_id, seq, event_json, at_ms) VALUES (?, ?, ?, ?)',
    ),
    seqGet: db.prepare('SELECT contiguous_upto, max_seen FROM reader_seq WHERE reader_id = ?'),
    seqUpsert: db.prepare(
      `INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen) VALUES (?, ?, ?)
       ON CONFLICT(reader_id) DO UPDATE SET contiguous_upto = excluded.contiguous_upto, max_seen = excluded.max_seen`,
    ),
    // held sequences: stored events plus events recorded as invalid
    seqsAboveRaw: db
      .prepare(
        `SELECT seq FROM events WHERE reader_id = :r AND seq > :s
         UNION SELECT seq FROM rejected_events WHERE reader_id = :r AND seq > :s
         ORDER BY seq LIMIT :n`,
      )
      .pluck(),
    insertInvalid: db.prepare(
      'INSERT OR IGNORE INTO rejected_events (reader_id, seq, reason, detail, at_ms) VALUES (?, ?, ?, ?, ?)',
    ),
    eventExists: db.prepare('SELECT 1 FROM events WHERE reader_id = ? AND seq = ?').pluck(),
    rejectedExists: db.prepare('SELECT 1 FROM rejected_events WHERE reader_id = ? AND seq = ?').pluck(),
    insertReject: db.prepare('INSERT INTO rejects (reader_id, reason, detail, at_ms) VALUES (?, ?, ?, ?)'),
    pruneRejects: db.prepare('DELETE FROM rejects WHERE id <= (SELECT MAX(id) FROM rejects) - ?'),
    upsertStatus: db.prepare(
      `INSERT INTO reader_status (reader_id, status_json, received_at_ms) VALUES (?, ?, ?)
       ON CONFLICT(reader_id) DO UPDATE SET status_json = excluded.status_json, received_at_ms = excluded.received_at_ms`,
    ),
    upsertResult: db.prepare(
      `INSERT INTO command_results (reader_id, command_id, result_json, received_at_ms) VALUES (?, ?, ?, ?)
       ON CONFLICT(reader_id, command_id) DO UPDATE SET result_json = excluded.result_json,
       received_at_ms = excluded.received_at_ms`,
    ),
  };

  const seqsAbove = {
    all: (readerId: string, seq: number, limit: number) =>
      st.seqsAboveRaw.all({ r: readerId, s: seq, n: limit }) as number[],
    iterate: (readerId: string, seq: number, limit: number) =>
      st.seqsAboveRaw.iterate({ r: readerId, s: seq, n: limit }) as Iterable<number>,
  };

  const seqState = (readerId: string): ReaderSeqState => {
    const r = st.seqGet.get(readerId) as { contiguous_upto: number; max_seen: number } | undefined;
    return { contiguousUpto: r?.contiguous_upto ?? 0, maxSeen: r?.max_seen ?? 0 };
  };

  const gaps = (readerId: string, limit: number): SeqRange[] => {
    const s = seqState(readerId);
    if (s.maxSeen <= s.contiguousUpto) return [];
    const out: SeqRange[] = [];
    let next = s.contiguousUpto + 1;
    for (const seq of seqsAbove.iterate(readerId, s.contiguousUpto, 100_000)) {
      if (seq > next) {
        out.push({ from: next, to: seq - 1 });
        if (out.length >= limit) return out;
      }
      next = seq + 1;
    }
    return out;
  };

  /** Advances the contiguous high-water mark over rows already stored. */
  const advance = (readerId: string, from: number): number => {
    let upto = from;
    for (;;) {
      const seqs = seqsAbove.all(readerId, upto, 1000);
      let moved = 0;
      for (const s of seqs) {
        if (s !== upto + 1) break;
        upto = s;
        moved++;
      }
      if (moved < 1000) return upto;
    }
  };

  let rejectsSincePrune = 0;

  const commitTx = db.transaction((items: readonly IngestItem[]): CommitOutcome => {
    const readers = new Map<string, ReaderCommitOutcome>();
    const out: CommitOutcome = { readers, inserted: 0, duplicates: 0, conflicts: 0 };
    for (const item of items) {
      switch (item.kind) {
        case 'events': {
          let o = readers.get(item.readerId);
          if (!o) {
            o = {
              readerId: item.readerId,
              upTo: 0,
              maxSeen: 0,
              gaps: [],
              inserted: 0,
              duplicates: 0,
              conflicts: [],
              invalidEvents: [],
            };
            readers.set(item.readerId, o);
          }
          const sentAt = JSON.stringify(item.sentAt);
          const settledUpto = seqState(item.readerId).contiguousUpto;
          for (const e of item.events) {
            // At or below the contiguous mark and held nowhere: its row was deleted by retention
            // (gateway/src/retention). Settled, so a duplicate: never stored (or paired) again.
            if (
              e.seq <= settledUpto &&
              st.eventExists.get(item.readerId, e.seq) === undefined &&
              st.rejectedExists.get(item.readerId, e.seq) === undefined
            ) {
              o.duplicates++;
              continue;
            }
            const json = JSON.stringify(e);
            const r = st.insertEvent.run(item.readerId, e.seq, json, item.receivedAtMs, sentAt);
            if (r.changes === 1) {
              o.inserted++;
              if (e.seq > o.maxSeen) o.maxSeen = e.seq;
            } else if (st.eventJson.get(item.readerId, e.seq) === json) {
              o.duplicates++;
            } else {
              o.conflicts.push(e.seq);
              st.insertConflict.run(item.readerId, e.seq, json, item.receivedAtMs);
            }
          }
          for (const bad of item.invalid ?? []) {
            if (st.eventExists.get(item.readerId, bad.seq) !== undefined) continue; // a valid copy is held
            st.insertInvalid.run(item.readerId, bad.seq, 'invalid-event', bad.detail, item.receivedAtMs);
            o.invalidEvents.push(bad);
            if (bad.seq > o.maxSeen) o.maxSeen = bad.seq;
          }
          break;
        }
        case 'status':
          st.upsertStatus.run(item.readerId, JSON.stringify(item.status), item.receivedAtMs);
          break;
        case 'command-result':
          st.upsertResult.run(
            item.readerId,
            item.result.commandId,
            JSON.stringify(item.result),
            item.receivedAtMs,
          );
          break;
        case 'reject':
          st.insertReject.run(item.readerId, item.reason, item.detail.slice(0, 500), item.atMs);
          rejectsSincePrune++;
          break;
      }
    }
    for (const o of readers.values()) {
      const before = seqState(o.readerId);
      const maxSeen = Math.max(before.maxSeen, o.maxSeen);
      const upTo = advance(o.readerId, before.contiguousUpto);
      if (upTo !== before.contiguousUpto || maxSeen !== before.maxSeen) {
        st.seqUpsert.run(o.readerId, upTo, maxSeen);
      }
      o.upTo = upTo;
      o.maxSeen = maxSeen;
      out.inserted += o.inserted;
      out.duplicates += o.duplicates;
      out.conflicts += o.conflicts.length;
    }
    for (const o of readers.values()) o.gaps = o.maxSeen > o.upTo ? gaps(o.readerId, MAX_ACK_GAPS) : [];
    if (rejectsSincePrune >= 1000) {
      st.pruneRejects.run(MAX_REJECT_ROWS);
      rejectsSincePrune = 0;
    }
    return out;
  });

  const tagGet = db.prepare('SELECT tag FROM reader_auth_cache WHERE reader_id = ?').pluck();
  const tagSet = db.prepare(
    'INSERT INTO reader_auth_cache (reader_id, tag) VALUES (?, ?) ON CONFLICT(reader_id) DO UPDATE SET tag = excluded.tag',
  );
  const tagDel = db.prepare('DELETE FROM reader_auth_cache WHERE reader_id = ?');
  // Tags are a cache (losing one costs one KDF run): written in batches, one commit per event-loop
  // turn, not one fsync per connecting reader (that was ~7 ms each in a reconnect storm).
  const pendingTags = new Map<string, Buffer | null>();
  let tagFlushScheduled = false;
  const writeTags = () => {
    for (const [id, tag] of pendingTags) {
      if (tag) tagSet.run(id, tag);
      else tagDel.run(id);
    }
    pendingTags.clear();
  };
  const flushTags = db.transaction(writeTags);
  // The flush waits for the write lock off the event loop (write-when-free.ts: the writer thread holds it for
  // its commits). Tags that arrive meanwhile go with it or with the next one; a flush that fails leaves them
  // pending (still served from memory by `get`) for the next.
  const scheduleTagFlush = () => {
    if (tagFlushScheduled) return;
    tagFlushScheduled = true;
    setImmediate(() => {
      if (!db.open) return void (tagFlushScheduled = false);
      const again = () => {
        tagFlushScheduled = false;
        if (pendingTags.size) scheduleTagFlush();
      };
      writeWhenFree(db, writeTags).then(again, () => void (tagFlushScheduled = false));
    });
  };
  const getReaderStmt = db.prepare('SELECT * FROM readers WHERE reader_id = ?');

  return {
    authTags: {
      get: (readerId) =>
        pendingTags.has(readerId)
          ? (pendingTags.get(readerId) ?? undefined)
          : ((tagGet.get(readerId) as Buffer | undefined) ?? undefined),
      set: (readerId, tag) => {
        pendingTags.set(readerId, tag);
        scheduleTagFlush();
      },
      delete: (readerId) => {
        pendingTags.set(readerId, null);
        scheduleTagFlush();
      },
      flush: () => {
        if (db.open && pendingTags.size) flushTags();
      },
    },
    commit: (items) => commitTx.immediate(items),
    seqState,
    gaps,
    readersWithGaps: () =>
      (
        q(
          'SELECT reader_id, contiguous_upto, max_seen FROM reader_seq WHERE max_seen > contiguous_upto',
        ).all() as Array<{ reader_id: string; contiguous_upto: number; max_seen: number }>
      ).map((r) => ({ readerId: r.reader_id, contiguousUpto: r.contiguous_upto, maxSeen: r.max_seen })),
    countEvents: (readerId) =>
      readerId === undefined
        ? (q('SELECT COUNT(*) FROM events').pluck().get() as number)
        : (q('SELECT COUNT(*) FROM events WHERE reader_id = ?').pluck().get(readerId) as number),
    rejectSummary: (readerId): RejectSummary[] =>
      (
        q(
          `SELECT reason, COUNT(*) AS count, MAX(at_ms) AS lastAtMs,
               (SELECT detail FROM rejects r2 WHERE r2.reader_id = r.reader_id AND r2.reason = r.reason
                ORDER BY id DESC LIMIT 1) AS lastDetail
             FROM rejects r WHERE reader_id = ? GROUP BY reason ORDER BY reason`,
        ).all(readerId) as RejectSummary[]
      ).map((r) => ({ ...r })),
    lastStatus: (readerId): StoredStatus | undefined => {
      const r = q('SELECT status_json, received_at_ms FROM reader_status WHERE reader_id = ?').get(
        readerId,
      ) as { status_json: string; received_at_ms: number } | undefined;
      return r ? { status: JSON.parse(r.status_json) as unknown, receivedAtMs: r.received_at_ms } : undefined;
    },
    getReader: (readerId) => {
      const r = getReaderStmt.get(readerId) as ReaderRow | undefined;
      return r ? toRecord(r) : undefined;
    },
    listReaders: () => (q('SELECT * FROM readers ORDER BY reader_id').all() as ReaderRow[]).map(toRecord),
    insertReader: (r) =>
      db.transaction(() => {
        q(
          'INSERT INTO readers (reader_id, password_hash, client_ref, label, revoked_at, created_at) VALUES (?, ?, ?, ?, ?, ?)',
        ).run(r.readerId, r.passwordHash, r.clientRef, r.label, r.revokedAt, r.createdAt);
        q('INSERT INTO reader_client_history (reader_id, client_ref, from_ms) VALUES (?, ?, ?)').run(
          r.readerId,
          r.clientRef,
          r.createdAt,
        );
      })(),
    setPasswordHash: (readerId, hash) => {
      q('UPDATE readers SET password_hash = ? WHERE reader_id = ?').run(hash, readerId);
    },
    setRevoked: (readerId, atMs) => {
      q('UPDATE readers SET revoked_at = ? WHERE reader_id = ?').run(atMs, readerId);
    },
    setClientRef: (readerId, clientRef, atMs) =>
      db.transaction(() => {
        q('UPDATE readers SET client_ref = ? WHERE reader_id = ?').run(clientRef, readerId);
        q('INSERT INTO reader_client_history (reader_id, client_ref, from_ms) VALUES (?, ?, ?)').run(
          readerId,
          clientRef,
          atMs,
        );
      })(),
  };
}
