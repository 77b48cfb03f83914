import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/index.js';
import { RejectLogLimiter } from '../../gateway/src/ingest/limits.js';
import {
  AckCollector,
  adminGet,
  batchOf,
  connectReader,
  PASSWORD,
  startGateway,
  tempDir,
} from './helpers.js';

// Issue 16: tombstones let pairing continue past seqs a device will never deliver; a seq far beyond the
// reader's high-water mark is refused, not held; reject logging is bounded while the counters stay exact.

describe('ingest limits over MQTT', () => {
  let gw: Gateway;
  let tmp: ReturnType<typeof tempDir>;
  let client: MqttClient;
  let acks: AckCollector;
  const R = 'r-limits';

  beforeAll(async () => {
    tmp = tempDir();
    gw = await startGateway(tmp.dir);
    await gw.registry.addReader({ readerId: R, password: PASSWORD, clientRef: 'client-1', label: 'Flat 1' });
    client = await connectReader(gw.mqttPort ?? 0, R);
    acks = await AckCollector.attach(client, R);
  });
  afterAll(async () => {
    await client.endAsync(true);
    await gw.stop();
    tmp.cleanup();
  });

  it('a tombstoned seq is held: stored seqs 1, 3, 4 and a tombstone for 2 give upTo 4 and no gap', async () => {
    await acks.publish(R, batchOf(R, [1]));
    await acks.waitFor((a) => a.upTo === 1);
    await acks.publish(R, { ...batchOf(R, [3, 4]), tombstones: [{ from: 2, to: 2, reason: 'quarantined' }] });
    await acks.waitFor((a) => a.upTo === 4);
    expect(gw.store.gaps(R, 10)).toEqual([]);
    expect(gw.store.seqState(R)).toEqual({ contiguousUpto: 4, maxSeen: 4 });
  });

  it('a tombstone alone (no events) is held too', async () => {
    await acks.publish(R, batchOf(R, [6]));
    await acks.waitFor((a) => a.upTo === 4 && (a.gaps ?? []).length === 1);
    await acks.publish(R, {
      ...batchOf(R, [6]),
      events: [],
      tombstones: [{ from: 5, to: 5, reason: 'quarantined' }],
    });
    await acks.waitFor((a) => a.upTo === 6);
  });

  it('a seq jump of 2^53 is refused with a reason and not held; the reader goes on', async () => {
    const b = batchOf(R, [7, 8]);
    const far = b.events[1];
    if (far) far.seq = Number.MAX_SAFE_INTEGER; // a jump of 2^53 − 8
    await acks.publish(R, b);
    await acks.waitFor((a) => a.upTo === 7);
    expect(gw.store.seqState(R)).toEqual({ contiguousUpto: 7, maxSeen: 7 });
    expect((await adminGet(gw, '/metrics')).text).toMatch(
      /visittag_ingest_rejects_total\{reason="seq-jump"\} 1/,
    );
    await acks.publish(R, batchOf(R, [8]));
    await acks.waitFor((a) => a.upTo === 8);
  });
});

describe('reject log limiter', () => {
  it('10,000 rejects of one reader and reason in a minute: 10 lines, then one line with the exact rest', () => {
    const lim = new RejectLogLimiter({ perWindow: 10, windowMs: 60_000 });
    let lines = 0;
    for (let i = 0; i < 10_000; i++) if (lim.admit('r1\ninvalid-json', i).log) lines++;
    expect(lines).toBe(10);
    const next = lim.admit('r1\ninvalid-json', 60_000);
    expect(next).toEqual({ log: true, suppressedBefore: 9_990 });
    expect(lim.admit('r2\ninvalid-json', 60_001).log).toBe(true); // other readers have their own budget
  });
});
