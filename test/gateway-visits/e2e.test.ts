/**
 * End to end through the real gateway: MQTT in (embedded broker, port 0), ack out, visits forwarded to
 * the simulator's fake planning backend, and the visit admin routes over the real admin HTTP server.
 */
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/index.js';
import { startFakeBackend } from '../../simulator/fake-backend.js';
import type { FakeBackend } from '../../simulator/fake-backend.js';
import {
  ADMIN_TOKEN,
  AckCollector,
  PASSWORD,
  card,
  connectReader,
  startGateway,
  tapEvent,
  tempDir,
  waitUntil,
} from '../gateway/helpers.js';

const SECRET = 'e2e-webhook-secret-0123456789';
let gw: Gateway | undefined;
let backend: FakeBackend | undefined;
let client: MqttClient | undefined;
let cleanup: (() => void) | undefined;
afterEach(async () => {
  await client?.endAsync(true);
  await gw?.stop();
  await backend?.close();
  cleanup?.();
  [gw, backend, client, cleanup] = [undefined, undefined, undefined, undefined];
});

async function admin(
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${gw?.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

describe('gateway end to end (visits)', () => {
  it('forwards a tapped visit once, and a manual close over the admin API', async () => {
    backend = await startFakeBackend({ secret: SECRET });
    const t = tempDir('vt-visits-e2e-');
    cleanup = t.cleanup;
    gw = await startGateway(t.dir, {
      backend: {
        url: backend.url,
        secret: SECRET,
        timeoutMs: 2000,
        batchMax: 50,
        backoff: { baseMs: 20, capMs: 200 },
      },
    });
    await gw.registry.addReader({ readerId: 'home-1', password: PASSWORD, clientRef: 'client-1' });
    gw.registry.addCard({ cardRef: card(1), staffRef: 'staff-anna' });
    client = await connectReader(gw.mqttPort ?? 0, 'home-1');
    const acks = await AckCollector.attach(client, 'home-1');
    const events = [
      tapEvent('home-1', 1, { card: card(1), decision: 'start', visitId: 'v1' }),
      tapEvent('home-1', 2, { card: card(1), decision: 'stop', visitId: 'v1' }),
      tapEvent('home-1', 3, { card: card(1), decision: 'start', visitId: 'v2' }),
    ];
    const batch = {
      schemaVersion: 1 as const,
      readerId: 'home-1',
      sentAt: { wallMs: Date.UTC(2026, 10, 23, 9), bootId: 'boot-1', monoMs: 10_000, synced: true },
      events,
    };
    await acks.publish('home-1', batch);
    await acks.publish('home-1', batch); // a resend: no duplicates downstream
    await acks.waitFor((a) => a.upTo === 3);
    const b = backend;
    await waitUntil(() => b.received().length === 3);
    expect(b.received().map((e) => e.idempotencyKey)).toEqual([
      'vt1:home-1:1:started',
      'vt1:home-1:2:ended',
      'vt1:home-1:3:started',
    ]);
    expect(b.received()[0]).toMatchObject({ clientRef: 'client-1', staffRef: 'staff-anna' });

    const open = await admin('GET', '/api/visits?state=open');
    expect(open).toMatchObject({ status: 200, body: { visits: [{ visitId: 'v2', state: 'open' }] } });
    const closed = await admin('POST', '/api/visits/v2/close', { reason: 'forgot to tap out' });
    expect(closed.status).toBe(200);
    await waitUntil(() => b.received().length === 5);
    expect(b.received().slice(3)).toMatchObject([
      {
        type: 'visit.ended',
        idempotencyKey: 'vt1:manual:v2',
        endReason: 'manual',
        closeReason: 'forgot to tap out',
      },
      { type: 'visit.anomaly', anomaly: 'manual-close' },
    ]);
    expect(b.duplicates).toBe(0);
    expect(b.rejectedSignatures).toBe(0);
    const metrics = await fetch(`${gw.adminUrl}/metrics`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(await metrics.text()).toMatch(/visittag_forward_delivered_total 5/);
  });
});
