import { join } from 'node:path';
import { createDevice, SimulatedCardReader, SimulatedFeedback } from '../../device/index.js';
import type { Device, TapReport } from '../../device/index.js';
import { parseDeviceSettings } from '../../device/src/config.js';
import { silentLogger } from '../device/helpers.js';
import { PASSWORD, waitUntil } from '../gateway/helpers.js';

/** A real device with a simulated card reader, connected to a gateway's broker on loopback. */
export interface TestReader {
  id: string;
  device: Device;
  reader: SimulatedCardReader;
  /** Every tap the device journalled and signalled, in order. */
  taps: TapReport[];
  /** Taps a card and waits until the device has journalled it. */
  tap(uid: string): Promise<void>;
  /** Waits until the journal is empty (everything acknowledged) and the device is connected. */
  acked(timeoutMs?: number): Promise<unknown>;
  /** The device's last journalled seq. */
  lastSeq(): number;
}

/**
 * Starts a device for reader `id` with its journal in `dir/id`; the device is registered in `stops` so the test's
 * afterAll stops it. Quick uplink back-off, no repeat window, a synced clock.
 */
export async function startTestReader(o: {
  id: string;
  dir: string;
  mqttPort: number;
  stops: (() => Promise<void>)[];
}): Promise<TestReader> {
  const reader = new SimulatedCardReader();
  const device = createDevice({
    config: parseDeviceSettings({
      readerId: o.id,
      dataDir: join(o.dir, o.id),
      fleetKey: 'test-fleet-key-0123456789',
      mqtt: { url: `mqtt://127.0.0.1:${o.mqttPort}`, username: o.id, password: PASSWORD },
      reader: { driver: 'simulated' },
      feedback: { driver: 'simulated' },
      logLevel: 'silent',
      visit: { repeatWindowMs: 0 },
      uplink: { backoff: { baseMs: 20, capMs: 300 }, ackTimeoutMs: 1_000 },
    }),
    logger: silentLogger,
    cardReader: reader,
    feedback: new SimulatedFeedback(),
    clockSynced: () => true,
  });
  const taps: TapReport[] = [];
  device.on('tap', (t) => taps.push(t));
  await device.start();
  o.stops.push(() => device.stop());
  return {
    id: o.id,
    device,
    reader,
    taps,
    async tap(uid) {
      const before = taps.length;
      reader.tap(uid);
      await waitUntil(() => taps.length === before + 1, 10_000);
    },
    acked: (timeoutMs = 30_000) =>
      waitUntil(() => device.status().queueDepth === 0 && device.status().connected, timeoutMs),
    lastSeq: () => device.status().lastSeq,
  };
}

/** Each reader taps `n` rounds, cycling over three cards `<prefix>000…0`, `…1`, `…2` (7-byte UIDs). */
export async function tapRounds(readers: readonly TestReader[], n: number, prefix: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    for (const r of readers) await r.tap(`${prefix}${(i % 3).toString(16).padStart(10, '0')}`);
  }
}
