import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventTime, TapEvent, VisitEvent } from '../../protocol/index.js';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgVisitStore } from '../../gateway/src/store/postgres/visits.js';
import { TxVisitTurns } from '../../gateway/src/visits/tx-turns.js';
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
 * Time anchors on PostgreSQL: the visits turn scans each reader's own rows (VisitTx.anchorRows) with the
 * learning rules the SQLite engine's global scan uses (visits/time.ts learnAnchors). From the same stored
 * batches both engines learn the same anchors and measured clock offsets, and so give the same visits:
 * a "synced" clock 60 s behind widens the concurrent-visit check, one 90 s ahead is corrected, an unsynced
 * boot is placed by its batches' sentAt (the smallest estimate wins, an exact one replaces it).
 */

const MIN = 60_000;

interface Batch {
  readerId: string;
  events: TapEvent[];
  sentAt: EventTime;
  receivedAtMs: number;
}
/** Batches arriving together, then one processing turn; a scenario is a list of these steps. */
type Step = Batch[];

interface Outcome {
  outbox: VisitEvent[];
  visits: Array<Record<string, unknown>>;
  anchors: Array<[string, string, number, number]>;
  offsets: Array<[string, number]>;
}

/** A synced reader whose clock reads `skewMs` off the gateway's: its batch is sent at true time `trueMs`. */
const sentAt = (trueMs: number, skewMs: number, synced = true, bootId = 'boot1'): EventTime => ({
  wallMs: trueMs + skewMs,
  bootId,
  monoMs: trueMs - T0 + 1000,
  synced,
});
const at = (trueMs: number, skewMs: number, synced = true) => ({
  wallMs: trueMs + skewMs,
  monoMs: trueMs - T0 + 1000,
  synced,
});

/** Anna at home 1 from 08:00 to 08:30 (r1, a good clock), then at home 2 from `startB` (r2, `skewB` off). */
const twoHomes = (startB: number, skewB: number): Step[] => [
  [
    {
      readerId: 'r1',
      sentAt: sentAt(T0 + 30 * MIN + 1000, 0),
      receivedAtMs: T0 + 30 * MIN + 1500,
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'a1', time: at(T0, 0) }),
        tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'a1', time: at(T0 + 30 * MIN, 0) }),
      ],
    },
    {
      readerId: 'r2',
      sentAt: sentAt(startB + 1000, skewB),
      receivedAtMs: startB + 1500, // half a second in transit
      events: [tap('r2', 1, { card: card(1), decision: 'start', visitId: 'b1', time: at(startB, skewB) })],
    },
  ],
];

/** An unsynced reader (wall clock at 1970): its boot is placed by its batches' sentAt, then fixed exactly. */
const unsynced = (): Step[] => {
  const wrong = Date.UTC(2001, 0, 1) - T0; // the wall clock of a device without RTC, years behind
  const t1 = T0 + 10 * MIN;
  const t2 = T0 + 40 * MIN;
  return [
    [
      {
        readerId: 'r3',
        sentAt: sentAt(t1 + 2000, wrong, false),
        receivedAtMs: t1 + 2900, // 900 ms transit
        events: [
          tap('r3', 1, { card: card(1), decision: 'start', visitId: 'c1', time: at(t1, wrong, false) }),
        ],
      },
    ],
    [
      {
        readerId: 'r3',
        sentAt: sentAt(t1 + 3000, wrong, false),
        receivedAtMs: t1 + 3200, // 200 ms: a better estimate
        events: [
          tap('r3', 2, {
            card: card(1),
            decision: 'stop',
            visitId: 'c1',
            time: at(t1 + 2500, wrong, false),
          }),
        ],
      },
    ],
    [
      {
        readerId: 'r3',
        // synced later in the same boot: the exact offset replaces the estimate
        sentAt: sentAt(t2 + 1000, 0, true),
        receivedAtMs: t2 + 1300,
        events: [
          tap('r3', 3, {
            card: card(1),
            decision: 'start',
            visitId: 'c2',
            time: at(t2 - 5 * MIN, wrong, false),
          }),
        ],
      },
    ],
  ];
};

