import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import type { IngestItem, IngestStore } from '../../gateway/src/store/ingest-store.js';
import { createSqliteIngestStore } from '../../gateway/src/store/sqlite/ingest-store.js';
import { batchOf, tapEvent, tempDir } from './helpers.js';

/**
 * The IngestStore contract (CONTRIBUTING.md, "Contract suites"): every implementation (SQLite today, PostgreSQL later) must
 * pass this suite. Add an entry to IMPLEMENTATIONS to run it over another one.
 */
interface Impl {
  name: string;
  open(dir: string): { store: IngestStore; reopen(): IngestStore; close(): void };
}

const IMPLEMENTATIONS: Impl[] = [
  {
    name: 'sqlite',
    open(dir) {
      const file = join(dir, 'gateway.db');
      let db: Db = openDatabase(file, sqliteMigrations);
      return {
        store: createSqliteIngestStore(db),
        reopen() {
          db.close();
          db = openDatabase(file, sqliteMigrations); // migrations are idempotent
          return createSqliteIngestStore(db);
        },
        close: () => db.close(),
      };
    },
  },
];

const R = 'r-store';
const events = (seqs: number[]): IngestItem => {
  const b = batchOf(R, seqs);
  return { kind: 'events', readerId: R, events: b.events, sentAt: b.sentAt, receivedAtMs: 1 };
};

describe.each(IMPLEMENTATIONS)('IngestStore contract: $name', (impl) => {
  let cleanup: (() => void) | undefined;
  afterEach(() => cleanup?.());
  const setup = () => {
    const tmp = tempDir('vt-store-');
    const h = impl.open(tmp.dir);
    cleanup = () => {
      h.close();
      tmp.cleanup();
    };
    return h;
  };

  it('dedupes on (reader, seq) within and across commits, tracks the high-water mark and gaps', () => {
    const { store } = setup();
    let o = store.commit([events([1, 2]), events([2, 3]), events([5])]).readers.get(R);
    expect(o).toMatchObject({ upTo: 3, maxSeen: 5, inserted: 4, duplicates: 1, gaps: [{ from: 4, to: 4 }] });
    o = store.commit([events([7, 8])]).readers.get(R);
    expect(o?.gaps).toEqual([
      { from: 4, to: 4 },
      { from: 6, to: 6 },
    ]);
    expect(store.readersWithGaps()).toEqual([{ readerId: R, contiguousUpto: 3, maxSeen: 8 }]);
    o = store.commit([events([6]), events([4])]).readers.get(R);
    expect(o).toMatchObject({ upTo: 8, maxSeen: 8, gaps: [] });
    expect(store.countEvents(R)).toBe(8);
    expect(store.readersWithGaps()).toEqual([]);
  });

  it('keeps the first copy on a duplicate conflict and reports it', () => {
    const { store } = setup();
    store.commit([events([1])]);
    const other = tapEvent(R, 1, { eventId: 'different' });
    const o = store
      .commit([
        { kind: 'events', readerId: R, events: [other], sentAt: batchOf(R, [1]).sentAt, receivedAtMs: 2 },
      ])
      .readers.get(R);
    expect(o).toMatchObject({ inserted: 0, duplicates: 0, conflicts: [1], upTo: 1 });
  });

  it('holds invalid events by seq so the high-water mark passes them', () => {
    const { store } = setup();
    const b = batchOf(R, [1, 3]);
    const o = store
      .commit([
        {
          kind: 'events',
          readerId: R,
          events: b.events,
          invalid: [{ seq: 2, detail: 'card: bad' }],
          sentAt: b.sentAt,
          receivedAtMs: 1,
        },
      ])
      .readers.get(R);
    expect(o).toMatchObject({ upTo: 3, invalidEvents: [{ seq: 2, detail: 'card: bad' }] });
    expect(store.countEvents(R)).toBe(2);
  });

  it('survives a reopen; records rejects, status and registry changes', () => {
    const h = setup();
    h.store.insertReader({
      readerId: R,
      passwordHash: 'scrypt$11$8$1$x$y',
      clientRef: 'c1',
      label: null,
      revokedAt: null,
      createdAt: 1,
    });
    h.store.commit([
      events([1, 2]),
      { kind: 'reject', readerId: R, reason: 'invalid-json', detail: 'payload is not JSON', atMs: 5 },
    ]);
    h.store.setClientRef(R, 'c2', 10);
    h.store.setRevoked(R, 20);
    h.store.authTags.set(R, Buffer.alloc(32, 1));
    h.store.authTags.flush();
    const again = h.reopen();
    expect(again.seqState(R)).toEqual({ contiguousUpto: 2, maxSeen: 2 });
    expect(again.getReader(R)).toMatchObject({ clientRef: 'c2', revokedAt: 20 });
    expect(again.rejectSummary(R)).toEqual([
      { reason: 'invalid-json', count: 1, lastAtMs: 5, lastDetail: 'payload is not JSON' },
    ]);
    expect(again.authTags.get(R)).toEqual(Buffer.alloc(32, 1));
    again.authTags.delete(R);
    expect(again.authTags.get(R)).toBeUndefined();
    expect(again.listReaders().map((r) => r.readerId)).toEqual([R]);
  });
});
