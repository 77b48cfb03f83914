import { afterEach, describe, expect, it } from 'vitest';
import { T0, addReader, card, createEnv, ingestBatch, ofType, outboxEvents, tap } from './helpers.js';
import type { TestEnv } from './helpers.js';

/** A Pi without RTC boots with a stale clock (fake-hwclock: the last shutdown time). */
const STALE_WALL = Date.UTC(2026, 0, 1);

let env: TestEnv;
afterEach(async () => {
  await env.close();
});

function setup(): TestEnv {
  env = createEnv();
  addReader(env.db, 'r1', 'client-1');
  env.pipeline.registry.addCard({ cardRef: card(1), staffRef: 'staff-anna' });
  return env;
}

const unsynced = (bootId: string, monoMs: number) => ({
  bootId,
  monoMs,
  wallMs: STALE_WALL + monoMs,
  synced: false,
});

describe('clock correction', () => {
  it("corrects unsynced taps from the batch's sentAt and the gateway receive time in the same boot", () => {
    const { db, pipeline } = setup();
    const receivedAtMs = T0 + 3_600_000;
    ingestBatch(db, {
      readerId: 'r1',
      sentAt: unsynced('b2', 900_000),
      receivedAtMs,
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v1', time: unsynced('b2', 300_000) }),
        tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'v1', time: unsynced('b2', 600_000) }),
      ],
    });
    pipeline.processNow();
    const out = outboxEvents(db);
    const offset = receivedAtMs - 900_000;
    expect(ofType(out, 'visit.started')[0]).toMatchObject({
      timeQuality: 'corrected',
      anomalies: [],
      startedAt: new Date(offset + 300_000).toISOString(),
    });
    expect(ofType(out, 'visit.ended')[0]).toMatchObject({ timeQuality: 'corrected', durationMs: 300_000 });
    expect(ofType(out, 'visit.anomaly')).toEqual([]);
  });

  it('uses an exact offset from a synced sentAt, and the smallest receive-time offset otherwise', () => {
    const { db, pipeline } = setup();
    // Two batches of boot b3 received with different transit delays: the faster one (smaller offset) wins.
    ingestBatch(db, {
      readerId: 'r1',
      sentAt: unsynced('b3', 10_000),
      receivedAtMs: T0 + 50_000, // 40 s in transit
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v1', time: unsynced('b3', 5_000) }),
      ],
    });
    ingestBatch(db, {
      readerId: 'r1',
      sentAt: unsynced('b3', 20_000),
      receivedAtMs: T0 + 21_000, // 1 s in transit
      events: [tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'v1', time: unsynced('b3', 6_000) })],
    });
    // Boot b4 synced at send time: exact.
    ingestBatch(db, {
      readerId: 'r1',
      sentAt: { bootId: 'b4', monoMs: 7_000, wallMs: T0 + 100_000, synced: true },
      receivedAtMs: T0 + 999_000,
      events: [
        tap('r1', 3, { card: card(1), decision: 'start', visitId: 'v2', time: unsynced('b4', 2_000) }),
      ],
    });
    pipeline.processNow();
    const started = ofType(outboxEvents(db), 'visit.started');
    // Both b3 taps were processed after both batches were stored, so the better anchor applies.
    expect(started[0]?.startedAt).toBe(new Date(T0 + 1_000 + 5_000).toISOString());
    expect(started[1]?.startedAt).toBe(new Date(T0 + 100_000 - 7_000 + 2_000).toISOString());
    expect(started.map((s) => s.timeQuality)).toEqual(['corrected', 'corrected']);
  });

  it('flags taps of an earlier boot that never gave a reference (uncorrected-time), keeping the device time', () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      sentAt: unsynced('b-now', 50_000), // a later boot: no reference for b-old
      receivedAtMs: T0,
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v1', time: unsynced('b-old', 1_000) }),
        tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'v1', time: unsynced('b-now', 2_000) }),
      ],
    });
    pipeline.processNow();
    const out = outboxEvents(db);
    expect(ofType(out, 'visit.started')[0]).toMatchObject({
      timeQuality: 'uncorrected',
      anomalies: ['uncorrected-time'],
      startedAt: new Date(STALE_WALL + 1_000).toISOString(),
    });
    // The visit as a whole stays flagged even though its end could be corrected.
    expect(ofType(out, 'visit.ended')[0]).toMatchObject({
      timeQuality: 'uncorrected',
      anomalies: ['uncorrected-time'],
    });
    expect(ofType(out, 'visit.anomaly').map((a) => a.idempotencyKey)).toEqual([
      'vt1:r1:1:anomaly:uncorrected-time',
    ]);
  });

  it('uses a synced event of the same boot that arrived out of order, above a sequence gap', () => {
    const { db, pipeline } = setup();
    // seq 3 (the clock synced later in boot b1) arrives first; 1..2 arrive later, in another boot's batch.
    ingestBatch(db, {
      readerId: 'r1',
      sentAt: unsynced('b2', 1_000),
      receivedAtMs: T0 + 86_400_000,
      events: [
        tap('r1', 3, {
          card: card(1),
          decision: 'start',
          visitId: 'v2',
          time: { bootId: 'b1', monoMs: 40_000, wallMs: T0 + 40_000, synced: true },
        }),
      ],
    });
    expect(pipeline.processNow()).toBe(0);
    ingestBatch(db, {
      readerId: 'r1',
      sentAt: unsynced('b2', 2_000),
      receivedAtMs: T0 + 86_401_000,
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v1', time: unsynced('b1', 10_000) }),
        tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'v1', time: unsynced('b1', 20_000) }),
      ],
    });
    expect(pipeline.processNow()).toBe(3);
    const out = outboxEvents(db);
    expect(ofType(out, 'visit.started').map((s) => [s.startedAt, s.timeQuality])).toEqual([
      [new Date(T0 + 10_000).toISOString(), 'corrected'],
      [new Date(T0 + 40_000).toISOString(), 'synced'],
    ]);
    expect(ofType(out, 'visit.anomaly')).toEqual([]);
  });
});
