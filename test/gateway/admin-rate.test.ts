import { connect as netConnect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { systemClock } from '../../protocol/index.js';
import {
  ADMIN_TOKEN,
  connectReader,
  dbOf,
  PASSWORD,
  silent,
  tempDir,
  testConfig,
  trackDataDir,
} from './helpers.js';

async function adminPost(
  gw: Gateway,
  path: string,
  body: unknown,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${gw.adminUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

describe('admin API: reader provisioning, move and revoke', () => {
  let gw: Gateway | undefined;
  let cleanup: (() => void) | undefined;
  afterEach(async () => {
    await gw?.stop();
    cleanup?.();
  });

  it('adds a reader (generated password works), moves it with history kept, revokes it and drops it', async () => {
    const tmp = tempDir();
    cleanup = tmp.cleanup;
    gw = createGateway({ config: testConfig(tmp.dir), logger: silent });
    trackDataDir(gw, tmp.dir);
    await gw.start();
    const created = await adminPost(gw, '/api/readers', { readerId: 'r-api', clientRef: 'client-a' });
    expect(created.status).toBe(201);
    const password = (created.body as { password: string }).password;
    expect(password).toHaveLength(43);
    expect((await adminPost(gw, '/api/readers', { readerId: 'r-api', clientRef: 'x' })).status).toBe(400);
    expect((await adminPost(gw, '/api/readers', { readerId: 'bad/id', clientRef: 'x' })).status).toBe(400);
    const c = await connectReader(gw.mqttPort ?? 0, 'r-api', password);
    expect((await adminPost(gw, '/api/readers/r-api/move', { clientRef: 'client-b' })).status).toBe(200);
    const history = dbOf(gw)
      .prepare('SELECT client_ref FROM reader_client_history WHERE reader_id = ? ORDER BY rowid')
      .pluck()
      .all('r-api');
    expect(history).toEqual(['client-a', 'client-b']);
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    expect((await adminPost(gw, '/api/readers/r-api/revoke', {})).status).toBe(200);
    await closed;
    expect(gw.registry.getReader('r-api')?.revokedAt).not.toBeNull();
    expect((await adminPost(gw, '/api/readers/nope/revoke', {})).status).toBe(404);
    await c.endAsync(true);
  });
});

describe('embedded broker: connection rate limit', () => {
  let gw: Gateway | undefined;
  let cleanup: (() => void) | undefined;
  afterEach(async () => {
    await gw?.stop();
    cleanup?.();
  });

  it('closes new connections beyond the token bucket at once; admitted ones work', async () => {
    const tmp = tempDir();
    cleanup = tmp.cleanup;
    // monotonic time frozen: the bucket never refills during the test, whatever the machine's speed
    const clock = { ...systemClock, monotonic: () => 0 };
    gw = createGateway({
      config: testConfig(tmp.dir, {
        mqtt: {
          mode: 'embedded',
          host: '127.0.0.1',
          port: 0,
          maxConnectionsPerSecond: 1,
          connectionBurst: 2,
        },
        // no waiting room: over the bucket is closed at once (parking and the busy CONNACK: test/storm)
        limits: { connectionAdmission: { adaptive: false, parkMs: 0, busyConnack: false } },
      }),
      logger: silent,
      clock,
    });
    await gw.start();
    await gw.registry.addReader({ readerId: 'r-rate', password: PASSWORD, clientRef: null });
    const c = await connectReader(gw.mqttPort ?? 0, 'r-rate'); // token 1
    const results = await Promise.all(
      Array.from(
        { length: 5 },
        () =>
          new Promise<'closed' | 'open'>((resolve) => {
            const s = netConnect(gw?.mqttPort ?? 0, '127.0.0.1');
            s.on('error', () => undefined);
            s.once('close', () => resolve('closed'));
            s.once('data', () => undefined);
            setTimeout(() => {
              resolve('open');
              s.destroy();
            }, 1500).unref();
          }),
      ),
    );
    expect(results.filter((r) => r === 'closed').length).toBeGreaterThanOrEqual(4); // 1 token left for 5
    expect(gw.metrics.render()).toMatch(/visittag_mqtt_connections_refused_total\{reason="rate"\} [4-5]/);
    await c.endAsync(true);
  });
});