async function onSqlite(steps: Step[]): Promise<Outcome> {
  const env = createEnv({ fakeClock: new FakeClock(T0 + 60 * MIN) });
  try {
    for (const r of ['r1', 'r2', 'r3']) addReader(env.db, r, `home-${r}`);
    env.pipeline.registry.addCard({ cardRef: card(1), staffRef: 'staff-anna' });
    for (const step of steps) {
      for (const b of step) ingestBatch(env.db, b);
      env.pipeline.processNow();
    }
    return {
      outbox: outboxEvents(env.db),
      visits: env.db
        .prepare(
          `SELECT reader_id, visit_id, started_at_ms, ended_at_ms, time_quality, anomalies_json
             FROM visits ORDER BY reader_id, visit_id`,
        )
        .all() as Outcome['visits'],
      anchors: (
        env.db
          .prepare(
            'SELECT reader_id, boot_id, offset_ms, exact FROM time_anchors ORDER BY reader_id, boot_id',
          )
          .all() as Array<{ reader_id: string; boot_id: string; offset_ms: number; exact: number }>
      ).map((a) => [a.reader_id, a.boot_id, a.offset_ms, a.exact]),
      offsets: (
        env.db
          .prepare("SELECT key, value FROM visit_meta WHERE key LIKE 'synced_offset:%' ORDER BY key")
          .all() as Array<{ key: string; value: number }>
      ).map((o) => [o.key, o.value]),
    };
  } finally {
    await env.close();
  }
}

async function onPostgres(pool: PgPool, steps: Step[]): Promise<Outcome> {
  await migrate(pool, postgresMigrations);
  for (const r of ['r1', 'r2', 'r3']) {
    await pool.query(
      `INSERT INTO readers (reader_id, password_hash, client_ref, label, revoked_at, created_at)
         VALUES ($1, 'test', $2, NULL, NULL, 0)`,
      [r, `home-${r}`],
    );
    await pool.query(
      'INSERT INTO reader_client_history (reader_id, client_ref, from_ms) VALUES ($1, $2, 0)',
      [r, `home-${r}`],
    );
  }
  await pool.query(
    `INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES ($1, 'staff-anna', NULL, 0)`,
    [card(1)],
  );
  const turns = new TxVisitTurns({
    store: new PgVisitStore(pool),
    clock: new FakeClock(T0 + 60 * MIN),
    logger: silentLogger(),
  });
  for (const step of steps) {
    // stored as the ingest stores a batch: its rows with the batch's sentAt and receive time, then the prefix
    for (const b of step) {
      for (const e of b.events) {
        await pool.query(
          `INSERT INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING`,
          [b.readerId, e.seq, JSON.stringify(e), b.receivedAtMs, JSON.stringify(b.sentAt)],
        );
      }
      const upto = Math.max(...b.events.map((e) => e.seq));
      await pool.query(
        `INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen) VALUES ($1, $2, $2)
           ON CONFLICT (reader_id) DO UPDATE SET contiguous_upto = excluded.contiguous_upto, max_seen = excluded.max_seen`,
        [b.readerId, upto],
      );
    }
    await turns.process(step.map((b) => b.readerId));
  }
  return {
    outbox: (await pool.query<{ j: string }>('SELECT event_json AS j FROM outbox ORDER BY id')).rows.map(
      (r) => JSON.parse(r.j) as VisitEvent,
    ),
    visits: (
      await pool.query<Record<string, unknown>>(
        `SELECT reader_id, visit_id, started_at_ms, ended_at_ms, time_quality, anomalies_json
           FROM visits ORDER BY reader_id COLLATE "C", visit_id COLLATE "C"`,
      )
    ).rows,
    anchors: (
      await pool.query<{ reader_id: string; boot_id: string; offset_ms: number; exact: number }>(
        'SELECT reader_id, boot_id, offset_ms, exact FROM time_anchors ORDER BY reader_id COLLATE "C", boot_id COLLATE "C"',
      )
    ).rows.map((a) => [a.reader_id, a.boot_id, a.offset_ms, a.exact]),
    offsets: (
      await pool.query<{ key: string; value: number }>(
        `SELECT key, value FROM visit_meta WHERE key LIKE 'synced_offset:%' ORDER BY key COLLATE "C"`,
      )
    ).rows.map((o) => [o.key, o.value]),
  };
}

