import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/index.js';
import type { VisitEvent } from '../../protocol/index.js';
import type { AdminRequest, AdminRoute } from '../../gateway/src/admin/types.js';
import type { Db } from '../../gateway/src/store/sqlite/db.js';
import { addReader, card, createEnv, ingestBatch, outboxEvents, tap } from './helpers.js';
import type { TestEnv } from './helpers.js';
import { rng, startTestBackend } from './test-backend.js';
import type { Fault, TestBackend } from './test-backend.js';

const SECRET = 'test-secret-0123456789';
let env: TestEnv | undefined;
let backend: TestBackend | undefined;
afterEach(async () => {
  await env?.close();
  await backend?.close();
  env = undefined;
  backend = undefined;
});

/** Visits v1..vN on reader r1 (start, stop), plus one rejected tap: 2N + 1 outbox events. */
function makeVisits(e: TestEnv, n: number): void {
  addReader(e.db, 'r1', 'client-1');
  e.pipeline.registry.addCard({ cardRef: card(1), staffRef: 'staff-anna' });
  const events = [];
  for (let i = 0; i < n; i++) {
    events.push(tap('r1', 2 * i + 1, { card: card(1), decision: 'start', visitId: `v${i + 1}` }));
    events.push(tap('r1', 2 * i + 2, { card: card(1), decision: 'stop', visitId: `v${i + 1}` }));
  }
  events.push(
    tap('r1', 2 * n + 1, {
      card: card(5),
      decision: 'rejected',
      visitId: null,
      rejectReason: 'unknown-card',
    }),
  );
  for (let i = 0; i < events.length; i += 150)
    ingestBatch(e.db, { readerId: 'r1', events: events.slice(i, i + 150) });
  e.pipeline.processNow();
}

const states = (db: Db): Record<string, number> =>
  Object.fromEntries(
    (
      db.prepare('SELECT state, COUNT(*) AS n FROM outbox GROUP BY state').all() as {
        state: string;
        n: number;
      }[]
    ).map((r) => [r.state, r.n]),
  );

