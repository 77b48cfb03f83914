/**
 * The reconnect storm's admission through a real gateway (issue 15), on loopback:
 * - a gateway admitting one connection a second with no room to park refuses the rest with the busy
 *   CONNACK; real devices take the hint (short retries, no back-off growth: their reconnect attempt counter
 *   never rises) and every tap of every device ends in gateway.db exactly once, journals empty;
 * - connections over the rate that can wait are parked and all get in without a single refusal;
 * - a reader that proved itself (verified credential cached, kept across a restart) is refused at once when
 *   revoked, also while others wait parked, and the revocation purges its cached credential.
 * Nothing here asserts a duration.
 */
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { createDevice, SimulatedCardReader, SimulatedFeedback } from '../../device/index.js';
import type { Device } from '../../device/index.js';
import type { Gateway } from '../../gateway/index.js';
import { settings as deviceSettings, silentLogger, tempDir as deviceTempDir } from '../device/helpers.js';
import { dbOf, PASSWORD, waitUntil } from '../gateway/helpers.js';
import type { AdmissionSettings } from '../../gateway/src/broker/admission.js';
import { admissionGateway } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const gateway = (admission: Partial<AdmissionSettings>, perSecond: number, burst: number): Promise<Gateway> =>
  admissionGateway(cleanups, admission, perSecond, burst);

const refusedMetric = (gw: Gateway, reason: string): number => {
  const m = new RegExp(`^visittag_mqtt_connections_refused_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(
    gw.metrics.render(),
  );
  return m ? Number(m[1]) : 0;
};

/** One CONNECT with MQTT.js (no reconnect): 'ok' or the CONNACK refusal code, -1 for a bare close. */
function tryConnect(port: number, readerId: string): Promise<{ code: number; close: () => void }> {
  return new Promise((resolve) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      clientId: readerId,
      username: readerId,
      password: PASSWORD,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
    });
    let code = -1;
    c.on('error', (err) => {
      code = Number((err as { code?: unknown }).code ?? -1);
    });
    c.once('connect', () => resolve({ code: 0, close: () => c.end(true) }));
    c.once('close', () => resolve({ code, close: () => c.end(true) }));
  });
}

describe('reconnect storm admission', () => {
  it('busy refusals: devices retry on the hint without growing their back-off; every tap stored once', async () => {
    // one connection a second, nobody may wait: every other connection is refused busy
    const gw = await gateway({ adaptive: false, parkMs: 100, maxParked: 0 }, 1, 1);
    const port = gw.mqttPort ?? 0;
    const N = 4;
    const TAPS = 5;
    const devices: { id: string; device: Device; maxAttempt: number }[] = [];
    for (let i = 0; i < N; i++) {
      const id = `storm-dev-${i}`;
      await gw.registry.addReader({ readerId: id, password: PASSWORD, clientRef: null });
      const { dir, cleanup } = deviceTempDir('vt-storm-dev-');
      cleanups.push(cleanup);
      const reader = new SimulatedCardReader();
      const device = createDevice({
        config: deviceSettings(dir, {
          readerId: id,
          mqttUrl: `mqtt://127.0.0.1:${port}`,
          mqtt: { url: `mqtt://127.0.0.1:${port}`, username: id, password: PASSWORD },
          uplink: {
            batchSize: 100,
            window: 4,
            ackTimeoutMs: 2_000,
            // a blind back-off would grow towards a minute: the busy hint keeps the retries short
            backoff: { baseMs: 100, capMs: 60_000 },
            statusIntervalMs: 60_000,
          },
          visit: { repeatWindowMs: 0, maxOpenMs: 12 * 3_600_000 },
        }),
        logger: silentLogger,
        cardReader: reader,
        feedback: new SimulatedFeedback({ maxRecords: 100 }),
        clockSynced: () => true,
      });
      cleanups.push(() => device.stop());
      const entry = { id, device, maxAttempt: 0 };
      devices.push(entry);
      await device.start();
      for (let t = 0; t < TAPS; t++) reader.tap((0x20000000 + i * 16 + t).toString(16).toUpperCase());
    }
    const sample = () => {
      for (const d of devices)
        d.maxAttempt = Math.max(d.maxAttempt, d.device.status().uplink?.reconnectAttempt ?? 0);
    };
    await waitUntil(() => {
      sample();
      return devices.every((d) => d.device.status().queueDepth === 0);
    }, 60_000);
    const busyRetries = devices.reduce((s, d) => s + (d.device.status().uplink?.busyRetries ?? 0), 0);
    expect(refusedMetric(gw, 'busy')).toBeGreaterThan(0);
    expect(busyRetries).toBeGreaterThan(0);
    expect(devices.map((d) => d.maxAttempt)).toEqual(devices.map(() => 0));
    const db = dbOf(gw);
    for (const d of devices) {
      const rows = db.prepare('SELECT seq FROM events WHERE reader_id = ? ORDER BY seq').pluck().all(d.id);
      expect(rows).toEqual(Array.from({ length: TAPS }, (_, k) => k + 1));
    }
  });

  it('connections over the rate that can wait are parked and all admitted, none refused', async () => {
    const gw = await gateway({ adaptive: true, parkMs: 20_000, maxParked: 1_000 }, 5, 2);
    const port = gw.mqttPort ?? 0;
    const ids = Array.from({ length: 12 }, (_, i) => `storm-park-${i}`);
    for (const id of ids) await gw.registry.addReader({ readerId: id, password: PASSWORD, clientRef: null });
    const results = await Promise.all(ids.map((id) => tryConnect(port, id)));
    for (const r of results) r.close();
    expect(results.map((r) => r.code)).toEqual(ids.map(() => 0));
    for (const reason of ['rate', 'busy', 'park-timeout']) expect(refusedMetric(gw, reason)).toBe(0);
  });

  it('a revoked reader is refused at once even with its credential cached, and the cache entry is purged', async () => {
    const gw = await gateway({ adaptive: false, parkMs: 20_000, maxParked: 1_000 }, 2, 2);
    const port = gw.mqttPort ?? 0;
    await gw.registry.addReader({ readerId: 'storm-rev', password: PASSWORD, clientRef: null });
    const first = await tryConnect(port, 'storm-rev');
    expect(first.code).toBe(0);
    first.close();
    const cachedRows = () =>
      dbOf(gw).prepare('SELECT count(*) FROM reader_auth_cache WHERE reader_id = ?').pluck().get('storm-rev');
    const before = cachedRows();
    gw.registry.revokeReader('storm-rev');
    // others wait parked while the revoked reader tries again: it is refused (not authorised), not admitted
    const others = ['storm-o1', 'storm-o2', 'storm-o3'];
    for (const id of others)
      await gw.registry.addReader({ readerId: id, password: PASSWORD, clientRef: null });
    const [rev, ...rest] = await Promise.all([
      tryConnect(port, 'storm-rev'),
      ...others.map((id) => tryConnect(port, id)),
    ]);
    for (const r of [rev, ...rest]) r?.close();
    expect(rev?.code).toBe(5);
    expect(rest.map((r) => r.code)).toEqual(others.map(() => 0));
    expect(refusedMetric(gw, 'revoked')).toBe(1);
    expect(before).toBe(1); // it had proved itself: the verified credential was cached
    expect(cachedRows()).toBe(0); // the revocation purged it
  });
});
