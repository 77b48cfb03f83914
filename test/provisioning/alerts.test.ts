import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { DEFAULT_ALERT_THRESHOLDS, deriveAlerts } from '../../gateway/src/fleet/alerts.js';
import { encode, systemClock, topics, type Clock } from '../../protocol/index.js';
import { adminGet, connectReader, silent, tempDir, testConfig, waitUntil } from '../gateway/helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface AlertRow {
  readerId: string;
  kind: string;
  detail: string;
}

describe('reader alerts', () => {
  it('derives nothing for a healthy or revoked reader', () => {
    const healthy = {
      readerId: 'r1',
      clientRef: 'c',
      revoked: false,
      connected: true,
      lastSeenMs: 1_000,
      clockSynced: true,
      status: {
        state: 'online',
        queueDepth: 0,
        oldestUnackedAgeMs: null,
        readerAttached: true,
        freeStorageBytes: 10e9,
        faults: [],
        clock: { synced: true },
      },
    };
    expect(deriveAlerts(healthy, 2_000, DEFAULT_ALERT_THRESHOLDS)).toEqual([]);
    const sick = { ...healthy, revoked: true, status: { ...healthy.status, readerAttached: false } };
    expect(deriveAlerts(sick, 2_000, DEFAULT_ALERT_THRESHOLDS)).toEqual([]);
  });

  it('from a real status heartbeat: detached, unsynced, storage, queue; then offline; in the API and metrics', async () => {
    const tmp = tempDir('vt-alerts-');
    let offset = 0;
    const clock: Clock = { ...systemClock, now: () => Date.now() + offset };
    const gw: Gateway = createGateway({ config: testConfig(join(tmp.dir, 'gw')), clock, logger: silent });
    await gw.start();
    cleanups.push(async () => {
      await gw.stop();
      tmp.cleanup();
    });
    const { password } = await gw.registry.addReader({ readerId: 'r-home-50', clientRef: 'home-50' });
    const c = await connectReader(gw.mqttPort ?? 0, 'r-home-50', password);
    const now = Date.now();
    await c.publishAsync(
      topics.status('r-home-50'),
      encode('status', {
        schemaVersion: 1,
        readerId: 'r-home-50',
        state: 'online',
        firmware: '0.1.0',
        bootId: 'boot-1',
        at: { wallMs: now, monoMs: 5_000 },
        queueDepth: 75,
        oldestUnackedSeq: 3,
        oldestUnackedAgeMs: 20 * 60_000,
        lastAckedSeq: 2,
        journalCapacity: 100_000,
        clock: { synced: false, source: 'none' },
        readerAttached: false,
        freeStorageBytes: 10 * 1024 * 1024,
        configVersion: 0,
        configError: null,
        faults: ['reader-detached', 'storage-low', 'clock-unsynced'],
      }),
      { qos: 1, retain: true },
    );
    const kinds = async () =>
      ((await adminGet(gw, '/api/alerts')).body as { alerts: AlertRow[] }).alerts
        .filter((a) => a.readerId === 'r-home-50')
        .map((a) => a.kind)
        .sort();
    await waitUntil(async () => (await kinds()).length === 4, 10_000);
    expect(await kinds()).toEqual([
      'clock-unsynced',
      'queue-growing',
      'reader-detached',
      'storage-near-full',
    ]);
    expect(gw.metrics.render()).toContain('visittag_reader_alerts{kind="reader-detached"} 1');

    await c.endAsync();
    await waitUntil(
      async () => !((await adminGet(gw, '/api/readers/r-home-50')).body as { connected: boolean }).connected,
    );
    expect(await kinds()).not.toContain('offline');
    offset += DEFAULT_ALERT_THRESHOLDS.offlineAfterMs + 60_000;
    expect(await kinds()).toContain('offline');
    expect(gw.metrics.render()).toContain('visittag_reader_alerts{kind="offline"} 1');
  });
});
