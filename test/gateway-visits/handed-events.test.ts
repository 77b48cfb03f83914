/**
 * The ingest hands each commit's events to the visits engine in memory (gateway/src/visits/handed.ts,
 * issue 15): the engine takes a chunk from memory only when every seq of it is there, else it reads the
 * stored rows as before. Same visits and outbox either way.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { TapEvent } from '../../protocol/index.js';
import { HandedEvents } from '../../gateway/src/visits/handed.js';
import { addReader, card, createEnv, ingestBatch, outboxEvents, tap, type TestEnv } from './helpers.js';

const envs: TestEnv[] = [];
afterEach(async () => {
  for (const e of envs.splice(0)) await e.close();
});

function setup(): TestEnv {
  const env = createEnv();
  envs.push(env);
  addReader(env.db, 'r1', 'client-1');
  addReader(env.db, 'r2', 'client-2');
  env.pipeline.registry.addCard({ cardRef: card(1), staffRef: 'staff-anna' });
  env.pipeline.registry.addCard({ cardRef: card(2), staffRef: 'staff-bo' });
  return env;
}

/** Lets the pipeline's drain (setImmediate) run until the engine has caught up. */
async function settle(env: TestEnv): Promise<void> {
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setImmediate(r));
    const lag = env.db
      .prepare(
        `SELECT COALESCE(SUM(s.contiguous_upto - COALESCE(c.processed_upto, 0)), 0) FROM reader_seq s
           LEFT JOIN visit_cursor c ON c.reader_id = s.reader_id`,
      )
      .pluck()
      .get() as number;
    if (lag === 0) return;
  }
  throw new Error('visits engine did not catch up');
}

const visitsOf = (env: TestEnv) =>
  env.db
    .prepare(
      'SELECT reader_id, visit_id, state, started_at_ms, ended_at_ms, staff_ref FROM visits ORDER BY 1, 2',
    )
    .all();

describe('events handed to the visits engine in memory', () => {
  it('HandedEvents: a chunk only when every seq is held; conflicting copies and processed seqs dropped', () => {
    const h = new HandedEvents(5);
    const ev = (seq: number) => tap('r1', seq, { card: card(1), decision: 'start', visitId: `v${seq}` });
    h.add('r1', [ev(1), ev(2), ev(4)], []);
    expect(h.take('r1', 0, 2, 10)?.map((e) => e.seq)).toEqual([1, 2]);
    expect(h.take('r1', 0, 4, 10)).toBeNull(); // seq 3 is not held (e.g. held as invalid)
    expect(h.take('r1', 0, 4, 2)?.map((e) => e.seq)).toEqual([1, 2]); // limited to the chunk
    h.add('r1', [ev(3)], [3]); // the store found seq 3 with other content: not handed
    expect(h.take('r1', 2, 4, 10)).toBeNull();
    h.add('r1', [ev(3)], []);
    expect(h.take('r1', 2, 4, 10)?.map((e) => e.seq)).toEqual([3, 4]);
    h.processed('r1', 3);
    expect(h.size).toBe(1);
    expect(h.take('r1', 0, 4, 10)).toBeNull();
    h.add(
      'r2',
      [1, 2, 3, 4, 5].map((s) => tap('r2', s, { card: card(2), decision: 'repeat', visitId: 'x' })),
      [],
    );
    expect(h.size).toBe(5); // bounded: the rest were not kept
    expect(h.take('r2', 0, 5, 10)).toBeNull();
    h.clear();
    expect(h.size).toBe(0);
  });

  it('the engine pairs from memory when the chunk is complete, and from the store when it is not', async () => {
    const mem = setup();
    const read = setup();
    const batches: Array<{ readerId: string; events: TapEvent[] }> = [
      {
        readerId: 'r1',
        events: [
          tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v1' }),
          tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'v1' }),
        ],
      },
      { readerId: 'r2', events: [tap('r2', 1, { card: card(2), decision: 'start', visitId: 'w1' })] },
      // r1 seq 4 arrives before 3: contiguous only after the next batch, which hands seq 3 alone
      { readerId: 'r1', events: [tap('r1', 4, { card: card(1), decision: 'stop', visitId: 'v3' })] },
      {
        readerId: 'r1',
        events: [tap('r1', 3, { card: card(1), decision: 'start', visitId: 'v3' })],
      },
      { readerId: 'r2', events: [tap('r2', 2, { card: card(2), decision: 'stop', visitId: 'w1' })] },
    ];
    await mem.pipeline.start();
    await read.pipeline.start();
    for (const b of batches) {
      for (const env of [mem, read]) ingestBatch(env.db, b);
      mem.pipeline.onCommitted([b.readerId], [{ readerId: b.readerId, events: b.events, conflicts: [] }]);
      read.pipeline.onCommitted([b.readerId]);
      await settle(mem);
      await settle(read);
    }
    expect(outboxEvents(mem.db).map((e) => e.idempotencyKey)).toEqual(
      outboxEvents(read.db).map((e) => e.idempotencyKey),
    );
    expect(outboxEvents(mem.db)).toHaveLength(6);
    expect(visitsOf(mem)).toEqual(visitsOf(read));
  });

  it('what memory holds is what the engine pairs when complete (the stored rows are not read again)', async () => {
    const env = setup();
    await env.pipeline.start();
    const stored = [tap('r1', 1, { card: card(1), decision: 'start', visitId: 'stored' })];
    ingestBatch(env.db, { readerId: 'r1', events: stored });
    // an in-memory copy that differs from the row: taken, because seq 1 is complete in memory
    const handed = [tap('r1', 1, { card: card(1), decision: 'start', visitId: 'handed' })];
    env.pipeline.onCommitted(['r1'], [{ readerId: 'r1', events: handed, conflicts: [] }]);
    await settle(env);
    expect(visitsOf(env)).toMatchObject([{ visit_id: 'handed' }]);
    // marked as a conflict by the store: the row is read instead
    const stored2 = [tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'handed' })];
    ingestBatch(env.db, { readerId: 'r1', events: stored2 });
    const other = [tap('r1', 2, { card: card(1), decision: 'start', visitId: 'other' })];
    env.pipeline.onCommitted(['r1'], [{ readerId: 'r1', events: other, conflicts: [2] }]);
    await settle(env);
    expect(visitsOf(env)).toMatchObject([{ visit_id: 'handed', state: 'closed' }]);
  });
});
