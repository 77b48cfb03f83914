import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TapEvent, VisitEvent } from '../../protocol/index.js';
import { LOCK_NS, migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgVisitStore } from '../../gateway/src/store/postgres/visits.js';
import { TxVisitTurns } from '../../gateway/src/visits/tx-turns.js';
import { createTurnVisitPipeline } from '../../gateway/src/visits/turn-pipeline.js';
import { PgOutbox } from '../../gateway/src/store/postgres/outbox.js';
import { MetricsRegistry } from '../../gateway/src/metrics.js';
import { systemClock } from '../../protocol/index.js';
import { startFakeBackend } from '../../simulator/fake-backend.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import {
  addReader,
  card,
  createEnv,
  FakeClock,
  ingestBatch,
  outboxEvents,
  silentLogger,
  T0,
  tap,
} from './helpers.js';

/**
 * The visits engine on PostgreSQL (visits/tx-turns.ts over store/postgres/visits.ts) gives the same
 * visits, anomalies and outbox events as the SQLite engine for the same stored taps, and stays exact
 * when three instances drain the same readers at once in small chunks.
 */

const MIN = 60_000;
/** Two homes; staff s1 (card 1) overlaps herself; an unknown card, a revoked card, a stop without start. */
const scenario = (): Array<{ readerId: string; events: TapEvent[] }> => [
  {
    readerId: 'r-a',
    events: [
      tap('r-a', 1, { card: card(1), decision: 'start', visitId: 'va1' }),
      tap('r-a', 2, { card: card(1), decision: 'stop', visitId: 'va1', time: { wallMs: T0 + 20 * MIN } }),
      tap('r-a', 3, { card: card(2), decision: 'start', visitId: 'va2', time: { wallMs: T0 + 21 * MIN } }),
      tap('r-a', 4, {
        card: card(2),
        decision: 'rejected',
        visitId: null,
        rejectReason: 'unknown-card',
        time: { wallMs: T0 + 22 * MIN },
      }),
      tap('r-a', 5, {
        card: card(2),
        decision: 'auto-close',
        visitId: 'va2',
        time: { wallMs: T0 + 30 * MIN },
      }),
      tap('r-a', 6, { card: card(1), decision: 'start', visitId: 'va3', time: { wallMs: T0 + 40 * MIN } }),
      // an unsynced tap in the same boot: corrected by the boot's exact anchor
      tap('r-a', 7, {
        card: card(1),
        decision: 'stop',
        visitId: 'va3',
        time: { wallMs: 1_000_000_000_000, monoMs: 50 * MIN + 1000, synced: false },
      }),
    ],
  },
  {
    readerId: 'r-b',
    events: [
      tap('r-b', 1, { card: card(1), decision: 'start', visitId: 'vb1', time: { wallMs: T0 + 5 * MIN } }),
      tap('r-b', 2, { card: card(1), decision: 'stop', visitId: 'vb1', time: { wallMs: T0 + 10 * MIN } }),
      tap('r-b', 3, { card: card(3), decision: 'stop', visitId: 'vb9', time: { wallMs: T0 + 12 * MIN } }),
      tap('r-b', 4, { card: card(3), decision: 'start', visitId: 'vb2', time: { wallMs: T0 + 13 * MIN } }),
      tap('r-b', 5, { card: card(4), decision: 'start', visitId: 'vb3', time: { wallMs: T0 + 14 * MIN } }),
      tap('r-b', 6, { card: card(5), decision: 'start', visitId: 'vb4', time: { wallMs: T0 + 15 * MIN } }),
    ],
  },
];

interface Outcome {
  outbox: VisitEvent[];
  anomalies: Array<{ key: string; kind: string; visitId: string | null; staffRef: string | null }>;
  visits: Array<Record<string, unknown>>;
}

/**
 * The SQLite engine's answer (the reference): all taps stored then processed, or (`stepwise`) taps
 * arriving one per reader at a time, r-b processed before r-a after each arrival.
 */
