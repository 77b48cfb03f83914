import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestItem } from '../../gateway/src/store/ingest-store.js';
import { lockReaders, migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { createPgIngestStore } from '../../gateway/src/store/postgres/ingest-store.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { batchOf, tapEvent } from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

/**
 * The ingest store on PostgreSQL: the same cases as the IngestStore contract (test/gateway/
 * ingest-store.contract.test.ts, run there over SQLite), plus what only several instances can break:
 * two pools (two gateway instances) committing the same reader's overlapping batches at once.
 */
const R = 'r-store';
const events = (seqs: number[], readerId = R): IngestItem => {
  const b = batchOf(readerId, seqs);
  return { kind: 'events', readerId, events: b.events, sentAt: b.sentAt, receivedAtMs: 1 };
};

describe('PostgreSQL ingest store', () => {
  let pgc: PgCluster;
  const pools: PgPool[] = [];
  beforeAll(async () => {
    pgc = await startPgCluster();
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await pgc?.destroy();
  });
  const fresh = async () => {
    const url = await pgc.createDatabase();
    const open = async () => {
      const pool = openPgPool({ url, max: 4 });
      pools.push(pool);
      await migrate(pool, postgresMigrations);
      return createPgIngestStore(pool);
    };
    const raw = openPgPool({ url, max: 2 });
    pools.push(raw);
    return { url, store: await open(), open, raw };
  };

  it('applies the schema once; a second instance (or a restart) applies nothing', async () => {
    const url = await pgc.createDatabase();
    const [a, b] = [openPgPool({ url }), openPgPool({ url })];
    pools.push(a, b);
    const [ra, rb] = await Promise.all([migrate(a, postgresMigrations), migrate(b, postgresMigrations)]);
    expect([...ra, ...rb].sort()).toEqual(postgresMigrations.map((m) => m.id).sort());
    expect(await migrate(a, postgresMigrations)).toEqual([]);
  });

  it('dedupes on (reader, seq) within and across commits, tracks the high-water mark and gaps', async () => {
    const { store } = await fresh();
    let o = (await store.commit([events([1, 2]), events([2, 3]), events([5])])).readers.get(R);
    expect(o).toMatchObject({ upTo: 3, maxSeen: 5, inserted: 4, duplicates: 1, gaps: [{ from: 4, to: 4 }] });
    o = (await store.commit([events([7, 8])])).readers.get(R);
    expect(o?.gaps).toEqual([
      { from: 4, to: 4 },
      { from: 6, to: 6 },
    ]);
    expect(await store.readersWithGaps()).toEqual([{ readerId: R, contiguousUpto: 3, maxSeen: 8 }]);
    o = (await store.commit([events([6]), events([4])])).readers.get(R);
    expect(o).toMatchObject({ upTo: 8, maxSeen: 8, gaps: [] });
    expect(await store.countEvents(R)).toBe(8);
    expect(await store.readersWithGaps()).toEqual([]);
  });

  it('keeps the first copy on a duplicate conflict and reports it', async () => {
    const { store } = await fresh();
    await store.commit([events([1])]);
    const other = tapEvent(R, 1, { eventId: 'different' });
    const sentAt = batchOf(R, [1]).sentAt;
    const o = (
      await store.commit([{ kind: 'events', readerId: R, events: [other], sentAt, receivedAtMs: 2 }])
    ).readers.get(R);
    expect(o).toMatchObject({ inserted: 0, duplicates: 0, conflicts: [1], upTo: 1 });
    // within one commit too: the first copy wins, the second is a conflict, a third equal copy a duplicate
    const first = tapEvent(R, 2);
    const o2 = (
      await store.commit([
        {
          kind: 'events',
          readerId: R,
          events: [first, tapEvent(R, 2, { eventId: 'x' }), first],
          sentAt,
          receivedAtMs: 3,
        },
      ])
    ).readers.get(R);
    expect(o2).toMatchObject({ inserted: 1, duplicates: 1, conflicts: [2], upTo: 2 });
  });

  it('holds invalid events by seq so the high-water mark passes them', async () => {
    const { store } = await fresh();
    const b = batchOf(R, [1, 3]);
    const o = (
      await store.commit([
        {
          kind: 'events',
          readerId: R,
          events: b.events,
          invalid: [{ seq: 2, detail: 'card: bad' }],
          sentAt: b.sentAt,
          receivedAtMs: 1,
        },
      ])
    ).readers.get(R);
    expect(o).toMatchObject({ upTo: 3, invalidEvents: [{ seq: 2, detail: 'card: bad' }] });
    expect(await store.countEvents(R)).toBe(2);
  });

  it('survives a reconnect and a server crash; records rejects, status and registry changes', async () => {
    const h = await fresh();
    await h.store.insertReader({
      readerId: R,
      passwordHash: 'scrypt$11$8$1$x$y',
      clientRef: 'c1',
      label: null,
      revokedAt: null,
      createdAt: 1,
    });
    await h.store.commit([
      events([1, 2]),
      { kind: 'reject', readerId: R, reason: 'invalid-json', detail: 'payload is not JSON', atMs: 5 },
    ]);
    await h.store.setClientRef(R, 'c2', 10);
    await h.store.setRevoked(R, 20);
    await h.store.authTags.set(R, Buffer.alloc(32, 1));
    pgc.restart('immediate');
    const again = await h.open();
    expect(await again.seqState(R)).toEqual({ contiguousUpto: 2, maxSeen: 2 });
    expect(await again.getReader(R)).toMatchObject({ clientRef: 'c2', revokedAt: 20 });
    expect(await again.rejectSummary(R)).toEqual([
      { reason: 'invalid-json', count: 1, lastAtMs: 5, lastDetail: 'payload is not JSON' },
    ]);
    expect(await again.authTags.get(R)).toEqual(Buffer.alloc(32, 1));
    await again.authTags.delete(R);
    expect(await again.authTags.get(R)).toBeUndefined();
    expect((await again.listReaders()).map((r) => r.readerId)).toEqual([R]);
    // the first instance's pool lost its connections in the crash: its next commit works again
    await expect(h.store.commit([events([3])])).resolves.toBeDefined();
  });

  it("two instances committing one reader's overlapping batches at once: each seq stored once, acks never run ahead, no lost advance", async () => {
    const h = await fresh();
    const a = h.store;
    const b = await h.open();
    const N = 400;
    // every seq in two batches (one per instance), shuffled in windows so batches overlap and arrive out of order
    const batches: number[][] = [];
    for (let s = 1; s <= N; s += 10) {
      const w = Array.from({ length: 10 }, (_, i) => s + i).filter((x) => x <= N);
      batches.push(
        w.filter((_, i) => i % 2 === 0),
        w.filter((_, i) => i % 2 === 1),
        w.slice(3, 8),
      );
    }
    const acks: number[] = [];
    let inserted = 0;
    const run = async (store: typeof a, mine: number[][]) => {
      for (const seqs of mine) {
        const o = (
          await store.commit([
            events(seqs),
            events(
              seqs.map((x) => x + 1).filter((x) => x <= N),
              'r-other',
            ),
          ])
        ).readers.get(R);
        if (!o) throw new Error('no outcome');
        inserted += o.inserted;
        acks.push(o.upTo);
        // an ack claims only stored sequences
        expect(await store.countEvents(R)).toBeGreaterThanOrEqual(o.upTo);
      }
    };
    await Promise.all([
      run(
        a,
        batches.filter((_, i) => i % 2 === 0),
      ),
      run(
        b,
        batches.filter((_, i) => i % 2 === 1),
      ),
      run(
        a,
        batches
          .slice()
          .reverse()
          .filter((_, i) => i % 3 === 0),
      ),
    ]);
    expect(inserted).toBe(N);
    expect(await a.countEvents(R)).toBe(N);
    expect(await a.seqState(R)).toEqual({ contiguousUpto: N, maxSeen: N });
    expect(await b.seqState('r-other')).toMatchObject({ maxSeen: N });
    expect(await a.readersWithGaps()).toEqual([{ readerId: 'r-other', contiguousUpto: 0, maxSeen: N }]);
    expect(Math.max(...acks)).toBe(N);
  });

  it("a commit waits while another instance holds the reader's lock; another reader's commit does not", async () => {
    const h = await fresh();
    const other = await h.open();
    const c = await h.raw.connect();
    await c.query('BEGIN');
    await lockReaders(c, [R]); // instance A is mid-commit for reader R
    let done = false;
    const blocked = other.commit([events([1])]).then((o) => {
      done = true;
      return o;
    });
    await other.commit([events([1], 'r-free')]); // a different reader passes
    await new Promise((r) => setTimeout(r, 300));
    expect(done).toBe(false);
    await c.query('COMMIT');
    c.release();
    expect((await blocked).readers.get(R)).toMatchObject({ upTo: 1, inserted: 1 });
  });

  it('a long run behind a filled gap advances in bounded steps and converges', async () => {
    const { store } = await fresh();
    const seqs = Array.from({ length: 24_999 }, (_, i) => i + 2); // 2..25000, seq 1 missing
    for (let i = 0; i < seqs.length; i += 5000) await store.commit([events(seqs.slice(i, i + 5000))]);
    expect(await store.seqState(R)).toEqual({ contiguousUpto: 0, maxSeen: 25_000 });
    let o = (await store.commit([events([1])])).readers.get(R);
    const steps = [o?.upTo];
    while ((o?.upTo ?? 0) < 25_000 && steps.length < 10) {
      o = (await store.commit([events([25_000])])).readers.get(R); // the reader's resend
      steps.push(o?.upTo);
    }
    expect(steps).toEqual([10_000, 20_000, 25_000]);
    expect(o?.gaps).toEqual([]);
  });

  it('a crash of the server under load: every commit that resolved (an ack) is stored, a failed one left nothing', async () => {
    const h = await fresh();
    const writers = [h.store, await h.open()];
    const acked = new Set<string>();
    let failed = 0;
    let stop = false;
    const run = async (w: number) => {
      const store = writers[w] as typeof h.store;
      for (let n = 1; !stop && n <= 2000; n++) {
        const readerId = `r-crash-${w}`;
        try {
          const o = await store.commit([events([n], readerId)]);
          if (o.readers.get(readerId)?.upTo === n) acked.add(`${readerId}:${n}`);
        } catch {
          failed++;
          n--; // the device resends the batch that got no ack
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    };
    const load = Promise.all([run(0), run(1)]);
    await new Promise((r) => setTimeout(r, 500));
    pgc.restart('immediate');
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await load;
    expect(failed).toBeGreaterThan(0); // the crash did hit commits in flight
    for (const w of [0, 1]) {
      const readerId = `r-crash-${w}`;
      const s = await h.store.seqState(readerId);
      const mine = [...acked].filter((k) => k.startsWith(`${readerId}:`)).length;
      expect(s.contiguousUpto).toBeGreaterThanOrEqual(mine);
      expect(await h.store.countEvents(readerId)).toBe(s.contiguousUpto);
      expect(s.maxSeen).toBe(s.contiguousUpto);
    }
  });
});
