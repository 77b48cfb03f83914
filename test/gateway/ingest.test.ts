import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/index.js';
import { encode, topics } from '../../protocol/index.js';
import {
  AckCollector,
  adminGet,
  batchOf,
  connectReader,
  PASSWORD,
  dbOf,
  startGateway,
  storedSeqs,
  tapEvent,
  tempDir,
  waitUntil,
} from './helpers.js';

describe('ingest: dedupe, gaps, conflicts, rejects, admin view', () => {
  let gw: Gateway;
  let tmp: ReturnType<typeof tempDir>;
  let client: MqttClient;
  let acks: AckCollector;
  const R = 'r-ingest';

  beforeAll(async () => {
    tmp = tempDir();
    gw = await startGateway(tmp.dir);
    await gw.registry.addReader({ readerId: R, password: PASSWORD, clientRef: 'client-1', label: 'Flat 3B' });
    client = await connectReader(gw.mqttPort ?? 0, R);
    acks = await AckCollector.attach(client, R);
  });
  afterAll(async () => {
    await client.endAsync(true);
    await gw.stop();
    tmp.cleanup();
  });

  it('redelivered, overlapping and out-of-order batches create no duplicates; a gap is reported then closes', async () => {
    await acks.publish(R, batchOf(R, [1, 2, 3]));
    await acks.waitFor((a) => a.upTo === 3);
    // the same batch again (a QoS 1 resend / device resend), and an overlapping one
    await acks.publish(R, batchOf(R, [1, 2, 3]));
    await acks.publish(R, batchOf(R, [2, 3, 4, 5]));
    await acks.waitFor((a) => a.upTo === 5);
    // out of order, leaving 6..7 and 9 missing
    await acks.publish(R, batchOf(R, [10, 11]));
    await acks.publish(R, batchOf(R, [8]));
    const gapAck = await acks.waitFor(
      (a) =>
        a.upTo === 5 &&
        JSON.stringify(a.gaps) ===
          JSON.stringify([
            { from: 6, to: 7 },
            { from: 9, to: 9 },
          ]),
    );
    expect(gapAck.rejected).toEqual([]);
    expect(gw.store.gaps(R, 10)).toEqual([
      { from: 6, to: 7 },
      { from: 9, to: 9 },
    ]);
    const view = await adminGet(gw, `/api/readers/${R}`);
    expect(view.body).toMatchObject({
      readerId: R,
      contiguousUpto: 5,
      maxSeen: 11,
      hasGaps: true,
      gaps: [
        { from: 6, to: 7 },
        { from: 9, to: 9 },
      ],
    });
    expect((await adminGet(gw, '/metrics')).text).toMatch(/visittag_ingest_gap_events 3/);
    // the missing events arrive (again out of order): the gap closes
    await acks.publish(R, batchOf(R, [9]));
    await acks.publish(R, batchOf(R, [6, 7]));
    const closed = await acks.waitFor((a) => a.upTo === 11);
    expect(closed.gaps).toBeUndefined();
    expect(storedSeqs(gw, R)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(gw.store.seqState(R)).toEqual({ contiguousUpto: 11, maxSeen: 11 });
    const metrics = (await adminGet(gw, '/metrics')).text;
    expect(metrics).toMatch(/visittag_ingest_dedupe_hits_total [5-9]/);
    expect(metrics).toMatch(/visittag_ingest_events_total 11/);
    expect(metrics).toMatch(/visittag_ingest_gap_events 0/);
  });

  it('the same seq with different content is a duplicate-conflict: first kept, counted, listed in the ack', async () => {
    const before = dbOf(gw)
      .prepare('SELECT event_json FROM events WHERE reader_id = ? AND seq = 4')
      .pluck()
      .get(R);
    const forged = {
      ...batchOf(R, [4]),
      events: [tapEvent(R, 4, { eventId: 'other-event', decision: 'stop' })],
    };
    await acks.publish(R, forged);
    const ack = await acks.waitFor((a) => a.rejected.some((x) => x.seq === 4));
    expect(ack.rejected[0]).toMatchObject({ seq: 4, reason: 'duplicate-conflict' });
    expect(ack.upTo).toBe(11);
    expect(
      dbOf(gw).prepare('SELECT event_json FROM events WHERE reader_id = ? AND seq = 4').pluck().get(R),
    ).toBe(before);
    expect((await adminGet(gw, '/metrics')).text).toMatch(/visittag_ingest_duplicate_conflicts_total 1/);
  });

  it('rejects bad payloads with a reason, counts them, shows them in the reader status, changes nothing', async () => {
    const topic = topics.events(R);
    const countBefore = gw.store.countEvents();
    const bad: Array<[string, Buffer]> = [
      ['invalid-json', Buffer.from('{not json')],
      ['invalid-utf8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
      ['unsupported-schema-version', Buffer.from(JSON.stringify({ ...batchOf(R, [12]), schemaVersion: 2 }))],
      ['invalid-payload', Buffer.from(JSON.stringify({ ...batchOf(R, [12]), events: [] }))],
      ['reader-mismatch', encode('events', batchOf('r-other', [12]))],
      ['oversized', Buffer.alloc(257 * 1024, 0x20)],
    ];
    for (const [, payload] of bad) await client.publishAsync(topic, payload, { qos: 1 });
    await client.publishAsync(topics.status(R), Buffer.from('{"schemaVersion":1}'), { qos: 1 });
    const metricsText = await waitUntil(async () => {
      const t = (await adminGet(gw, '/metrics')).text;
      return bad.every(([reason]) => t.includes(`visittag_ingest_rejects_total{reason="${reason}"}`))
        ? t
        : null;
    });
    expect(metricsText).toMatch(/visittag_ingest_rejects_total\{reason="invalid-payload"\} 2/);
    expect(metricsText).toMatch(/visittag_ingest_rejects_total\{reason="oversized"\} 1/);
    gw.flush();
    expect(gw.store.countEvents()).toBe(countBefore);
    expect(gw.store.seqState(R)).toEqual({ contiguousUpto: 11, maxSeen: 11 });
    const view = (await adminGet(gw, `/api/readers/${R}`)).body as {
      rejects: Array<{ reason: string; count: number }>;
      lastReject: { reason: string; detail: string };
    };
    const reasons = Object.fromEntries(view.rejects.map((r) => [r.reason, r.count]));
    for (const [reason] of bad) expect(reasons[reason], reason).toBeGreaterThanOrEqual(1);
    expect(view.lastReject.reason).toBe('invalid-payload'); // the bad status message
    // no raw card ids or payload values in the stored details
    const details = dbOf(gw).prepare('SELECT detail FROM rejects').pluck().all() as string[];
    expect(details.join(' ')).not.toMatch(/c1_/);
  });

  it('stores the reader status and serves the admin API behind the token', async () => {
    const status = {
      schemaVersion: 1 as const,
      readerId: R,
      state: 'online' as const,
      firmware: '0.1.0',
      bootId: 'boot-1',
      at: { wallMs: Date.now() + 1500, monoMs: 5000 },
      queueDepth: 7,
      oldestUnackedSeq: 12,
      oldestUnackedAgeMs: 1000,
      lastAckedSeq: 11,
      journalCapacity: 10000,
      clock: { synced: true, source: 'ntp' as const },
      readerAttached: true,
      freeStorageBytes: 1_000_000,
      configVersion: 0,
      configError: null,
      faults: [],
    };
    await client.publishAsync(topics.status(R), encode('status', status), { qos: 1, retain: true });
    const view = await waitUntil(async () => {
      const b = (await adminGet(gw, `/api/readers/${R}`)).body as { queueDepth: number | null };
      return b.queueDepth === 7 ? b : null;
    });
    expect(view).toMatchObject({
      connected: true,
      reportedState: 'online',
      firmware: '0.1.0',
      label: 'Flat 3B',
    });
    const offset = (view as unknown as { clockOffsetMs: number }).clockOffsetMs;
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThan(10_000);
    expect((await adminGet(gw, '/api/readers', null)).status).toBe(401);
    expect((await adminGet(gw, '/api/readers', 'wrong-token-wrong-token')).status).toBe(401);
    expect((await adminGet(gw, '/metrics', null)).status).toBe(401);
    expect((await adminGet(gw, '/healthz', null)).status).toBe(200);
    expect((await adminGet(gw, '/readyz', null)).status).toBe(200);
    const list = (await adminGet(gw, '/api/readers')).body as { readers: Array<{ readerId: string }> };
    expect(list.readers.map((r) => r.readerId)).toContain(R);
    expect((await adminGet(gw, '/api/readers/nope')).status).toBe(404);
    const m = (await adminGet(gw, '/metrics')).text;
    expect(m).toMatch(/visittag_connected_readers 1/);
    expect(m).toMatch(/visittag_ingest_messages_total\{leaf="events"\}/);
  });

  it('one invalid event in a batch is held as rejected (invalid-event): the valid ones are stored, nothing blocks', async () => {
    const batch = batchOf(R, [12, 13, 14]);
    const poisoned = {
      ...batch,
      events: batch.events.map((e) => (e.seq === 13 ? { ...e, card: 'raw-uid-04A1B2C3' } : e)),
    };
    const payload = Buffer.from(JSON.stringify(poisoned));
    await client.publishAsync(topics.events(R), payload, { qos: 1 });
    const ack = await acks.waitFor((a) => a.upTo === 14);
    expect(ack.rejected).toHaveLength(1);
    expect(ack.rejected[0]).toMatchObject({ seq: 13, reason: 'invalid-event' });
    expect(ack.rejected[0]?.detail).toMatch(/card/);
    expect(storedSeqs(gw, R)).toContain(12);
    expect(storedSeqs(gw, R)).toContain(14);
    expect(storedSeqs(gw, R)).not.toContain(13);
    // resent: same answer, nothing new
    const n = acks.acks.length;
    await client.publishAsync(topics.events(R), payload, { qos: 1 });
    const again = await acks.waitFor((a) => acks.acks.indexOf(a) >= n);
    expect(again).toMatchObject({ upTo: 14, rejected: [{ seq: 13, reason: 'invalid-event' }] });
    expect(dbOf(gw).prepare('SELECT COUNT(*) FROM rejected_events').pluck().get()).toBe(1);
    const details = dbOf(gw)
      .prepare('SELECT detail FROM rejected_events UNION ALL SELECT detail FROM rejects')
      .pluck()
      .all();
    expect(JSON.stringify(details)).not.toContain('04A1B2C3');
  });
});
