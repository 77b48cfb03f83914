import { afterEach, describe, expect, it } from 'vitest';
import type { Forwarder } from '../../gateway/src/outbox/forwarder.js';
import { parseRetryAfter } from '../../gateway/src/outbox/forwarder.js';
import { FakeClock, addReader, card, createEnv, ingestBatch, tap } from './helpers.js';
import type { TestEnv } from './helpers.js';
import { startTestBackend } from './test-backend.js';
import type { Fault, TestBackend } from './test-backend.js';

/** Step-by-step forwarder behaviour with the injected fake clock (no real waiting). */
const SECRET = 'test-secret-0123456789';
let env: TestEnv | undefined;
let backend: TestBackend | undefined;
afterEach(async () => {
  await env?.close();
  await backend?.close();
  env = undefined;
  backend = undefined;
});

async function setup(script: Fault[]): Promise<{ env: TestEnv; fw: Forwarder; backend: TestBackend }> {
  const clock = new FakeClock();
  const b = await startTestBackend({
    secret: SECRET,
    now: () => clock.now(),
    decide: (n) => script[n] ?? { kind: 'ok' },
  });
  backend = b;
  const e = createEnv({
    fakeClock: clock,
    backend: {
      url: b.url,
      secret: SECRET,
      timeoutMs: 5_000,
      batchMax: 10,
      backoff: { baseMs: 1_000, capMs: 8_000 },
    },
  });
  env = e;
  addReader(e.db, 'r1', 'client-1');
  e.pipeline.registry.addCard({ cardRef: card(1), staffRef: 'staff-anna' });
  ingestBatch(e.db, {
    readerId: 'r1',
    events: [
      tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v1' }),
      tap('r1', 2, { card: card(1), decision: 'stop', visitId: 'v1' }),
    ],
  });
  e.pipeline.processNow();
  // Not started: the test drives the forwarder step by step.
  if (!e.pipeline.forwarder) throw new Error('no forwarder');
  return { env: e, fw: e.pipeline.forwarder, backend: b };
}

const row = (e: TestEnv) =>
  e.db
    .prepare('SELECT state, attempts, last_status AS status, last_error AS error FROM outbox ORDER BY id')
    .all() as {
    state: string;
    attempts: number;
    status: number | null;
    error: string | null;
  }[];

