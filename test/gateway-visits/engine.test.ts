import { afterEach, describe, expect, it } from 'vitest';
import { VisitEvent } from '../../protocol/index.js';
import { T0, addReader, card, createEnv, ingestBatch, ofType, outboxEvents, tap } from './helpers.js';
import type { TestEnv } from './helpers.js';

let env: TestEnv;
afterEach(async () => {
  await env.close();
});

function setup(): TestEnv {
  env = createEnv();
  addReader(env.db, 'r1', 'client-1');
  addReader(env.db, 'r2', 'client-2');
  env.pipeline.registry.addCard({ cardRef: card(1), staffRef: 'staff-anna' });
  env.pipeline.registry.addCard({ cardRef: card(2), staffRef: 'staff-bo' });
  return env;
}

describe('visit pairing', () => {
  it('pairs a start and a stop into visit.started then visit.ended, with keys, client, staff and duration', () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v1' }),
        tap('r1', 2, { card: card(1), decision: 'repeat', visitId: 'v1' }),
        tap('r1', 3, { card: card(1), decision: 'stop', visitId: 'v1' }),
      ],
    });
    expect(pipeline.processNow()).toBe(3);
    const out = outboxEvents(db);
    for (const e of out) expect(VisitEvent.safeParse(e).success).toBe(true);
    expect(out.map((e) => e.idempotencyKey)).toEqual(['vt1:r1:1:started', 'vt1:r1:3:ended']);
    const [s, e] = [ofType(out, 'visit.started')[0], ofType(out, 'visit.ended')[0]];
    expect(s).toMatchObject({
      visitId: 'v1',
      clientRef: 'client-1',
      staffRef: 'staff-anna',
      timeQuality: 'synced',
    });
    expect(s?.startedAt).toBe(new Date(T0 + 60_000).toISOString());
    expect(e).toMatchObject({ endReason: 'tap', durationMs: 120_000, anomalies: [], endSeq: 3 });
    expect(db.prepare(`SELECT COUNT(*) FROM visits WHERE state = 'open'`).pluck().get()).toBe(0);
  });

  it('never forwards self-test taps and records nothing for repeats', () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'st1', selftest: true }),
        tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'st1', selftest: true }),
        tap('r1', 3, { card: card(2), decision: 'repeat', visitId: 'vx' }),
      ],
    });
    expect(pipeline.processNow()).toBe(3);
    expect(outboxEvents(db)).toEqual([]);
    expect(db.prepare('SELECT COUNT(*) FROM visits').pluck().get()).toBe(0);
  });

  it('groups double-staffed overlapping visits at one reader under one groupId', () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'va' }),
        tap('r1', 2, { card: card(2), decision: 'start', visitId: 'vb' }),
        tap('r1', 3, { card: card(1), decision: 'stop', visitId: 'va' }),
        tap('r1', 4, { card: card(2), decision: 'stop', visitId: 'vb' }),
        tap('r1', 5, { card: card(1), decision: 'start', visitId: 'vc' }),
      ],
    });
    pipeline.processNow();
    const out = outboxEvents(db);
    const started = ofType(out, 'visit.started');
    const ended = ofType(out, 'visit.ended');
    expect(started.find((e) => e.visitId === 'vb')?.groupId).toBe('va');
    expect(ended.map((e) => [e.visitId, e.groupId])).toEqual([
      ['va', 'va'],
      ['vb', 'va'],
    ]);
    // A later visit alone at the reader is not in the group; double staffing is not an anomaly.
    expect(started.find((e) => e.visitId === 'vc')?.groupId).toBeNull();
    expect(ofType(out, 'visit.anomaly')).toEqual([]);
  });

  it('turns a device auto-close into visit.ended (auto-close, missing-stop); the next tap starts a new visit', () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v1' }),
        tap('r1', 2, {
          card: card(1),
          decision: 'auto-close',
          visitId: 'v1',
          time: { wallMs: T0 + 12 * 3_600_000 },
        }),
        tap('r1', 3, {
          card: card(1),
          decision: 'start',
          visitId: 'v2',
          time: { wallMs: T0 + 20 * 3_600_000 },
        }),
      ],
    });
    pipeline.processNow();
    const out = outboxEvents(db);
    const ended = ofType(out, 'visit.ended');
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({ visitId: 'v1', endReason: 'auto-close', anomalies: ['missing-stop'] });
    expect(ofType(out, 'visit.anomaly').map((a) => [a.anomaly, a.idempotencyKey])).toEqual([
      ['missing-stop', 'vt1:r1:2:anomaly:missing-stop'],
    ]);
    expect(ofType(out, 'visit.started').map((s) => s.visitId)).toEqual(['v1', 'v2']);
    expect(env.metrics.render()).toContain('visittag_visit_anomalies_total{kind="missing-stop"} 1');
  });

  it('flags a stop without a start: visit.ended with startedAt null plus an anomaly', () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      events: [tap('r1', 1, { card: card(1), decision: 'stop', visitId: 'v0' })],
    });
    pipeline.processNow();
    const out = outboxEvents(db);
    expect(ofType(out, 'visit.ended')[0]).toMatchObject({
      visitId: 'v0',
      startedAt: null,
      durationMs: null,
      anomalies: ['stop-without-start'],
      staffRef: 'staff-anna',
    });
    expect(ofType(out, 'visit.anomaly').map((a) => a.anomaly)).toEqual(['stop-without-start']);
  });

  it('flags unknown and revoked cards on visits and on rejected taps, by event time', () => {
    const { db, pipeline, clock } = setup();
    clock.advance(3 * 60_000); // revocation takes effect at T0 + 3 min
    pipeline.registry.revokeCard(card(2));
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 1, { card: card(9), decision: 'start', visitId: 'vu' }), // unknown card
        tap('r1', 2, { card: card(2), decision: 'start', visitId: 'vok' }), // before the revocation: fine
        tap('r1', 3, { card: card(2), decision: 'stop', visitId: 'vok' }),
        tap('r1', 4, { card: card(2), decision: 'start', visitId: 'vrev' }), // after: revoked
        tap('r1', 5, { card: card(7), decision: 'rejected', visitId: null, rejectReason: 'unknown-card' }),
      ],
    });
    pipeline.processNow();
    const out = outboxEvents(db);
    const started = ofType(out, 'visit.started');
    expect(started.find((s) => s.visitId === 'vu')).toMatchObject({
      staffRef: null,
      anomalies: ['unknown-card'],
    });
    expect(started.find((s) => s.visitId === 'vok')?.anomalies).toEqual([]);
    expect(started.find((s) => s.visitId === 'vrev')).toMatchObject({
      staffRef: 'staff-bo',
      anomalies: ['revoked-card'],
    });
    const anomalies = ofType(out, 'visit.anomaly').map((a) => [a.idempotencyKey, a.visitId]);
    expect(anomalies).toEqual([
      ['vt1:r1:1:anomaly:unknown-card', 'vu'],
      ['vt1:r1:4:anomaly:revoked-card', 'vrev'],
      ['vt1:r1:5:anomaly:unknown-card', null],
    ]);
    expect(db.prepare('SELECT COUNT(*) FROM visits').pluck().get()).toBe(3);
  });

  it('flags the same staff member open at two homes at once (also with a second card), at the end of the first visit while its reader has not reported since', () => {
    const { db, pipeline } = setup();
    pipeline.registry.addCard({ cardRef: card(3), staffRef: 'staff-anna' }); // Anna's spare card
    ingestBatch(db, {
      readerId: 'r1',
      events: [tap('r1', 1, { card: card(1), decision: 'start', visitId: 'home1' })],
    });
    ingestBatch(db, {
      readerId: 'r2',
      events: [
        tap('r2', 1, {
          card: card(3),
          decision: 'start',
          visitId: 'home2',
          time: { wallMs: T0 + 5 * 60_000 },
        }),
        tap('r2', 2, { card: card(2), decision: 'start', visitId: 'bo', time: { wallMs: T0 + 6 * 60_000 } }),
      ],
    });
    pipeline.processNow();
    // r1 has said nothing since 08:05: its stop may still be on its way, so no verdict yet.
    expect(ofType(outboxEvents(db), 'visit.anomaly')).toEqual([]);
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 2, {
          card: card(1),
          decision: 'stop',
          visitId: 'home1',
          time: { wallMs: T0 + 30 * 60_000 },
        }),
      ],
    });
    pipeline.processNow();
    const out = outboxEvents(db);
    expect(ofType(out, 'visit.started').every((s) => s.anomalies.length === 0)).toBe(true);
    // The stop says home 1 was open until 08:30: the overlap is certain, flagged once, on home 1's end.
    expect(ofType(out, 'visit.ended').find((s) => s.visitId === 'home1')?.anomalies).toEqual([
      'concurrent-visit',
    ]);
    const a = ofType(out, 'visit.anomaly');
    expect(a).toHaveLength(1);
    expect(a[0]).toMatchObject({ anomaly: 'concurrent-visit', readerId: 'r1', visitId: 'home1' });
  });

  it("flags at the start when the other home's reader has reported since (its visit is known to be open)", () => {
    const { db, pipeline } = setup();
    pipeline.registry.addCard({ cardRef: card(3), staffRef: 'staff-anna' });
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'home1' }),
        // Bo joins at home 1 at 08:10: r1 has reported from after 08:05.
        tap('r1', 2, {
          card: card(2),
          decision: 'start',
          visitId: 'bo1',
          time: { wallMs: T0 + 10 * 60_000 },
        }),
      ],
    });
    pipeline.processNow();
    ingestBatch(db, {
      readerId: 'r2',
      events: [
        tap('r2', 1, {
          card: card(3),
          decision: 'start',
          visitId: 'home2',
          time: { wallMs: T0 + 5 * 60_000 },
        }),
      ],
    });
    pipeline.processNow();
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 3, {
          card: card(1),
          decision: 'stop',
          visitId: 'home1',
          time: { wallMs: T0 + 30 * 60_000 },
        }),
      ],
    });
    pipeline.processNow();
    const out = outboxEvents(db);
    expect(ofType(out, 'visit.started').find((s) => s.visitId === 'home2')?.anomalies).toEqual([
      'concurrent-visit',
    ]);
    // The other home's visit carries the flag on its end; the anomaly is sent once.
    expect(ofType(out, 'visit.ended').find((s) => s.visitId === 'home1')?.anomalies).toEqual([
      'concurrent-visit',
    ]);
    const a = ofType(out, 'visit.anomaly');
    expect(a).toHaveLength(1);
    expect(a[0]).toMatchObject({ anomaly: 'concurrent-visit', readerId: 'r2', visitId: 'home2' });
  });

  it('does not flag a worker whose stop at the first home reaches the gateway after the next start (late delivery)', () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      events: [tap('r1', 1, { card: card(1), decision: 'start', visitId: 'home1' })],
    });
    pipeline.processNow();
    // Anna left home 1 at 08:30 (r1 offline, the stop waits in its journal) and starts at home 2 at 08:34.
    ingestBatch(db, {
      readerId: 'r2',
      events: [
        tap('r2', 1, {
          card: card(1),
          decision: 'start',
          visitId: 'home2',
          time: { wallMs: T0 + 34 * 60_000 },
        }),
      ],
    });
    pipeline.processNow();
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 2, {
          card: card(1),
          decision: 'stop',
          visitId: 'home1',
          time: { wallMs: T0 + 30 * 60_000 },
        }),
      ],
    });
    pipeline.processNow();
    const out = outboxEvents(db);
    expect(ofType(out, 'visit.anomaly')).toEqual([]);
    expect(
      [...ofType(out, 'visit.started'), ...ofType(out, 'visit.ended')].every((e) => e.anomalies.length === 0),
    ).toBe(true);
  });

  it('flags the overlap on the end when the other home was processed first (this reader was offline)', () => {
    const { db, pipeline } = setup();
    // r2's visit (T0+5..T0+8 min) is processed first; r1 (offline) later delivers T0+1..T0+20 min.
    ingestBatch(db, {
      readerId: 'r2',
      events: [
        tap('r2', 1, {
          card: card(1),
          decision: 'start',
          visitId: 'late-home',
          time: { wallMs: T0 + 5 * 60_000 },
        }),
        tap('r2', 2, {
          card: card(1),
          decision: 'stop',
          visitId: 'late-home',
          time: { wallMs: T0 + 8 * 60_000 },
        }),
      ],
    });
    pipeline.processNow();
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'offline-home' }),
        tap('r1', 2, {
          card: card(1),
          decision: 'stop',
          visitId: 'offline-home',
          time: { wallMs: T0 + 20 * 60_000 },
        }),
      ],
    });
    pipeline.processNow();
    const out = outboxEvents(db);
    expect(ofType(out, 'visit.started').every((s) => s.anomalies.length === 0)).toBe(true);
    expect(ofType(out, 'visit.ended').find((e) => e.visitId === 'offline-home')?.anomalies).toEqual([
      'concurrent-visit',
    ]);
    expect(ofType(out, 'visit.anomaly').map((a) => a.idempotencyKey)).toEqual([
      'vt1:r1:2:anomaly:concurrent-visit',
    ]);
  });

  it('closes a visit left open when the device starts a new one for the same card (device lost its state)', () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'old' }),
        tap('r1', 2, { card: card(1), decision: 'start', visitId: 'new' }),
      ],
    });
    pipeline.processNow();
    const out = outboxEvents(db);
    expect(out.map((e) => e.idempotencyKey)).toEqual([
      'vt1:r1:1:started',
      'vt1:r1:2:ended',
      'vt1:r1:2:anomaly:missing-stop',
      'vt1:r1:2:started',
    ]);
    expect(ofType(out, 'visit.ended')[0]).toMatchObject({
      visitId: 'old',
      endReason: 'auto-close',
      anomalies: ['missing-stop'],
    });
    expect(ofType(out, 'visit.started')[1]).toMatchObject({ visitId: 'new', groupId: null });
  });

  it('gives no concurrency verdict on an uncorrected time', () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      events: [tap('r1', 1, { card: card(1), decision: 'start', visitId: 'h1' })],
    });
    const stale = { bootId: 'old-boot', monoMs: 5_000, wallMs: T0 + 5 * 60_000, synced: false };
    ingestBatch(db, {
      readerId: 'r2',
      sentAt: { bootId: 'new-boot', monoMs: 1_000, wallMs: T0, synced: false },
      events: [tap('r2', 1, { card: card(1), decision: 'start', visitId: 'h2', time: stale })],
    });
    pipeline.processNow();
    const h2 = ofType(outboxEvents(db), 'visit.started').find((s) => s.visitId === 'h2');
    expect(h2?.anomalies).toEqual(['uncorrected-time']);
  });

  it('does not flag a visit at a second home that starts after the first one ended', () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'h1' }),
        tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'h1' }),
      ],
    });
    ingestBatch(db, {
      readerId: 'r2',
      events: [
        tap('r2', 1, { card: card(1), decision: 'start', visitId: 'h2', time: { wallMs: T0 + 9 * 60_000 } }),
      ],
    });
    pipeline.processNow();
    expect(ofType(outboxEvents(env.db), 'visit.anomaly')).toEqual([]);
  });

  it('attributes visits before and after a reader move to the right client', () => {
    const { db, pipeline } = setup();
    addReader(db, 'r1', 'client-9', T0 + 10 * 60_000); // moved at T0 + 10 min
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 1, { card: card(1), decision: 'start', visitId: 'before' }),
        tap('r1', 20, { card: card(1), decision: 'start', visitId: 'after' }),
      ].map((e, i) => ({ ...e, seq: i + 1, eventId: `e${i}` })),
    });
    pipeline.processNow();
    const started = ofType(outboxEvents(db), 'visit.started');
    expect(started.map((s) => [s.visitId, s.clientRef])).toEqual([
      ['before', 'client-1'],
      ['after', 'client-9'],
    ]);
  });

  it('skips a stored event that does not validate and goes on with the next ones', () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      events: [tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v1' })],
    });
    db.prepare(`UPDATE events SET event_json = '{"bad":true}' WHERE reader_id = 'r1' AND seq = 1`).run();
    ingestBatch(db, {
      readerId: 'r1',
      events: [tap('r1', 2, { card: card(2), decision: 'start', visitId: 'v2' })],
    });
    expect(pipeline.processNow()).toBe(2);
    expect(outboxEvents(db).map((e) => e.idempotencyKey)).toEqual(['vt1:r1:2:started']);
    expect(env.metrics.render()).toContain('visittag_visit_events_skipped_total{reason="invalid-event"} 1');
  });
  it('skips only the event whose rule throws (corrupt visit row), and processes the rest of the chunk', () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      events: [tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v1' })],
    });
    pipeline.processNow();
    db.prepare(`UPDATE visits SET anomalies_json = 'not json' WHERE visit_id = 'v1'`).run();
    ingestBatch(db, {
      readerId: 'r1',
      events: [
        tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'v1' }), // reading v1 throws
        tap('r1', 3, { card: card(2), decision: 'stop', visitId: 'v2' }),
      ],
    });
    expect(pipeline.processNow()).toBe(2);
    expect(outboxEvents(db).map((e) => e.idempotencyKey)).toEqual([
      'vt1:r1:1:started',
      'vt1:r1:3:ended',
      'vt1:r1:3:anomaly:stop-without-start',
    ]);
    expect(env.metrics.render()).toContain('visittag_visit_events_skipped_total{reason="handler-error"} 1');
    expect(pipeline.processNow()).toBe(0); // the cursor moved past it
  });
});

