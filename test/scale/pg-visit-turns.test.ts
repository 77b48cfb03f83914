import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VisitEvent } from '../../protocol/index.js';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgVisitStore } from '../../gateway/src/store/postgres/visits.js';
import type { VisitTx } from '../../gateway/src/store/ports.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

/**
 * What only several instances can break in the VisitStore on PostgreSQL: three pools (three gateway
 * instances) run visits turns for the same readers at once. Each turn takes its readers' advisory
 * locks, so a turn sees the cursor the previous holder committed and no event is processed twice; the
 * outbox rows of a reader come out in event order. (The single-instance behaviour is the contract
 * suite, test/contracts/store-visits.contract.ts, on both engines.)
 */
describe('PostgreSQL visits turns, several instances', () => {
  let pgc: PgCluster;
  const pools: PgPool[] = [];
  const T = 1_700_000_000_000;
  beforeAll(async () => {
    pgc = await startPgCluster();
    const url = await pgc.createDatabase();
    for (let i = 0; i < 3; i++) pools.push(openPgPool({ url, max: 4 }));
    await migrate(pools[0] as PgPool, postgresMigrations);
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await pgc?.destroy();
  });

  const event = (readerId: string, seq: number): VisitEvent => ({
    type: 'visit.started',
    idempotencyKey: `vt1:${readerId}:${seq}:started`,
    visitId: `${readerId}.${seq}`,
    readerId,
    clientRef: 'home-1',
    staffRef: 'staff-1',
    cardRef: 'c1_5d41402abc4b2a76b9719d911017c592',
    groupId: null,
    anomalies: [],
    timeQuality: 'synced',
    startedAt: new Date(T + seq).toISOString(),
    startSeq: seq,
  });

  /** A turn that processes up to 7 events of `readerId` past its cursor; returns the seqs it handled. */
  const step = (readerId: string) => (tx: VisitTx) => {
    const cursor = tx.cursor(readerId);
    const rows = tx.events(readerId, cursor, tx.contiguousUpto(readerId), 7);
    for (const r of rows) tx.enqueue(event(readerId, r.seq), T);
    if (rows.length) tx.setCursor(readerId, rows[rows.length - 1]?.seq ?? cursor);
    return rows.map((r) => r.seq);
  };

  it('three instances drain the same readers at once: every event once, in order per reader', async () => {
    const readers = ['r-a', 'r-b'];
    const N = 60;
    for (const r of readers) {
      for (let s = 1; s <= N; s++) {
        await pools[0]?.query(
          'INSERT INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json) VALUES ($1, $2, $3, $4, $5)',
          [r, s, '{}', T + s, '{}'],
        );
      }
      await pools[0]?.query(
        'INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen) VALUES ($1, $2, $2)',
        [r, N],
      );
    }
    const stores = pools.map((p) => new PgVisitStore(p));
    const handled = new Map<string, number[]>(readers.map((r) => [r, []]));
    const worker = async (store: PgVisitStore, readerId: string) => {
      for (let i = 0; i < 100; i++) {
        const seqs = await store.runTurn([readerId], step(readerId));
        handled.get(readerId)?.push(...seqs);
        if (seqs.length === 0 && (await store.readersBehind()).indexOf(readerId) < 0) return;
      }
    };
    await Promise.all(stores.flatMap((s) => readers.map((r) => worker(s, r))));
    for (const r of readers) {
      const seqs = handled.get(r) ?? [];
      expect(seqs.length).toBe(N); // none twice
      expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      const out = await pools[1]?.query<{ k: string }>(
        'SELECT idempotency_key AS k FROM outbox WHERE visit_id LIKE $1 ORDER BY id',
        [`${r}.%`],
      );
      expect(out?.rows.map((x) => x.k)).toEqual(
        Array.from({ length: N }, (_, i) => `vt1:${r}:${i + 1}:started`),
      );
    }
    expect(await stores[2]?.readersBehind()).toEqual([]);
  }, 120_000);
});
