import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { main as gatewayMain } from '../../gateway/main.js';
import { encode, topics, type TapEvent, type VisitEvent } from '../../protocol/index.js';
import { checkAttributions } from '../../simulator/checker-match.js';
import { startFakeBackend } from '../../simulator/fake-backend.js';
import {
  AckCollector,
  ADMIN_TOKEN,
  adminGet,
  batchOf,
  card,
  connectReader,
  dbOf,
  silent,
  tapEvent,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Unknown {
  cardRef: string;
  taps: number;
  seenAt: { readerId: string; clientRef: string | null }[];
}

describe('unknown cards', () => {
  it('are listed with where and when they were seen; assigning one takes it off the list', async () => {
    const tmp = tempDir('vt-unknown-');
    const gw: Gateway = createGateway({ config: testConfig(join(tmp.dir, 'gw')), logger: silent });
    trackDataDir(gw, join(tmp.dir, 'gw'));
    await gw.start();
    cleanups.push(async () => {
      await gw.stop();
      tmp.cleanup();
    });
    gw.registry.addCard({ cardRef: card(1), staffRef: 'nurse-1' });
    const { password } = await gw.registry.addReader({ readerId: 'r-home-40', clientRef: 'home-40' });
    const c = await connectReader(gw.mqttPort ?? 0, 'r-home-40', password);
    cleanups.push(() => c.endAsync());
    // seq 1..3 use card((seq % 7) + 1): card 2, 3, 4, all unknown; card 1 is known.
    await c.publishAsync(topics.events('r-home-40'), encode('events', batchOf('r-home-40', [1, 2, 3])), {
      qos: 1,
    });
    const unknown = await waitUntil(async () => {
      const b = (await adminGet(gw, '/api/cards/unknown')).body as { cards: Unknown[] };
      return b.cards.length === 3 ? b.cards : null;
    }, 15_000);
    const two = unknown.find((u) => u.cardRef === card(2));
    expect(two).toMatchObject({ taps: 1, seenAt: [{ readerId: 'r-home-40', clientRef: 'home-40' }] });

    const res = await fetch(`${gw.adminUrl}/api/cards/${card(2)}/assign`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ staffRef: 'nurse-2' }),
    });
    expect(res.status).toBe(200);
    const after = (await adminGet(gw, '/api/cards/unknown')).body as { cards: Unknown[] };
    expect(after.cards.map((u) => u.cardRef).sort()).toEqual([card(3), card(4)].sort());
    expect(dbOf(gw).prepare('SELECT staff_ref FROM cards WHERE card_ref = ?').pluck().get(card(2))).toBe(
      'nurse-2',
    );
    const bad = await fetch(`${gw.adminUrl}/api/cards/not-a-card/assign`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ staffRef: 'nurse-2' }),
    });
    expect(bad.status).toBe(400);
  });
});

type Attributed = Extract<VisitEvent, { type: 'visit.attributed' }>;
const SECRET = 'unknown-cards-webhook-secret-0123';
const R = 'r-home-41';

