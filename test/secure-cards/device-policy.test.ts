/**
 * "Not accepted" at the reader: where the secure-card policy of the reader's client refuses UID-only
 * cards, the gateway pushes `uidOnlyCards: refuse` with the reader's config, and the device refuses a
 * card that gave only its UID at once (rejected feedback, event rejected `uid-only-card`), without any
 * key. A card that carried a SUN message is decided as usual; the gateway verifies it.
 */
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevice, SimulatedFeedback, type TapReport } from '../../device/index.js';
import type { CardReader, CardReaderEvent, CardReaderEvents } from '../../device/src/ports/card-reader.js';
import type { Gateway } from '../../gateway/index.js';
import { writeFileSync } from 'node:fs';
import type { CardProof } from '../../protocol/index.js';
import { FLEET_KEY, settings, silentLogger } from '../device/helpers.js';
import { ADMIN_TOKEN, dbOf, PASSWORD, startGateway, tempDir, waitUntil } from '../gateway/helpers.js';
import { MASTER, personalisedCard, tapProof } from './helpers.js';

/** A card reader port the test drives: cards with or without a proof. */
class ScriptedReader implements CardReader {
  private readonly e = new EventEmitter();
  attached = false;
  start(): Promise<void> {
    this.attached = true;
    this.e.emit('attached', { name: 'scripted' });
    return Promise.resolve();
  }
  stop(): Promise<void> {
    this.attached = false;
    return Promise.resolve();
  }
  tap(uid: string, proof?: CardProof): void {
    this.e.emit('card', { uid, atMonoMs: Math.floor(performance.now()), ...(proof ? { proof } : {}) });
    this.e.emit('card-removed', { uid, atMonoMs: Math.floor(performance.now()) });
  }
  on<E extends CardReaderEvent>(event: E, l: (...args: CardReaderEvents[E]) => void): this {
    this.e.on(event, l as (...a: unknown[]) => void);
    return this;
  }
  off<E extends CardReaderEvent>(event: E, l: (...args: CardReaderEvents[E]) => void): this {
    this.e.off(event, l as (...a: unknown[]) => void);
    return this;
  }
}

const R = 'rdr-strict';
const SECURE_UID = '04F1F2F3F4F5F6';

describe('reader-side refusal of UID-only cards (pushed policy)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let gw: Gateway;

  beforeAll(async () => {
    tmp = tempDir('vt-secure-policy-');
    const keyFile = join(tmp.dir, 'master.key');
    writeFileSync(keyFile, JSON.stringify({ version: 1, masterKey: MASTER.toString('hex') }), {
      mode: 0o600,
    });
    gw = await startGateway(join(tmp.dir, 'gw'), {
      fleetKey: FLEET_KEY,
      secureCards: {
        keyFile,
        policy: { uidOnly: 'accept', clients: { 'client-strict': { uidOnly: 'refuse' } } },
      },
    });
    await gw.registry.addReader({
      readerId: R,
      password: PASSWORD,
      clientRef: 'client-strict',
      label: 'Flat 9',
    });
  });
  afterAll(async () => {
    await gw.stop();
    tmp.cleanup();
  });

  it('a UID-only card gets "not accepted" at once; a secure card is accepted', async () => {
    const reader = new ScriptedReader();
    const feedback = new SimulatedFeedback({ maxRecords: 50 });
    const device = createDevice({
      config: settings(join(tmp.dir, 'device'), {
        readerId: R,
        mqtt: { url: `mqtt://127.0.0.1:${gw.mqttPort ?? 0}`, username: R, password: PASSWORD },
        visit: { repeatWindowMs: 0, maxOpenMs: 12 * 3_600_000 },
      }),
      logger: silentLogger,
      cardReader: reader,
      feedback,
      clockSynced: () => true,
    });
    const taps: TapReport[] = [];
    device.on('tap', (t) => taps.push(t));
    await device.start();
    try {
      await waitUntil(() => device.status().connected, 10_000);
      const res = await fetch(`${gw.adminUrl}/api/readers/${R}/config`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: '{}',
      });
      expect(res.status).toBe(202);
      await waitUntil(() => device.status().configVersion === 1, 10_000);

      reader.tap('11223344'); // a plain card
      await waitUntil(() => taps.length === 1, 10_000);
      expect(taps[0]?.decision).toBe('rejected');
      expect(feedback.signals.at(-1)?.pattern).toBe('rejected');

      const card = await personalisedCard(SECURE_UID);
      reader.tap(SECURE_UID, await tapProof(card));
      await waitUntil(() => taps.length === 2, 10_000);
      expect(taps[1]?.decision).toBe('start');
      expect(feedback.signals.at(-1)?.pattern).toBe('visit-started');

      await waitUntil(() => device.status().queueDepth === 0, 15_000);
      const rows = dbOf(gw)
        .prepare('SELECT seq, assurance, verdict, code FROM secure_taps WHERE reader_id = ? ORDER BY seq')
        .all(R);
      expect(rows).toEqual([
        { seq: 1, assurance: 'uid-only', verdict: 'refused', code: 'uid-only-refused' },
        { seq: 2, assurance: 'secure', verdict: 'accepted', code: 'secure' },
      ]);
      // the device's own refusal is kept (no visit) and reported as an anomaly
      const kinds = () =>
        dbOf(gw).prepare('SELECT kind FROM anomalies WHERE reader_id = ?').pluck().all(R) as string[];
      await waitUntil(() => kinds().includes('uid-only-card'), 10_000);
    } finally {
      await device.stop();
    }
  });

  it('without a refusing policy the pushed config omits the field (older readers keep accepting it)', async () => {
    await gw.registry.addReader({
      readerId: 'rdr-lax',
      password: PASSWORD,
      clientRef: 'client-x',
      label: 'x',
    });
    const res = await fetch(`${gw.adminUrl}/api/readers/rdr-lax/config`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(202);
    const got = await fetch(`${gw.adminUrl}/api/readers/rdr-lax/config`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const body = (await got.json()) as { config: Record<string, unknown> };
    expect(body.config.readerId).toBe('rdr-lax');
    expect(body.config).not.toHaveProperty('uidOnlyCards');
    const strict = await fetch(`${gw.adminUrl}/api/readers/${R}/config`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(((await strict.json()) as { config: Record<string, unknown> }).config.uidOnlyCards).toBe('refuse');
  });
});