describe('redelivery and out-of-order arrival', () => {
  it('processes only the contiguous prefix; redelivered and overlapping batches create no duplicates', () => {
    const { db, pipeline } = setup();
    const evs = [
      tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v1' }),
      tap('r1', 2, { card: card(2), decision: 'start', visitId: 'v2' }),
      tap('r1', 3, { card: card(1), decision: 'stop', visitId: 'v1' }),
      tap('r1', 4, { card: card(2), decision: 'stop', visitId: 'v2' }),
      tap('r1', 5, { card: card(1), decision: 'start', visitId: 'v3' }),
    ];
    // The tail arrives first (after a long offline period), with a gap.
    expect(ingestBatch(db, { readerId: 'r1', events: evs.slice(3) })).toBe(0);
    expect(pipeline.processNow()).toBe(0);
    expect(outboxEvents(db)).toEqual([]);
    expect(ingestBatch(db, { readerId: 'r1', events: evs.slice(0, 2) })).toBe(2);
    expect(env.metrics.render()).toContain('visittag_visit_processing_lag_events 2');
    pipeline.processNow();
    expect(outboxEvents(db).map((e) => e.idempotencyKey)).toEqual(['vt1:r1:1:started', 'vt1:r1:2:started']);
    // Overlapping and repeated batches fill the gap.
    ingestBatch(db, { readerId: 'r1', events: evs.slice(1, 4) });
    ingestBatch(db, { readerId: 'r1', events: evs });
    pipeline.processNow();
    pipeline.processNow();
    const keys = outboxEvents(db).map((e) => e.idempotencyKey);
    expect(keys).toEqual([
      'vt1:r1:1:started',
      'vt1:r1:2:started',
      'vt1:r1:3:ended',
      'vt1:r1:4:ended',
      'vt1:r1:5:started',
    ]);
    // Re-processing everything (a lost cursor) still writes nothing twice.
    db.prepare('DELETE FROM visit_cursor').run();
    expect(pipeline.processNow()).toBe(5);
    expect(outboxEvents(db).map((e) => e.idempotencyKey)).toEqual(keys);
  });

  it('start() catches up on events committed before it ran; onCommitted processes asynchronously', async () => {
    const { db, pipeline } = setup();
    ingestBatch(db, {
      readerId: 'r1',
      events: [tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v1' })],
    });
    await pipeline.start();
    expect(outboxEvents(db)).toHaveLength(1);
    ingestBatch(db, {
      readerId: 'r1',
      events: [tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'v1' })],
    });
    pipeline.onCommitted(['r1']);
    expect(outboxEvents(db)).toHaveLength(1); // not inside the ingest's call
    for (let i = 0; i < 100 && outboxEvents(db).length < 2; i++) await new Promise((r) => setImmediate(r));
    expect(outboxEvents(db).map((e) => e.type)).toEqual(['visit.started', 'visit.ended']);
  });

  it('works through a large backlog a chunk at a time, yielding to I/O between turns', async () => {
    const { db, pipeline } = setup();
    await pipeline.start();
    for (const r of ['r1', 'r2', 'r3']) {
      addReader(db, r, `client-${r}`);
      const evs = [];
      for (let i = 0; i < 300; i++) {
        evs.push(tap(r, 2 * i + 1, { card: card(1), decision: 'start', visitId: `${r}-v${i}` }));
        evs.push(tap(r, 2 * i + 2, { card: card(1), decision: 'stop', visitId: `${r}-v${i}` }));
      }
      for (let i = 0; i < evs.length; i += 200)
        ingestBatch(db, { readerId: r, events: evs.slice(i, i + 200) });
    }
    pipeline.onCommitted(['r1', 'r2', 'r3']);
    const count = () =>
      db.prepare(`SELECT COUNT(*) FROM outbox WHERE type != 'visit.anomaly'`).pluck().get() as number;
    await new Promise((r) => setImmediate(r));
    expect(count()).toBe(1000); // one turn: two chunks of 500, then it yields
    for (let i = 0; i < 100 && count() < 1800; i++) await new Promise((r) => setImmediate(r));
    expect(count()).toBe(1800);
  });
});
