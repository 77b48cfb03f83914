import { afterEach, describe, expect, it } from 'vitest';
import {
  SCHEMA_VERSION,
  WEBHOOK_HEADERS,
  signWebhook,
  systemClock,
  webhookBatchId,
} from '../../protocol/index.js';
import type { VisitEvent } from '../../protocol/index.js';
import { startFakeBackend, type FakeBackend } from '../../simulator/fake-backend.js';

const SECRET = 'test-secret-0123456789';
const CARD = `c1_${'a'.repeat(32)}`;

function started(seq: number): Extract<VisitEvent, { type: 'visit.started' }> {
  return {
    type: 'visit.started',
    idempotencyKey: `vt1:r1:${seq}:started`,
    visitId: `v-${seq}`,
    readerId: 'r1',
    clientRef: 'client-1',
    staffRef: 'staff-1',
    cardRef: CARD,
    groupId: null,
    anomalies: [],
    timeQuality: 'synced',
    startedAt: new Date(1_790_000_000_000 + seq).toISOString(),
    startSeq: seq,
  };
}

async function post(
  be: FakeBackend,
  events: VisitEvent[],
  opts: { secret?: string; ts?: number; body?: string } = {},
): Promise<number> {
  const body =
    opts.body ??
    JSON.stringify({
      schemaVersion: SCHEMA_VERSION,
      batchId: webhookBatchId(events.map((e) => e.idempotencyKey)),
      sentAt: new Date().toISOString(),
      events,
    });
  const ts = opts.ts ?? Date.now();
  const res = await fetch(be.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      [WEBHOOK_HEADERS.signature]: signWebhook(opts.secret ?? SECRET, ts, body),
      [WEBHOOK_HEADERS.timestamp]: String(ts),
    },
    body,
  });
  await res.arrayBuffer();
  return res.status;
}

describe('fake planning backend', () => {
  let be: FakeBackend | undefined;
  afterEach(async () => {
    await be?.close();
    be = undefined;
  });

  it('records the first delivery per key and answers 2xx for duplicates', async () => {
    be = await startFakeBackend({ secret: SECRET });
    expect(await post(be, [started(1), started(2)])).toBe(200);
    expect(await post(be, [started(2), started(3)])).toBe(200);
    expect(be.received().map((e) => e.idempotencyKey)).toEqual([
      'vt1:r1:1:started',
      'vt1:r1:2:started',
      'vt1:r1:3:started',
    ]);
    expect(be.duplicates).toBe(1);
    expect(be.conflicts).toBe(0);
  });

  it('counts a duplicate key with different content as a conflict', async () => {
    be = await startFakeBackend({ secret: SECRET });
    await post(be, [started(1)]);
    await post(be, [{ ...started(1), staffRef: 'someone-else' }]);
    expect(be.conflicts).toBe(1);
    expect(be.received()).toHaveLength(1);
  });

  it('refuses wrong signatures, stale timestamps and invalid batches, recording nothing', async () => {
    be = await startFakeBackend({ secret: SECRET });
    expect(await post(be, [started(1)], { secret: 'wrong-secret-000000' })).toBe(401);
    expect(await post(be, [started(1)], { ts: Date.now() - 3_600_000 })).toBe(401);
    expect(be.rejectedSignatures).toBe(2);
    expect(await post(be, [], { body: '{"schemaVersion":1,"events":[]}' })).toBe(400);
    expect(await post(be, [], { body: 'not json' })).toBe(400);
    expect(be.invalidBatches).toBe(2);
    expect(be.received()).toHaveLength(0);
  });

  it('a virtual clock that runs ahead while a request is on the wire: fresh signatures pass, stale ones do not', async () => {
    // The simulator steps minutes of virtual time between real I/O turns (CI seed 1006 saw a fresh
    // signature refused as "outside the replay window"). The grace is in real time, so a signature
    // made on an old clock reading is still refused.
    let now = 1_790_000_000_000;
    const clock = { ...systemClock, now: () => now };
    be = await startFakeBackend({ secret: SECRET, clock, transitGraceRealMs: 10_000 });
    const signedAt = now;
    now += 20 * 60_000; // the request is on the wire while 20 virtual minutes pass
    expect(await post(be, [started(1)], { ts: signedAt })).toBe(200);
    expect(await post(be, [started(2)], { ts: signedAt - 3_600_000 })).toBe(401);
    expect(be.rejectionReasons()).toEqual(['timestamp outside the replay window']);

    const strict = await startFakeBackend({ secret: SECRET, clock });
    try {
      const at = now;
      now += 20 * 60_000;
      expect(await post(strict, [started(3)], { ts: at })).toBe(401); // without the grace: refused
    } finally {
      await strict.close();
    }
  });

  it('injects outages, 5xx, 4xx for chosen keys and resets, then recovers', async () => {
    be = await startFakeBackend({ secret: SECRET, faults: { down: true } });
    expect(await post(be, [started(1)])).toBe(503);
    be.setFaults({ errorRate: 1 });
    expect(await post(be, [started(1)])).toBeGreaterThanOrEqual(500);
    be.setFaults({ rejectKeys: ['vt1:r1:1:started'] });
    expect(await post(be, [started(1)])).toBe(422);
    expect(be.rejectedKeys()).toEqual(['vt1:r1:1:started']);
    be.setFaults({ resetRate: 1 });
    await expect(post(be, [started(1)])).rejects.toThrow();
    be.setFaults({ acceptThenResetRate: 1 });
    await expect(post(be, [started(1)])).rejects.toThrow();
    expect(be.received()).toHaveLength(1); // recorded although the answer was lost
    be.setFaults({});
    expect(await post(be, [started(1)])).toBe(200);
    expect(be.duplicates).toBe(1);
    expect(be.rejectedKeys()).toEqual([]);
    const c = be.faultCounts();
    expect(c).toMatchObject({ down: 1, error: 1, reject: 1, reset: 1, 'accept-then-reset': 1 });
  });

  it('never answers a hung request (the client has to time out) and close() frees it', async () => {
    be = await startFakeBackend({ secret: SECRET, faults: { timeoutRate: 1 } });
    const pending = post(be, [started(1)]);
    for (let i = 0; i < 50 && be.faultCounts().timeout === 0; i++) await new Promise((r) => setImmediate(r));
    await be.close();
    be = undefined;
    await expect(pending).rejects.toThrow();
  });
});
