import { afterEach, describe, expect, it } from 'vitest';
import { VisitEvent } from '../../protocol/index.js';
import type { AdminRequest, AdminResponse } from '../../gateway/src/admin/types.js';
import { addReader, card, createEnv, ingestBatch, ofType, outboxEvents, tap } from './helpers.js';
import type { TestEnv } from './helpers.js';

let env: TestEnv;
afterEach(async () => {
  await env.close();
});

async function call(
  method: AdminRequest['method'],
  path: string,
  opts: { query?: Record<string, string>; body?: unknown; actor?: string } = {},
): Promise<AdminResponse> {
  // Tiny router: match ':param' segments the way the admin server does.
  const parts = path.split('/');
  for (const r of env.pipeline.routes) {
    const rp = r.path.split('/');
    if (r.method !== method || rp.length !== parts.length) continue;
    const params: Record<string, string> = {};
    if (
      rp.every((seg, i) =>
        seg.startsWith(':') ? ((params[seg.slice(1)] = parts[i] ?? ''), true) : seg === parts[i],
      )
    ) {
      return r.handler({
        method,
        params,
        query: new URLSearchParams(opts.query ?? {}),
        body: opts.body,
        actor: opts.actor ?? 'ops-anna',
      });
    }
  }
  throw new Error(`no route for ${method} ${path}`);
}

function setup(): TestEnv {
  env = createEnv();
  addReader(env.db, 'r1', 'client-1');
  env.pipeline.registry.addCard({ cardRef: card(1), staffRef: 'staff-anna' });
  ingestBatch(env.db, {
    readerId: 'r1',
    events: [
      tap('r1', 1, { card: card(1), decision: 'start', visitId: 'v-open' }),
      tap('r1', 2, { card: card(2), decision: 'start', visitId: 'v-done' }),
      tap('r1', 3, { card: card(2), decision: 'stop', visitId: 'v-done' }),
    ],
  });
  env.pipeline.processNow();
  return env;
}

describe('visit admin routes', () => {
  it('lists open and recent visits and anomalies, filtered, and refuses bad queries with a reason', async () => {
    setup();
    const open = (await call('GET', '/api/visits', { query: { state: 'open' } })).body as {
      visits: { visitId: string }[];
    };
    expect(open.visits.map((v) => v.visitId)).toEqual(['v-open']);
    const recent = (await call('GET', '/api/visits', { query: { state: 'recent', readerId: 'r1' } }))
      .body as {
      visits: { visitId: string; state: string }[];
    };
    expect(recent.visits.map((v) => v.visitId).sort()).toEqual(['v-done', 'v-open']);
    const none = (await call('GET', '/api/visits', { query: { state: 'recent', readerId: 'r9' } })).body as {
      visits: unknown[];
    };
    expect(none.visits).toEqual([]);
    const anomalies = (await call('GET', '/api/anomalies', { query: { kind: 'unknown-card' } })).body as {
      anomalies: { kind: string; visitId: string }[];
    };
    expect(anomalies.anomalies.map((a) => [a.kind, a.visitId])).toEqual([['unknown-card', 'v-done']]);
    expect((await call('GET', '/api/visits', { query: { state: 'closed' } })).status).toBe(400);
    expect((await call('GET', '/api/anomalies', { query: { kind: 'nope' } })).status).toBe(400);
    expect((await call('GET', '/api/visits', { query: { limit: '-3' } })).status).toBe(400);
  });

  it('closes an open visit manually: audit trail, visit.ended (manual) and a manual-close anomaly', async () => {
    const { db, clock } = setup();
    clock.advance(3_600_000);
    const r = await call('POST', '/api/visits/v-open/close', {
      body: { reason: 'worker forgot to tap out' },
    });
    expect(r.status).toBe(200);
    const audit = db.prepare('SELECT visit_id, action, actor, reason, at_ms FROM visit_audit').all();
    expect(audit).toEqual([
      {
        visit_id: 'v-open',
        action: 'close',
        actor: 'ops-anna',
        reason: 'worker forgot to tap out',
        at_ms: clock.now(),
      },
    ]);
    const out = outboxEvents(db);
    for (const e of out) expect(VisitEvent.safeParse(e).success).toBe(true);
    const ended = ofType(out, 'visit.ended').find((e) => e.visitId === 'v-open');
    expect(ended).toMatchObject({
      idempotencyKey: 'vt1:manual:v-open',
      endReason: 'manual',
      endSeq: null,
      closedBy: 'ops-anna',
      closeReason: 'worker forgot to tap out',
      anomalies: ['manual-close'],
      endedAt: new Date(clock.now()).toISOString(),
    });
    expect(ofType(out, 'visit.anomaly').map((a) => a.idempotencyKey)).toContain(
      'vt1:manual:v-open:anomaly:manual-close',
    );

    // Closing again, or an unknown visit, or without a reason: refused, nothing written.
    const before = out.length;
    expect((await call('POST', '/api/visits/v-open/close', { body: { reason: 'again' } })).status).toBe(409);
    expect((await call('POST', '/api/visits/v-nope/close', { body: { reason: 'x' } })).status).toBe(404);
    expect((await call('POST', '/api/visits/v-open/close', { body: {} })).status).toBe(400);
    expect((await call('POST', '/api/visits/v-open/close', { body: 'close it' })).status).toBe(400);

    // The device's own stop arriving later is recorded, but no second visit.ended goes out.
    ingestBatch(db, {
      readerId: 'r1',
      events: [tap('r1', 4, { card: card(1), decision: 'stop', visitId: 'v-open' })],
    });
    env.pipeline.processNow();
    expect(outboxEvents(db)).toHaveLength(before);
    expect(db.prepare(`SELECT late_end_seq FROM visits WHERE visit_id = 'v-open'`).pluck().get()).toBe(4);
  });

  it('lists dead letters, re-drives all of them, and reports the outbox', async () => {
    const { db } = setup();
    db.prepare(
      `UPDATE outbox SET state = 'dead', last_status = 400, last_error = 'HTTP 400' WHERE id <= 2`,
    ).run();
    const list = (await call('GET', '/api/dead-letters')).body as {
      deadLetters: { id: number; event: unknown }[];
    };
    expect(list.deadLetters).toHaveLength(2);
    expect(VisitEvent.safeParse(list.deadLetters[0]?.event).success).toBe(true);
    expect((await call('POST', '/api/dead-letters/abc/retry')).status).toBe(400);
    expect(await call('POST', '/api/dead-letters/retry-all')).toMatchObject({
      status: 200,
      body: { requeued: 2 },
    });
    expect((await call('GET', '/api/outbox')).body).toMatchObject({
      dead: 0,
      pending: outboxEvents(db).length,
      forwarder: null,
    });
  });
});