describe('forwarder with an injected clock', () => {
  it('times out a hung request on the injected clock and retries the same batch', async () => {
    const { env: e, fw, backend: b } = await setup([{ kind: 'hang' }]);
    const step = fw.tick();
    for (let i = 0; i < 500 && b.requests === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(b.requests).toBe(1);
    e.clock.advance(5_000); // the request timeout fires
    const r = await step;
    expect(r).toEqual({ kind: 'backoff', delayMs: expect.any(Number) as number });
    expect(row(e)[0]).toMatchObject({
      state: 'pending',
      attempts: 1,
      status: null,
      error: 'network: timeout',
    });
    expect(await fw.tick()).toEqual({ kind: 'sent', delivered: 2, dead: 0 });
    expect(b.received.map((x) => x.type)).toEqual(['visit.started', 'visit.ended']);
  });

  it('backs off exponentially with jitter up to the cap, and honours Retry-After', async () => {
    const { fw } = await setup([
      { kind: 'status', status: 503 },
      { kind: 'status', status: 502 },
      { kind: 'status', status: 500 },
      { kind: 'status', status: 500 },
      { kind: 'status', status: 500 },
      { kind: 'status', status: 429, retryAfter: '120' },
      { kind: 'status', status: 408 },
    ]);
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      const r = await fw.tick();
      if (r.kind !== 'backoff') throw new Error(`expected a backoff, got ${r.kind}`);
      delays.push(r.delayMs);
    }
    // random() = 0.5: base + 0.5·(min(cap, base·2^n) − base)
    expect(delays).toEqual([1000, 1500, 2500, 4500, 4500, 120_000, 4500]);
    expect(fw.status()).toMatchObject({ consecutiveFailures: 7, lastError: 'HTTP 408: fault' });
    expect((await fw.tick()).kind).toBe('sent');
    expect(fw.status().consecutiveFailures).toBe(0);
  });

  it('records "delivered" only after a 2xx: an answer lost after the backend stored the batch is resent', async () => {
    const { env: e, fw, backend: b } = await setup([{ kind: 'accept-then-reset' }]);
    expect((await fw.tick()).kind).toBe('backoff');
    expect(b.received).toHaveLength(2); // the backend has them…
    expect(row(e).map((r) => r.state)).toEqual(['pending', 'pending']); // …but we never saw a 2xx
    expect(await fw.tick()).toEqual({ kind: 'sent', delivered: 2, dead: 0 });
    expect(b.duplicates).toBe(2); // the backend deduped by key
    expect(b.received).toHaveLength(2);
  });

  it('dead-letters a refused event, and the end queued behind it without sending it', async () => {
    const { env: e, fw, backend: b } = await setup([]);
    b.rejectKeys.add('vt1:r1:1:started');
    // The batch is refused (422), so the start is sent alone (422: dead); the end of the same visit is
    // then dead-lettered as blocked without being sent (never an end before its start).
    expect(await fw.tick()).toEqual({ kind: 'sent', delivered: 0, dead: 2 });
    expect(b.requests).toBe(2);
    expect(row(e)).toMatchObject([
      { state: 'dead', status: 422 },
      { state: 'dead', status: null, error: expect.stringMatching(/blocked/) as string },
    ]);
    expect(await fw.tick()).toEqual({ kind: 'idle' });
    expect(b.received).toEqual([]);
  });

  it('leaves delivered rows to the retention job: the forwarder deletes nothing itself, also after 15 days', async () => {
    // Delivered rows are pruned at retention.outboxDeliveredDays by the retention job
    // (test/reliability/retention-outbox.test.ts); the forwarder once deleted them after a fixed 14 days.
    const { env: e, fw } = await setup([]);
    expect((await fw.tick()).kind).toBe('sent');
    expect(await fw.tick()).toEqual({ kind: 'idle' });
    expect(row(e)).toHaveLength(2);
    ingestBatch(e.db, {
      readerId: 'r1',
      events: [tap('r1', 3, { card: card(1), decision: 'start', visitId: 'v2' })],
    });
    e.pipeline.processNow();
    e.db.prepare(`UPDATE outbox SET state = 'dead' WHERE idempotency_key = 'vt1:r1:3:started'`).run();
    e.clock.advance(15 * 86_400_000);
    expect(await fw.tick()).toEqual({ kind: 'idle' });
    expect(row(e).map((r) => r.state)).toEqual(['delivered', 'delivered', 'dead']);
  });

  it('retries (never dead-letters) when the backend refuses the gateway itself (401/403)', async () => {
    const {
      env: e,
      fw,
      backend: b,
    } = await setup([
      { kind: 'status', status: 401 },
      { kind: 'status', status: 403 },
    ]);
    expect((await fw.tick()).kind).toBe('backoff');
    expect((await fw.tick()).kind).toBe('backoff');
    expect(row(e).map((r) => [r.state, r.attempts, r.status])).toEqual([
      ['pending', 2, 403],
      ['pending', 2, 403],
    ]);
    expect(await fw.tick()).toEqual({ kind: 'sent', delivered: 2, dead: 0 });
    expect(b.received).toHaveLength(2);
  });

  it('dead-letters a corrupt stored row instead of retrying it forever', async () => {
    const { env: e, fw, backend: b } = await setup([]);
    e.db
      .prepare(`UPDATE outbox SET event_json = '{not json' WHERE idempotency_key = 'vt1:r1:1:started'`)
      .run();
    expect(await fw.tick()).toEqual({ kind: 'sent', delivered: 0, dead: 1 });
    // Its visit's end is then held back too (never an end without its start).
    expect(await fw.tick()).toEqual({ kind: 'idle' });
    expect(row(e).map((r) => r.state)).toEqual(['dead', 'dead']);
    expect(b.requests).toBe(0);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.UTC(2026, 10, 23, 8, 0, 0);
    expect(parseRetryAfter('7', now)).toBe(7000);
    expect(parseRetryAfter(new Date(now + 30_000).toUTCString(), now)).toBe(30_000);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(null, now)).toBeNull();
  });
});