describe('time anchors: PostgreSQL learns what SQLite learns', () => {
  let pgc: PgCluster;
  beforeAll(async () => {
    pgc = await startPgCluster();
  });
  afterAll(async () => {
    await pgc?.destroy();
  });

  const both = async (steps: Step[]) => {
    const pool = openPgPool({ url: await pgc.createDatabase(), max: 2 });
    try {
      return { sqlite: await onSqlite(steps), pg: await onPostgres(pool, steps) };
    } finally {
      await pool.end();
    }
  };
  const anomalies = (o: Outcome) =>
    o.outbox.filter((e) => e.type === 'visit.anomaly').map((e) => `${e.readerId}:${e.anomaly}`);
  const started = (o: Outcome, visitId: string) =>
    o.outbox.find(
      (e): e is Extract<VisitEvent, { type: 'visit.started' }> =>
        e.type === 'visit.started' && e.visitId === visitId,
    );

  it('a "synced" clock 60 s behind, 40 s of travel: its offset is measured on both, no concurrent-visit flag', async () => {
    const { sqlite, pg } = await both(twoHomes(T0 + 30 * MIN + 40_000, -60_000));
    expect(anomalies(sqlite)).toEqual([]);
    expect(started(sqlite, 'b1')?.timeQuality).toBe('synced');
    expect(sqlite.offsets).toEqual([
      ['synced_offset:r1\nboot1', -500],
      ['synced_offset:r2\nboot1', -60_500],
    ]);
    expect(pg).toEqual(sqlite);
  });

  it('a "synced" clock 90 s ahead: corrected by the measured offset on both', async () => {
    const { sqlite, pg } = await both(twoHomes(T0 + 35 * MIN, 90_000));
    const b = started(sqlite, 'b1');
    expect(b?.timeQuality).toBe('corrected');
    expect(Date.parse(b?.startedAt ?? '') - (T0 + 35 * MIN)).toBe(500); // within the batch's transit
    expect(pg).toEqual(sqlite);
  });

  it.each([0, -60_000, 90_000])(
    'a real overlap is flagged on both (home 2 clock %i ms off)',
    async (skew) => {
      const { sqlite, pg } = await both(twoHomes(T0 + 10 * MIN, skew));
      expect(anomalies(sqlite)).toEqual(['r2:concurrent-visit']);
      expect(pg).toEqual(sqlite);
    },
  );

  it('an unsynced boot: placed by the smallest sentAt estimate, then fixed exactly by a synced batch, on both', async () => {
    const { sqlite, pg } = await both(unsynced());
    const t1 = T0 + 10 * MIN;
    // the estimate of the first batch is 900 ms late, the second's 200 ms: visit c1 ends on the better one
    const c1 = sqlite.visits.find((v) => v.visit_id === 'c1');
    expect(c1?.time_quality).toBe('corrected');
    expect(Number(c1?.ended_at_ms) - (t1 + 2500)).toBe(200);
    expect(sqlite.anchors).toEqual([['r3', 'boot1', T0 - 1000, 1]]);
    const c2 = sqlite.visits.find((v) => v.visit_id === 'c2');
    expect(c2?.started_at_ms).toBe(T0 + 35 * MIN);
    expect(pg).toEqual(sqlite);
  });
});
