/**
 * Pushed config beyond the allow-list: `logLevel` is applied at once to every module's logger (and
 * again after a restart, from the persisted config), `feedbackMode` changes what the feedback port
 * does; both are reported in the status.
 */
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createDevice, SimulatedCardReader, SimulatedFeedback } from '../../device/index.js';
import type { TapReport } from '../../device/index.js';
import { decode, encode, pseudonymiseCard, topics } from '../../protocol/index.js';
import type { PayloadInputOf, Status } from '../../protocol/index.js';
import { BrokerAndPeer, FLEET_KEY, settings, tempDir, waitFor } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface LogLine {
  level: number;
  msg: string;
  module?: string;
}

/** A pino logger at `level` whose lines are kept in memory. */
function capture(level: string): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines };
}

const UID_OK = '04A1B2C3D4E501';
const UID_UNKNOWN = '04A1B2C3D4E599';

function config(version: number, over: Partial<PayloadInputOf<'config'>>): Buffer {
  return encode('config', {
    schemaVersion: 1,
    readerId: 'reader-1',
    version,
    visit: { repeatWindowMs: 0, maxOpenMs: 12 * 3_600_000 },
    allowList: [pseudonymiseCard(UID_OK, FLEET_KEY)],
    revoked: [],
    ...over,
  });
}

async function start(dir: string, url: string, level: string) {
  const log = capture(level);
  const reader = new SimulatedCardReader();
  const feedback = new SimulatedFeedback();
  const device = createDevice({
    config: settings(dir, {
      mqttUrl: url,
      logLevel: 'info',
      uplink: { backoff: { baseMs: 20, capMs: 200 } },
    }),
    logger: log.logger,
    cardReader: reader,
    feedback,
    clockSynced: () => true,
  });
  cleanups.push(() => device.stop());
  const taps: TapReport[] = [];
  device.on('tap', (t) => taps.push(t));
  await device.start();
  return { device, reader, feedback, taps, lines: log.lines };
}

async function tap(d: { reader: SimulatedCardReader; taps: TapReport[] }, uid: string): Promise<void> {
  const n = d.taps.length;
  d.reader.tap(uid);
  await waitFor(() => d.taps.length === n + 1, 10_000, 'tap');
}

const shown = (f: SimulatedFeedback) => f.signals.map((s) => `${s.pattern}${s.sound ? '+sound' : ''}`);

describe('pushed logLevel and feedbackMode', () => {
  it('applied at once, reported in the retained status, and still in force after a restart without the gateway', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const net = new BrokerAndPeer();
    await net.start();
    cleanups.push(() => net.close());
    await net.bringUp();
    const peer = net.peer;
    if (!peer) throw new Error('no peer');
    const statuses: Status[] = [];
    await peer.subscribeAsync(topics.status('reader-1'), { qos: 1 });
    peer.on('message', (topic, payload) => {
      if (topic !== topics.status('reader-1')) return;
      const d = decode('status', 'reader-1', payload);
      if (d.ok) statuses.push(d.value);
    });

    const d = await start(dir, net.url, 'info');
    await waitFor(() => d.device.status().connected, 10_000, 'connected');
    expect(d.device.status()).toMatchObject({ logLevel: 'info', feedbackMode: 'normal' });
    await tap(d, UID_OK); // normal: with sound
    expect(shown(d.feedback)).toEqual(['visit-started+sound']);
    expect(d.lines.some((l) => l.level < 30)).toBe(false); // no debug lines at info

    // debug + quiet
    peer.publish(topics.config('reader-1'), config(1, { logLevel: 'debug', feedbackMode: 'quiet' }), {
      qos: 1,
      retain: true,
    });
    await waitFor(() => d.device.status().configVersion === 1, 10_000, 'config 1 applied');
    expect(d.device.status()).toMatchObject({ logLevel: 'debug', feedbackMode: 'quiet' });
    await waitFor(
      () => statuses.some((s) => s.state === 'online' && s.configVersion === 1 && s.logLevel === 'debug'),
      10_000,
      'status reports debug/quiet',
    );
    expect(statuses.at(-1)).toMatchObject({ feedbackMode: 'quiet' });
    // The same version again is ignored with a debug line, from the remote module: children follow.
    peer.publish(topics.config('reader-1'), config(1, { logLevel: 'debug', feedbackMode: 'quiet' }), {
      qos: 1,
    });
    await waitFor(
      () =>
        d.lines.some((l) => l.level === 20 && l.msg === 'config not newer; ignored' && l.module === 'remote'),
      10_000,
      'debug line',
    );
    d.feedback.signals.splice(0);
    await tap(d, UID_OK); // stop
    await tap(d, UID_UNKNOWN); // not on the allow-list
    expect(d.taps.slice(-2).map((t) => t.decision)).toEqual(['stop', 'rejected']);
    expect(shown(d.feedback)).toEqual(['visit-ended', 'rejected+sound']);

    // warn + silent
    peer.publish(topics.config('reader-1'), config(2, { logLevel: 'warn', feedbackMode: 'silent' }), {
      qos: 1,
      retain: true,
    });
    await waitFor(() => d.device.status().configVersion === 2, 10_000, 'config 2 applied');
    const linesAt = d.lines.length;
    d.feedback.signals.splice(0);
    await tap(d, UID_OK);
    await tap(d, UID_UNKNOWN);
    expect(shown(d.feedback)).toEqual(['visit-started', 'rejected']); // light only, but shown
    expect(d.lines.slice(linesAt).filter((l) => l.level < 40)).toEqual([]); // no info 'tap' lines
    await d.device.stop();
    await net.close();

    // Restart without the gateway: the persisted config is in force from the start.
    const again = await start(dir, 'mqtt://127.0.0.1:1', 'info');
    expect(again.device.status()).toMatchObject({
      configVersion: 2,
      logLevel: 'warn',
      feedbackMode: 'silent',
    });
    const before = again.lines.length;
    await tap(again, UID_OK);
    expect(again.taps[0]?.decision).toBe('stop');
    expect(shown(again.feedback)).toEqual(['visit-ended']);
    expect(again.lines.slice(before).filter((l) => l.level < 40)).toEqual([]);
  }, 60_000);
});