async function onSqlite(
  stepwise = false,
  close?: { visitId: string; actor: string; reason: string },
): Promise<Outcome> {
  const env = createEnv({ fakeClock: new FakeClock(T0 + 60 * MIN) });
  try {
    addReader(env.db, 'r-a', 'home-a');
    addReader(env.db, 'r-b', 'home-b');
    env.pipeline.registry.addCard({ cardRef: card(1), staffRef: 's1' });
    env.pipeline.registry.addCard({ cardRef: card(3), staffRef: 's3' });
    env.db.prepare('UPDATE cards SET revoked_at = ? WHERE card_ref = ?').run(T0, card(3));
    if (!stepwise) {
      for (const b of scenario()) ingestBatch(env.db, b);
      env.pipeline.processNow();
    }
    for (let upto = 1; stepwise && upto <= 7; upto++) {
      for (const b of scenario()) ingestBatch(env.db, { ...b, events: b.events.slice(0, upto) });
      env.pipeline.processNow(['r-b', 'r-a']);
    }
    if (close) expect(env.pipeline.closeVisit(close).ok).toBe(true);
    return {
      outbox: outboxEvents(env.db),
      anomalies: env.db
        .prepare(
          'SELECT idempotency_key AS key, kind, visit_id AS visitId, staff_ref AS staffRef FROM anomalies ORDER BY id',
        )
        .all() as Outcome['anomalies'],
      visits: env.db
        .prepare(
          `SELECT reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms, start_seq,
             ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq
           FROM visits ORDER BY reader_id, visit_id`,
        )
        .all() as Array<Record<string, unknown>>,
    };
  } finally {
    await env.close();
  }
}

