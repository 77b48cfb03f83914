import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  ConsoleFeedback,
  createCardReader,
  createDevice,
  createFeedback,
  DriverUnavailableError,
  parseDeviceSettings,
  SimulatedCardReader,
  SimulatedFeedback,
} from '../../device/index.js';
import { systemClock } from '../../protocol/index.js';
import { FLEET_KEY, settings, silentLogger, tempDir, waitFor } from './helpers.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..');
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function problems(raw: unknown): string[] {
  try {
    parseDeviceSettings(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('device config', () => {
  it('applies documented defaults', () => {
    const s = parseDeviceSettings({
      readerId: 'r1',
      dataDir: '/tmp/x',
      fleetKey: FLEET_KEY,
      mqtt: { url: 'mqtt://h' },
    });
    expect(s.mqtt.protocolVersion).toBe(4);
    expect(s.visit).toEqual({ repeatWindowMs: 10_000, maxOpenMs: 12 * 3_600_000 });
    expect(s.reader).toEqual({ driver: 'simulated' });
    expect(s.journal.capacity).toBe(100_000);
  });

  it('reports every problem at once, each naming the field and the fix', () => {
    const p = problems({
      readerId: 'bad id',
      mqtt: { url: 'http://x', protocolVersion: 3 },
      reader: { driver: 'usb' },
    });
    expect(p.length).toBeGreaterThanOrEqual(5);
    const byField = (f: string) => p.find((x) => x.startsWith(`${f}:`));
    expect(byField('readerId')).toMatch(/fix: set "readerId"/);
    expect(byField('dataDir')).toMatch(/fix: set "dataDir"/);
    expect(byField('fleetKey')).toMatch(/fix:/);
    expect(byField('mqtt.url')).toMatch(/mqtts:\/\/.*fix: set "mqtt.url"/);
    expect(byField('mqtt.protocolVersion')).toBeDefined();
    expect(byField('reader.driver')).toMatch(/fix: set "reader.driver" to "simulated" or "nfc-pcsc"/);
  });

  it('cross-field rules: reader-led needs nfc-pcsc; TLS cert and key together', () => {
    const base = { readerId: 'r1', dataDir: '/tmp/x', fleetKey: FLEET_KEY };
    expect(problems({ ...base, mqtt: { url: 'mqtt://h' }, feedback: { driver: 'reader-led' } })[0]).toMatch(
      /feedback.driver: "reader-led" needs reader.driver "nfc-pcsc"/,
    );
    expect(problems({ ...base, mqtt: { url: 'mqtts://h', cert: '/c.pem' } })[0]).toMatch(
      /mqtt.cert \/ mqtt.key/,
    );
  });
});

describe('driver factory', () => {
  const deps = { logger: silentLogger, clock: systemClock };

  it('builds the simulated and console drivers without loading native modules', async () => {
    expect(await createCardReader({ driver: 'simulated' }, deps)).toBeInstanceOf(SimulatedCardReader);
    expect(await createFeedback({ driver: 'simulated' }, deps)).toBeInstanceOf(SimulatedFeedback);
    expect(await createFeedback({ driver: 'console' }, deps)).toBeInstanceOf(ConsoleFeedback);
  });

  it('a configured but unusable driver gives a clear error naming the fix', async () => {
    const simulated = new SimulatedCardReader();
    await expect(createFeedback({ driver: 'reader-led' }, { ...deps, reader: simulated })).rejects.toThrow(
      /driver "reader-led".*cannot send escape commands.*Fix: use reader.driver "nfc-pcsc"/,
    );
    const err = await createFeedback(
      { driver: 'johnny-five', ioPlugin: 'no-such-io-plugin', pins: { green: 1, red: 2 } },
      deps,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverUnavailableError);
    expect((err as Error).message).toMatch(/no-such-io-plugin.*npm install no-such-io-plugin/);
  });

  it('loads the nfc-pcsc driver lazily and it reports no reader when pcscd is absent', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const reader = await createCardReader(
      { driver: 'nfc-pcsc', pcscdSocket: join(dir, 'no-pcscd.comm') },
      deps,
    );
    expect(reader.attached).toBe(false);
    expect(typeof (reader as unknown as { escape?: unknown }).escape).toBe('function');
  });
});

describe('visittag-device CLI', () => {
  const bin = join(ROOT, 'bin', 'visittag-device.js');

  it('--help, and an invalid config exits 78 naming the field and fix', async () => {
    const help = await run(process.execPath, [bin, '--help']);
    expect(help.stdout).toMatch(/visittag-device run/);
    expect(help.stdout).toMatch(/visittag-device status/);
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const cfg = join(dir, 'bad.json');
    writeFileSync(
      cfg,
      JSON.stringify({ readerId: 'r1', dataDir: dir, fleetKey: 'short', mqtt: { url: 'mqtt://h' } }),
    );
    const res = await run(process.execPath, [bin, 'run', '--config', cfg]).catch((e: unknown) => e);
    expect((res as { code: number }).code).toBe(78);
    expect((res as { stderr: string }).stderr).toMatch(/fleetKey: .*fix: set "fleetKey"/);
  });

  it('status reads the journal: depth, oldest unacked, last ack, open visits, clock', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const config = settings(dir);
    const reader = new SimulatedCardReader();
    const device = createDevice({
      config,
      logger: silentLogger,
      cardReader: reader,
      feedback: new SimulatedFeedback(),
      clockSynced: () => false,
    });
    let taps = 0;
    device.on('tap', () => taps++);
    await device.start();
    reader.tap('04A1B2C3');
    reader.tap('DEADBEEF');
    await waitFor(() => taps === 2, 5_000, 'taps');
    await device.stop();
    const cfg = join(dir, 'device.json');
    writeFileSync(cfg, JSON.stringify({ ...config, logLevel: 'silent' }));
    const env = { ...process.env, RUNTIME_DIRECTORY: dir };
    const out = await run(process.execPath, [bin, 'status', '--config', cfg, '--json'], { env });
    const st = JSON.parse(out.stdout) as {
      journal: {
        depth: number;
        lastSeq: number;
        lastAckedSeq: number;
        openVisits: number;
        oldestUnacked: { seq: number; synced: boolean };
      };
      service: { running: boolean };
    };
    expect(st.journal).toMatchObject({ depth: 2, lastSeq: 2, lastAckedSeq: 0, openVisits: 2 });
    expect(st.journal.oldestUnacked).toMatchObject({ seq: 1, synced: false });
    expect(st.service.running).toBe(false);
    const human = await run(process.execPath, [bin, 'status', '--config', cfg], { env });
    expect(human.stdout).toMatch(/unacknowledged events: 2 of 100000/);
  });
});
