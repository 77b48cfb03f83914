/**
 * Personalise, then tap, end to end over the real stack: a real pcscd with vpcd, a blank virtual
 * NTAG 424 DNA, the `visittag-device personalise-card` CLI as a child process, then the device
 * (journal, feedback, MQTT uplink) with the nfc-pcsc driver and a real gateway with secureCards.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevice, SimulatedFeedback, type TapReport } from '../../device/index.js';
import { createNfcPcscReader } from '../../device/src/drivers/nfc-pcsc-reader.js';
import type { Gateway } from '../../gateway/index.js';
import { systemClock } from '../../protocol/index.js';
import { FLEET_KEY, settings, silentLogger } from '../device/helpers.js';
import { dbOf, PASSWORD, startGateway, tempDir, waitUntil } from '../gateway/helpers.js';
import { PcscdFixture, VPCD_READER_NAME } from '../pcsc/pcscd-fixture.js';
import { ATR_ISO14443_3, ATR_ISO14443_4, VirtualCard } from '../pcsc/virtual-card.js';
import { VirtualNtag424 } from '../pcsc/virtual-ntag424.js';
import { MASTER } from './helpers.js';

const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const SETTLE_MS = 1_200;
const UID = '04E1E2E3E4E5E6';
const R = 'rdr-secure-e2e';
const ROOT = join(import.meta.dirname, '..', '..');

const pcscd = new PcscdFixture();
let tmp: ReturnType<typeof tempDir>;
let gw: Gateway;
let keyFile: string;

function runCli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'device', 'main.ts'), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const kill = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, out });
    });
  });
}

const secureTaps = () =>
  dbOf(gw)
    .prepare(
      'SELECT seq, assurance, verdict, code, counter FROM secure_taps WHERE reader_id = ? ORDER BY seq',
    )
    .all(R) as Array<{
    seq: number;
    assurance: string;
    verdict: string;
    code: string;
    counter: number | null;
  }>;

beforeAll(async () => {
  await pcscd.setup();
  tmp = tempDir('vt-secure-e2e-');
  keyFile = join(tmp.dir, 'master.key');
  writeFileSync(keyFile, JSON.stringify({ version: 1, masterKey: MASTER.toString('hex') }), { mode: 0o600 });
  gw = await startGateway(join(tmp.dir, 'gw'), {
    fleetKey: FLEET_KEY,
    secureCards: { keyFile, policy: { uidOnly: 'accept', clone: 'refuse' } },
  });
  await gw.registry.addReader({ readerId: R, password: PASSWORD, clientRef: 'client-1', label: 'Flat 1' });
}, 150_000);

afterAll(async () => {
  await gw.stop();
  await pcscd.teardown();
  tmp.cleanup();
});

describe('personalise-card CLI, then taps through device and gateway', () => {
  it('a blank card is personalised by the CLI; its taps arrive secure and accepted; a UID copy is refused', async () => {
    const chip = new VirtualNtag424(Buffer.from(UID, 'hex'));
    const blank = new VirtualCard({ port: pcscd.port, uid: UID, atr: ATR_ISO14443_4, applet: chip });
    await blank.insert();
    const cli = await runCli([
      'personalise-card',
      '--master-key-file',
      keyFile,
      '--reader',
      VPCD_READER_NAME,
      '--timeout',
      '30',
    ]);
    expect(cli.out).toContain('now gives a fresh SUN message');
    expect(cli.code).toBe(0);
    expect(cli.out).not.toContain(UID);
    expect(chip.sdm).not.toBeNull();
    expect(chip.counter).toBe(1); // the CLI's check read
    await blank.remove();
    await pause(SETTLE_MS);

    const feedback = new SimulatedFeedback({ maxRecords: 100 });
    const reader = createNfcPcscReader({
      logger: silentLogger,
      clock: systemClock,
      readerName: VPCD_READER_NAME,
      pollMs: 100,
      debounceMs: 300,
      rescanMs: 1_000,
    });
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
      await waitUntil(() => reader.attached, 10_000);
      const tapOnce = async (card: VirtualCard, n: number) => {
        await card.insert();
        await waitUntil(() => taps.length >= n, 10_000);
        await card.remove();
        await pause(SETTLE_MS);
      };
      await tapOnce(new VirtualCard({ port: pcscd.port, uid: UID, atr: ATR_ISO14443_4, applet: chip }), 1);
      await tapOnce(new VirtualCard({ port: pcscd.port, uid: UID, atr: ATR_ISO14443_4, applet: chip }), 2);
      // a copy: a plain card that reports the same UID
      await tapOnce(new VirtualCard({ port: pcscd.port, uid: UID, atr: ATR_ISO14443_3 }), 3);
      await waitUntil(() => secureTaps().length === 3 && device.status().queueDepth === 0, 15_000);
      expect(taps.map((t) => t.decision)).toEqual(['start', 'stop', 'start']);
      expect(secureTaps()).toEqual([
        { seq: 1, assurance: 'secure', verdict: 'accepted', code: 'secure', counter: 2 },
        { seq: 2, assurance: 'secure', verdict: 'accepted', code: 'secure', counter: 3 },
        { seq: 3, assurance: 'uid-only', verdict: 'refused', code: 'clone-suspect', counter: null },
      ]);
      const stored = dbOf(gw)
        .prepare('SELECT seq FROM events WHERE reader_id = ? ORDER BY seq')
        .pluck()
        .all(R);
      expect(stored).toEqual([1, 2]);
    } finally {
      await device.stop();
    }
  });
});
