import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { encode, topics } from '../../protocol/index.js';
import {
  ADMIN_TOKEN,
  adminGet,
  batchOf,
  card,
  connectReader,
  silent,
  tempDir,
  testConfig,
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
    expect(gw.db.prepare('SELECT staff_ref FROM cards WHERE card_ref = ?').pluck().get(card(2))).toBe(
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