describe('visits engine on PostgreSQL', () => {
  let pgc: PgCluster;
  let reference: Outcome;
  let stepwise: Outcome;
  beforeAll(async () => {
    pgc = await startPgCluster();
    reference = await onSqlite();
    stepwise = await onSqlite(true);
  });
  afterAll(async () => {
    await pgc?.destroy();
  });

  const seed = async (pool: PgPool): Promise<void> => {
    await migrate(pool, postgresMigrations);
    for (const [r, home] of [
      ['r-a', 'home-a'],
      ['r-b', 'home-b'],
    ] as const) {
      await pool.query(
        `INSERT INTO readers (reader_id, password_hash, client_ref, label, revoked_at, created_at)
           VALUES ($1, 'test', $2, NULL, NULL, 0)`,
        [r, home],
      );
      await pool.query(
        'INSERT INTO reader_client_history (reader_id, client_ref, from_ms) VALUES ($1, $2, 0)',
        [r, home],
      );
    }
    await pool.query(
      `INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES ($1, 's1', NULL, 0), ($2, 's3', $3, 0)`,
      [card(1), card(3), T0],
    );
  };
  /** Stores events as the ingest does: rows, then the reader's contiguous prefix. */
  const store = async (pool: PgPool, readerId: string, events: TapEvent[], upto: number): Promise<void> => {
    for (const e of events) {
      await pool.query(
        `INSERT INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT DO NOTHING`,
        [
          readerId,
          e.seq,
          JSON.stringify(e),
          T0,
          JSON.stringify({ wallMs: T0, bootId: 'boot1', monoMs: 1000, synced: true }),
        ],
      );
    }
    await pool.query(
      `INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen) VALUES ($1, $2, $2)
         ON CONFLICT (reader_id) DO UPDATE SET contiguous_upto = excluded.contiguous_upto, max_seen = excluded.max_seen`,
      [readerId, upto],
    );
  };
  const outcome = async (pool: PgPool): Promise<Outcome> => ({
    outbox: (await pool.query<{ j: string }>('SELECT event_json AS j FROM outbox ORDER BY id')).rows.map(
      (r) => JSON.parse(r.j) as VisitEvent,
    ),
    anomalies: (
      await pool.query<Outcome['anomalies'][number]>(
        'SELECT idempotency_key AS key, kind, visit_id AS "visitId", staff_ref AS "staffRef" FROM anomalies ORDER BY id',
      )
    ).rows,
    visits: (
      await pool.query<Record<string, unknown>>(
        `SELECT reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms, start_seq,
           ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq
         FROM visits ORDER BY reader_id COLLATE "C", visit_id COLLATE "C"`,
      )
    ).rows,
  });
  const turns = (pool: PgPool, chunk?: number) =>
    new TxVisitTurns({
      store: new PgVisitStore(pool),
      clock: new FakeClock(T0 + 60 * MIN),
      logger: silentLogger(),
      chunk,
    });

  it('one turn over both readers gives what the SQLite engine gives', async () => {
    const pool = openPgPool({ url: await pgc.createDatabase(), max: 2 });
    try {
      await seed(pool);
      for (const b of scenario()) await store(pool, b.readerId, b.events, b.events.length);
      const kinds: string[] = [];
      const t = new TxVisitTurns({
        store: new PgVisitStore(pool),
        clock: new FakeClock(T0 + 60 * MIN),
        logger: silentLogger(),
        onAnomalies: (k) => kinds.push(...k),
      });
      expect(await t.process(['r-a', 'r-b'])).toBe(13);
      expect(await t.process(['r-a', 'r-b'])).toBe(0);
      const got = await outcome(pool);
      // the scenario shows what it is meant to show
      expect(new Set(reference.anomalies.map((a) => a.kind))).toEqual(
        new Set(['concurrent-visit', 'unknown-card', 'missing-stop', 'stop-without-start', 'revoked-card']),
      );
      expect(reference.visits.find((v) => v.visit_id === 'va3')?.time_quality).toBe('corrected');
      expect(got).toEqual(reference);
      expect(kinds.sort()).toEqual(reference.anomalies.map((a) => a.kind).sort());
    } finally {
      await pool.end();
    }
  });

  it('an operator closes an open visit: the same close as the SQLite engine; again 409, unknown 404', async () => {
    const req = { visitId: 'vb3', actor: 'operator', reason: 'forgot to tap out' };
    const expected = await onSqlite(false, req);
    const pool = openPgPool({ url: await pgc.createDatabase(), max: 2 });
    try {
      await seed(pool);
      for (const b of scenario()) await store(pool, b.readerId, b.events, b.events.length);
      const kinds: string[] = [];
      const t = new TxVisitTurns({
        store: new PgVisitStore(pool),
        clock: new FakeClock(T0 + 60 * MIN),
        logger: silentLogger(),
        onAnomalies: (k) => kinds.push(...k),
      });
      await t.process(['r-a', 'r-b']);
      kinds.length = 0;
      const r = await t.closeVisit(req);
      expect(r.ok && r.visit.endReason).toBe('manual');
      expect(kinds).toEqual(['manual-close']);
      expect(await t.closeVisit(req)).toEqual({ ok: false, status: 409, error: 'visit is already closed' });
      expect(await t.closeVisit({ ...req, visitId: 'nope' })).toEqual({
        ok: false,
        status: 404,
        error: 'no such visit',
      });
      expect(await outcome(pool)).toEqual(expected);
      expect(expected.outbox.map((e) => e.idempotencyKey)).toContain('vt1:manual:vb3');
    } finally {
      await pool.end();
    }
  });

  it('three instances draining the same readers at once, in chunks of 2 as taps arrive: the same outcome, every event once', async () => {
    const url = await pgc.createDatabase();
    const pools = [0, 1, 2].map(() => openPgPool({ url, max: 2 }));
    try {
      await seed(pools[0] as PgPool);
      const engines = pools.map((p) => turns(p, 2));
      const batches = scenario();
      // taps arrive a few at a time; every instance is told after each arrival (as each gets a share)
      for (let upto = 1; upto <= 7; upto++) {
        for (const b of batches) {
          const n = Math.min(upto, b.events.length);
          await store(pools[0] as PgPool, b.readerId, b.events.slice(0, n), n);
        }
        await Promise.all(engines.map((e) => e.process(['r-b', 'r-a'])));
      }
      for (let i = 0; i < 10; i++) {
        if ((await Promise.all(engines.map((e) => e.process(['r-a', 'r-b'])))).every((n) => n === 0)) break;
      }
      const got = await outcome(pools[0] as PgPool);
      const keys = got.outbox.map((e) => e.idempotencyKey);
      expect(new Set(keys).size).toBe(keys.length);
      // the turns serialise on the readers' locks, so the outcome is the SQLite engine's for the same
      // arrival order; in that order the overlap is flagged at va1's end (one flag either way)
      expect(got).toEqual(stepwise);
      expect(got.anomalies.filter((a) => a.kind === 'concurrent-visit').map((a) => a.key)).toEqual([
        'vt1:r-a:2:anomaly:concurrent-visit',
      ]);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('a card assigned on another instance while a turn reads it: the turn waits for the card lock and sees the staff member', async () => {
    const pool = openPgPool({ url: await pgc.createDatabase(), max: 3 });
    const other = await pool.connect();
    try {
      await seed(pool);
      const t = tap('r-a', 1, { card: card(9), decision: 'start', visitId: 'v9' });
      await store(pool, 'r-a', [t], 1);
      // another instance assigns card 9 (as store/postgres/cards.ts does: the card's lock first), not committed yet
      await other.query('BEGIN');
      await other.query(`SELECT pg_advisory_xact_lock(${LOCK_NS.card}, hashtext($1))`, [card(9)]);
      await other.query(
        `INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES ($1, 's9', NULL, 0)`,
        [card(9)],
      );
      const turn = turns(pool).process(['r-a']);
      // wait until the turn blocks on that lock (bounded poll of pg_locks), then commit the assignment
      let waiting = 0;
      for (let i = 0; i < 400 && waiting === 0; i++) {
        waiting = Number(
          (
            await other.query<{ n: string }>(
              `SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = $1`,
              [LOCK_NS.card],
            )
          ).rows[0]?.n,
        );
        if (waiting === 0) await new Promise((r) => setTimeout(r, 25));
      }
      expect(waiting).toBe(1);
      await other.query('COMMIT');
      expect(await turn).toBe(1);
      const v = (
        await pool.query<{ staff_ref: string | null }>("SELECT staff_ref FROM visits WHERE visit_id = 'v9'")
      ).rows;
      expect(v).toEqual([{ staff_ref: 's9' }]);
      expect((await pool.query("SELECT 1 FROM anomalies WHERE kind = 'unknown-card'")).rowCount).toBe(0);
    } finally {
      other.release();
      await pool.end();
    }
  });
});

describe('visit pipeline on PostgreSQL, three instances', () => {
  let pgc: PgCluster;
  beforeAll(async () => {
    pgc = await startPgCluster();
  });
  afterAll(async () => {
    await pgc?.destroy();
  });

  it('taps announced to a different instance each time: every visit event reaches the backend exactly once', async () => {
    const expected = await onSqlite(true);
    const secret = 'pg-pipeline-secret-0123456789';
    const backend = await startFakeBackend({ secret });
    const url = await pgc.createDatabase();
    const pools = [0, 1, 2].map(() => openPgPool({ url, max: 3 }));
    const pipelines = pools.map((pool, i) =>
      createTurnVisitPipeline({
        store: new PgVisitStore(pool),
        outbox: new PgOutbox({ pool, holder: `gw-${i}` }),
        clock: systemClock,
        random: () => 0.5,
        logger: silentLogger(),
        metrics: new MetricsRegistry(),
        backend: {
          url: backend.url,
          secret,
          timeoutMs: 10_000,
          batchMax: 5,
          backoff: { baseMs: 20, capMs: 200 },
        },
        idlePollMs: 50,
        chunk: 2,
      }),
    );
    try {
      const p0 = pools[0] as PgPool;
      await migrate(p0, postgresMigrations);
      for (const [r, home] of [
        ['r-a', 'home-a'],
        ['r-b', 'home-b'],
      ] as const) {
        await p0.query(
          `INSERT INTO readers (reader_id, password_hash, client_ref, label, revoked_at, created_at) VALUES ($1, 'test', $2, NULL, NULL, 0)`,
          [r, home],
        );
        await p0.query(
          'INSERT INTO reader_client_history (reader_id, client_ref, from_ms) VALUES ($1, $2, 0)',
          [r, home],
        );
      }
      await p0.query(
        `INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES ($1, 's1', NULL, 0), ($2, 's3', $3, 0)`,
        [card(1), card(3), T0],
      );
      await Promise.all(pipelines.map((p) => p.start()));
      let k = 0;
      for (let upto = 1; upto <= 7; upto++) {
        for (const b of scenario()) {
          const n = Math.min(upto, b.events.length);
          for (const e of b.events.slice(0, n)) {
            await p0.query(
              `INSERT INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json) VALUES ($1, $2, $3, $4, '{}')
                 ON CONFLICT DO NOTHING`,
              [b.readerId, e.seq, JSON.stringify(e), T0],
            );
          }
          await p0.query(
            `INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen) VALUES ($1, $2, $2)
               ON CONFLICT (reader_id) DO UPDATE SET contiguous_upto = excluded.contiguous_upto, max_seen = excluded.max_seen`,
            [b.readerId, n],
          );
          // the shared subscription hands each batch to one instance, a different one each time
          pipelines[k++ % 3]?.onCommitted([b.readerId]);
        }
        await Promise.all(pipelines.map((p) => p.idle()));
      }
      for (let i = 0; i < 400 && backend.received().length < expected.outbox.length; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const got = backend
        .received()
        .map((e) => e.idempotencyKey)
        .sort();
      expect(got).toEqual(expected.outbox.map((e) => e.idempotencyKey).sort());
      expect(backend.duplicates).toBe(0);
      expect(backend.conflicts).toBe(0);
      // The backend has the last event before its forwarder marks the row delivered (a separate commit).
      let pending = await p0.query(`SELECT 1 FROM outbox WHERE state <> 'delivered'`);
      for (let i = 0; i < 200 && pending.rowCount !== 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        pending = await p0.query(`SELECT 1 FROM outbox WHERE state <> 'delivered'`);
      }
      expect(pending.rowCount).toBe(0);
    } finally {
      await Promise.all(pipelines.map((p) => p.stop()));
      await Promise.all(pools.map((p) => p.end()));
      await backend.close();
    }
  });
  it("a reader committed by an instance that died before its turn is caught by another instance's sweep", async () => {
    const url = await pgc.createDatabase();
    const pool = openPgPool({ url, max: 3 });
    const pipeline = createTurnVisitPipeline({
      store: new PgVisitStore(pool),
      outbox: new PgOutbox({ pool, holder: 'gw-sweep' }),
      clock: systemClock,
      random: () => 0.5,
      logger: silentLogger(),
      metrics: new MetricsRegistry(),
      catchUpMs: 50,
    });
    try {
      await migrate(pool, postgresMigrations);
      await pipeline.start();
      // another instance stored r-a's taps (its ingest committed) and was killed before its visits turn:
      // nobody calls onCommitted here
      const [a] = scenario();
      for (const e of a?.events.slice(0, 2) ?? []) {
        await pool.query(
          `INSERT INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json) VALUES ($1, $2, $3, $4, '{}')`,
          ['r-a', e.seq, JSON.stringify(e), T0],
        );
      }
      await pool.query(`INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen) VALUES ('r-a', 2, 2)`);
      let cursor = 0;
      for (let i = 0; i < 200 && cursor < 2; i++) {
        await new Promise((r) => setTimeout(r, 25));
        cursor =
          (
            await pool.query<{ v: number }>(
              `SELECT processed_upto AS v FROM visit_cursor WHERE reader_id = 'r-a'`,
            )
          ).rows[0]?.v ?? 0;
      }
      expect(cursor).toBe(2);
      const visits = await pool.query(`SELECT visit_id FROM visits WHERE reader_id = 'r-a'`);
      expect(visits.rows).toEqual([{ visit_id: 'va1' }]);
    } finally {
      await pipeline.stop();
      await pool.end();
    }
  });
});