async function until(cond: () => boolean, what: string, maxMs = 20_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Each visit's start arrived (first delivery) before its end. */
function expectStartBeforeEnd(received: VisitEvent[]): void {
  const pos = new Map(received.map((e, i) => [e.idempotencyKey, i]));
  for (const e of received) {
    if (e.type !== 'visit.ended' || e.endSeq === null || e.startedAt === null) continue;
    const start = received.findIndex((s) => s.type === 'visit.started' && s.visitId === e.visitId);
    expect(start, `start of ${e.visitId}`).toBeGreaterThanOrEqual(0);
    expect(start).toBeLessThan(pos.get(e.idempotencyKey) ?? -1);
  }
}

function route(routes: AdminRoute[], method: AdminRequest['method'], path: string): AdminRoute {
  const r = routes.find((x) => x.method === method && x.path === path);
  if (!r) throw new Error(`no route ${method} ${path}`);
  return r;
}
const req = (over: Partial<AdminRequest> = {}): AdminRequest => ({
  method: 'GET',
  params: {},
  query: new URLSearchParams(),
  body: undefined,
  actor: 'tester',
  ...over,
});

describe('forwarder against a faulty backend (real HTTP, real time, small backoff)', () => {
  it('delivers every event once by key through 5xx, resets, timeouts, slow and lost answers', async () => {
    const dice = rng(42);
    const faults: Fault[] = [
      { kind: 'status', status: 503 },
      { kind: 'status', status: 500, retryAfter: '0' },
      { kind: 'reset' },
      { kind: 'hang' },
      { kind: 'slow', ms: 30 },
      { kind: 'accept-then-reset' },
      { kind: 'status', status: 429, retryAfter: '0' },
    ];
    backend = await startTestBackend({
      secret: SECRET,
      now: () => Date.now(),
      decide: () =>
        dice() < 0.55 ? (faults[Math.floor(dice() * faults.length)] ?? { kind: 'ok' }) : { kind: 'ok' },
    });
    env = createEnv({
      clock: systemClock,
      backend: {
        url: backend.url,
        secret: SECRET,
        timeoutMs: 250,
        batchMax: 7,
        backoff: { baseMs: 2, capMs: 20 },
      },
    });
    makeVisits(env, 30);
    const total = outboxEvents(env.db).length;
    expect(total).toBe(61);
    await env.pipeline.start();
    const db = env.db;
    await until(() => (states(db).delivered ?? 0) === total, 'all delivered');
    expect(states(db)).toEqual({ delivered: total });
    const b = backend;
    expect(b.received.map((e) => e.idempotencyKey).sort()).toEqual(
      outboxEvents(db)
        .map((e) => e.idempotencyKey)
        .sort(),
    );
    expect(b.badRequests).toBe(0);
    expectStartBeforeEnd(b.received);
    const metrics = env.metrics.render();
    expect(metrics).toContain(`visittag_forward_delivered_total ${total}`);
    expect(metrics).toMatch(/visittag_forward_retried_total [1-9]/);
    expect(metrics).toContain('visittag_outbox_depth 0');
    expect(b.requests).toBeGreaterThan(Math.ceil(total / 7)); // faults did happen
  });

  it('isolates a refused event into the dead letters, keeps its visit ordered, and re-drives it', async () => {
    backend = await startTestBackend({ secret: SECRET, now: () => Date.now() });
    backend.rejectKeys.add('vt1:r1:3:started'); // v2's start
    env = createEnv({
      clock: systemClock,
      backend: {
        url: backend.url,
        secret: SECRET,
        timeoutMs: 2000,
        batchMax: 50,
        backoff: { baseMs: 2, capMs: 20 },
      },
    });
    makeVisits(env, 4);
    const db = env.db;
    await env.pipeline.start();
    await until(() => (states(db).pending ?? 0) === 0, 'outbox drained');
    expect(states(db)).toEqual({ delivered: 7, dead: 2 });
    const b = backend;
    expect(b.received.map((e) => e.idempotencyKey)).not.toContain('vt1:r1:4:ended'); // never an end without its start

    const routes = env.pipeline.routes;
    const list = (await route(routes, 'GET', '/api/dead-letters').handler(req())).body as {
      deadLetters: { id: number; idempotencyKey: string; lastStatus: number | null; lastError: string }[];
    };
    expect(list.deadLetters.map((d) => [d.idempotencyKey, d.lastStatus])).toEqual([
      ['vt1:r1:3:started', 422],
      ['vt1:r1:4:ended', null],
    ]);
    expect(list.deadLetters[1]?.lastError).toMatch(/blocked/);
    expect(env.metrics.render()).toContain('visittag_forward_dead_lettered_total 2');

    b.rejectKeys.clear(); // the integrator fixed the backend
    const first = list.deadLetters[0]?.id ?? 0;
    const retried = await route(routes, 'POST', '/api/dead-letters/:id/retry').handler(
      req({ method: 'POST', params: { id: String(first) } }),
    );
    expect(retried).toMatchObject({ status: 200, body: { requeued: 2 } });
    await until(() => (states(db).delivered ?? 0) === 9, 're-driven events delivered');
    expect(b.received).toHaveLength(9);
    expectStartBeforeEnd(b.received);
    const keys = b.received.map((e) => e.idempotencyKey);
    expect(keys.indexOf('vt1:r1:3:started')).toBeLessThan(keys.indexOf('vt1:r1:4:ended'));
    const again = await route(routes, 'POST', '/api/dead-letters/:id/retry').handler(
      req({ method: 'POST', params: { id: String(first) } }),
    );
    expect(again.status).toBe(404);
  });

  it('keeps processing visits while the backend hangs, and stops promptly', async () => {
    backend = await startTestBackend({
      secret: SECRET,
      now: () => Date.now(),
      decide: () => ({ kind: 'hang' }),
    });
    env = createEnv({
      clock: systemClock,
      backend: {
        url: backend.url,
        secret: SECRET,
        timeoutMs: 60_000,
        batchMax: 10,
        backoff: { baseMs: 2, capMs: 20 },
      },
    });
    makeVisits(env, 2);
    await env.pipeline.start();
    const b = backend;
    await until(() => b.requests > 0, 'a hung request');
    ingestBatch(env.db, {
      readerId: 'r1',
      events: [tap('r1', 6, { card: card(1), decision: 'start', visitId: 'v9' })],
    });
    env.pipeline.onCommitted(['r1']);
    const db = env.db;
    await until(() => outboxEvents(db).length === 6, 'processing while the backend hangs');
    expect(states(db)).toEqual({ pending: 6 });
    await env.pipeline.stop(); // aborts the hung request
    expect(states(db)).toEqual({ pending: 6 });
  });
});