async function post(gw: Gateway, path: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${gw.adminUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

describe('unknown card assigned later resolves its earlier taps (end to end)', () => {
  it('earlier visits get the staff member, anomalies are resolved, the backend gets visit.attributed once each', async () => {
    const backend = await startFakeBackend({ secret: SECRET });
    const tmp = tempDir('vt-attr-');
    const config = testConfig(join(tmp.dir, 'gw'), {
      backend: {
        url: backend.url,
        secret: SECRET,
        timeoutMs: 2000,
        batchMax: 50,
        backoff: { baseMs: 20, capMs: 200 },
      },
    });
    const gw = createGateway({ config, logger: silent });
    await gw.start();
    cleanups.push(async () => {
      await gw.stop();
      await backend.close();
      tmp.cleanup();
    });
    const X = card(0x51); // unknown until the coordinator assigns it
    const Y = card(0x52); // unknown, assigned with the CLI
    const Z = card(0x53); // unknown, registered by a CSV import
    gw.registry.addCard({ cardRef: card(1), staffRef: 'nurse-1' });
    const { password } = await gw.registry.addReader({ readerId: R, clientRef: 'home-41' });
    const c = await connectReader(gw.mqttPort ?? 0, R, password);
    cleanups.push(() => c.endAsync());
    const acks = await AckCollector.attach(c, R);
    const send = async (events: TapEvent[]): Promise<void> => {
      await acks.publish(R, {
        schemaVersion: 1,
        readerId: R,
        sentAt: { wallMs: Date.UTC(2026, 10, 23, 9), bootId: 'boot-1', monoMs: 3_600_000, synced: true },
        events,
      });
      const upTo = events.at(-1)?.seq ?? 0;
      await acks.waitFor((a) => a.upTo >= upTo);
    };
    await send([
      tapEvent(R, 1, { card: X, decision: 'start', visitId: 'v1' }),
      tapEvent(R, 2, { card: X, decision: 'stop', visitId: 'v1' }),
      // The reader's allow-list did not have the card: refused on the spot, no visit.
      tapEvent(R, 3, { card: X, decision: 'rejected', visitId: null, rejectReason: 'unknown-card' }),
      tapEvent(R, 4, { card: card(1), decision: 'start', visitId: 'vk' }),
      tapEvent(R, 5, { card: X, decision: 'start', visitId: 'v2' }), // still open at the assignment
      tapEvent(R, 6, { card: Y, decision: 'start', visitId: 'vy' }),
      tapEvent(R, 7, { card: Z, decision: 'start', visitId: 'vz' }),
    ]);
    // started v1, ended v1, started vk, started v2, vy, vz + unknown-card anomalies for seq 1, 3, 5, 6, 7
    await waitUntil(() => backend.received().length === 11, 15_000);
    expect(backend.received().filter((e) => e.type === 'visit.started' && e.cardRef === X)).toMatchObject([
      { visitId: 'v1', staffRef: null },
      { visitId: 'v2', staffRef: null },
    ]);

    // The coordinator sees the unknown card, where and when.
    const unknown = (await adminGet(gw, '/api/cards/unknown')).body as {
      cards: { cardRef: string; taps: number; seenAt: { readerId: string; clientRef: string | null }[] }[];
    };
    expect(unknown.cards.find((u) => u.cardRef === X)).toMatchObject({
      taps: 3,
      seenAt: [{ readerId: R, clientRef: 'home-41' }],
    });

    const assigned = await post(gw, `/api/cards/${X}/assign`, { staffRef: 'nurse-2' });
    expect(assigned).toEqual({
      status: 200,
      body: {
        cardRef: X,
        staffRef: 'nurse-2',
        registry: 'added',
        attributed: { visits: 2, refusedTaps: 1, anomaliesResolved: 3, events: 3 },
      },
    });
    const attributedOf = (card: string): Attributed[] =>
      backend.received().filter((e): e is Attributed => e.type === 'visit.attributed' && e.cardRef === card);
    await waitUntil(() => attributedOf(X).length === 3, 15_000);
    expect(attributedOf(X).map((a) => [a.visitId, a.seq, a.staffRef, a.previousStaffRef, a.reason])).toEqual([
      ['v1', 1, 'nurse-2', null, 'card-assigned'],
      ['v2', 5, 'nurse-2', null, 'card-assigned'],
      [null, 3, 'nurse-2', null, 'card-assigned'],
    ]);
    expect(attributedOf(X)[0]).toMatchObject({
      idempotencyKey: `vt1:${R}:1:attributed`,
      readerId: R,
      clientRef: 'home-41',
      attributedBy: 'admin-token',
      resolves: [`vt1:${R}:1:anomaly:unknown-card`],
    });

    // A second assign, and a re-assignment without `reassign`, send nothing new.
    const again = await post(gw, `/api/cards/${X}/assign`, { staffRef: 'nurse-2' });
    expect(again).toMatchObject({ status: 200, body: { registry: 'unchanged', attributed: { events: 0 } } });
    const other = await post(gw, `/api/cards/${X}/assign`, { staffRef: 'nurse-9' });
    expect(other.status).toBe(409);
    expect((other.body as { detail: string }).detail).toMatch(
      /already registered to nurse-2.*"reassign": true/,
    );

    // The open visit's stop arrives after the assignment: its visit.ended carries the staff member.
    // The outbox delivers in id order, so once it is in, anything the second assign might have
    // queued would be in too.
    await send([tapEvent(R, 8, { card: X, decision: 'stop', visitId: 'v2' })]);
    await waitUntil(() => backend.received().some((e) => e.idempotencyKey === `vt1:${R}:8:ended`), 15_000);
    expect(backend.received().find((e) => e.idempotencyKey === `vt1:${R}:8:ended`)).toMatchObject({
      staffRef: 'nurse-2',
    });
    expect(attributedOf(X)).toHaveLength(3);

    // GET /api/visits shows the staff member; GET /api/anomalies the resolution.
    const visits = (await adminGet(gw, `/api/visits?state=recent&readerId=${R}`)).body as {
      visits: { visitId: string; staffRef: string | null }[];
    };
    const staffOf = (id: string) => visits.visits.find((v) => v.visitId === id)?.staffRef;
    expect([staffOf('v1'), staffOf('v2'), staffOf('vk'), staffOf('vy')]).toEqual([
      'nurse-2',
      'nurse-2',
      'nurse-1',
      null,
    ]);
    const anomalies = (await adminGet(gw, `/api/anomalies?kind=unknown-card&readerId=${R}`)).body as {
      anomalies: {
        cardRef: string;
        seq: number;
        resolvedBy: string | null;
        resolvedStaffRef: string | null;
      }[];
    };
    expect(
      anomalies.anomalies
        .filter((a) => a.cardRef === X)
        .map((a) => [a.seq, a.resolvedBy, a.resolvedStaffRef]),
    ).toEqual([
      [5, 'admin-token', 'nurse-2'],
      [3, 'admin-token', 'nurse-2'],
      [1, 'admin-token', 'nurse-2'],
    ]);
    expect(anomalies.anomalies.find((a) => a.cardRef === Y)?.resolvedBy).toBeNull();

    // The CLI: `cards unknown` lists Y, `cards assign` resolves it (another process would do the same).
    const cfgFile = join(tmp.dir, 'gw.json');
    writeFileSync(cfgFile, JSON.stringify(config));
    const lines: string[] = [];
    const cli = (args: string[]) =>
      gatewayMain(
        ['cards', ...args, '--config', cfgFile],
        (l) => lines.push(l),
        (l) => lines.push(l),
      );
    expect(await cli(['unknown'])).toBe(0);
    expect(lines.join('\n')).toContain(`${Y}  1 tap(s)`);
    expect(lines.join('\n')).not.toContain(X);
    // --json: the same document as GET /api/cards/unknown, for scripts
    lines.length = 0;
    expect(await cli(['unknown', '--json'])).toBe(0);
    const doc = JSON.parse(lines.join('\n')) as {
      cards: { cardRef: string; taps: number; seenAt: unknown[] }[];
    };
    expect(doc.cards.find((c) => c.cardRef === Y)?.taps).toBe(1);
    expect(doc.cards.some((c) => c.cardRef === X)).toBe(false);
    expect(doc).toEqual(
      await (
        await fetch(`${gw.adminUrl}/api/cards/unknown`, {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        })
      ).json(),
    );
    expect(await cli(['assign', Y, '--staff', 'nurse-3'])).toBe(0);
    expect(lines.at(-1)).toMatch(/1 visit\(s\) attributed, 0 refused tap\(s\) reported/);
    expect(await cli(['assign', X, '--staff', 'nurse-3'])).toBe(1);
    expect(lines.at(-1)).toMatch(/already registered to nurse-2/);

    // A CSV import that registers a card seen before as unknown resolves it the same way.
    const csv = join(tmp.dir, 'cards.csv');
    writeFileSync(csv, `staff,card_ref\nnurse-4,${Z}\nnurse-1,${card(1)}\n`);
    expect(await cli(['import', csv])).toBe(0);
    expect(lines.at(-1)).toMatch(/resolved earlier taps of 1 card\(s\) seen before as unknown: 1 visit\(s\)/);

    // The running gateway forwards what the CLI queued (its forwarder polls the shared outbox).
    await waitUntil(() => attributedOf(Y).length === 1 && attributedOf(Z).length === 1, 15_000);
    expect(attributedOf(Y)[0]).toMatchObject({ visitId: 'vy', staffRef: 'nurse-3', attributedBy: 'cli' });
    expect(attributedOf(Z)[0]).toMatchObject({
      visitId: 'vz',
      staffRef: 'nurse-4',
      attributedBy: 'cards-import',
    });

    // An explicit re-assignment: the card is nurse-9's from now on; nurse-2's visits stay hers.
    const re = await post(gw, `/api/cards/${X}/assign`, { staffRef: 'nurse-9', reassign: true });
    expect(re).toMatchObject({ status: 200, body: { registry: 'reassigned', attributed: { events: 0 } } });
    await send([tapEvent(R, 9, { card: X, decision: 'start', visitId: 'v3' })]);
    await waitUntil(() => backend.received().some((e) => e.idempotencyKey === `vt1:${R}:9:started`), 15_000);
    expect(backend.received().find((e) => e.idempotencyKey === `vt1:${R}:9:started`)).toMatchObject({
      staffRef: 'nurse-9',
      anomalies: [],
    });
    expect(attributedOf(X)).toHaveLength(3);
    const after = (await adminGet(gw, `/api/visits?state=recent&readerId=${R}`)).body as typeof visits;
    expect(after.visits.filter((v) => ['v1', 'v2'].includes(v.visitId)).map((v) => v.staffRef)).toEqual([
      'nurse-2',
      'nurse-2',
    ]);

    // Every attribution arrived after its visit, once; nothing was delivered twice.
    const check = checkAttributions(backend.received());
    expect(check).toEqual({ summary: '5 attributions', failures: [] });
    expect(backend.duplicates).toBe(0);
    expect(backend.conflicts).toBe(0);
    expect(backend.invalidBatches).toBe(0);
  });
});
