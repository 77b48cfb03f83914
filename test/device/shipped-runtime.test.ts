/**
 * The firmware as a Pi runs it: the esbuild bundle (npm run build:device) under the V8 flags of the
 * shipped systemd unit (a 16 MB old generation, no optimising compiler). It must take the largest
 * pushed config the protocol allows, journal and deliver taps, and stop cleanly, all inside that heap.
 * No memory figure is asserted here: the benchmark measures RSS (npm run bench -- --only=device-rss).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleDevice } from '../../device/scripts/bundle.js';
import { unitNodeFlags } from '../../device/scripts/unit.js';
import { LIMITS, decode, encode, pseudonymiseCard, topics } from '../../protocol/index.js';
import { BrokerAndPeer, FLEET_KEY, tempDir, waitFor } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

const uid = (i: number) => `04a1b2c3d4${i.toString(16).padStart(4, '0')}`;

/** The longest allow-list whose config message still fits the protocol's payload limit. */
function largestConfig(version: number, allowed: string[]) {
  const list = [...allowed];
  for (let i = 0; list.length < LIMITS.maxAllowList; i++)
    list.push(pseudonymiseCard(`feed${i.toString(16).padStart(10, '0')}`, FLEET_KEY));
  const make = (n: number) => ({
    schemaVersion: 1 as const,
    readerId: 'reader-1',
    version,
    visit: { repeatWindowMs: 0, maxOpenMs: 12 * 3_600_000 },
    allowList: list.slice(0, n),
    revoked: [],
    feedbackMode: 'normal' as const,
    logLevel: 'warn' as const,
  });
  let lo = allowed.length;
  let hi = list.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (JSON.stringify(make(mid)).length <= LIMITS.maxPayloadBytes) lo = mid;
    else hi = mid - 1;
  }
  return make(lo);
}

describe('the shipped runtime: bundle + the systemd unit’s V8 flags', () => {
  const artifacts = join(ROOT, '.vitest-artifacts', `shipped-bundle-${process.pid}`);
  let entry = '';
  beforeAll(async () => {
    mkdirSync(artifacts, { recursive: true });
    entry = await bundleDevice(artifacts); // inside the project, so node_modules resolves
  });
  afterAll(() => rmSync(artifacts, { recursive: true, force: true }));

  it('takes the largest allowed config, journals and delivers 600 taps, stops with exit 0', async () => {
    const flags = unitNodeFlags();
    expect(flags).toContain('--lite-mode');
    const net = new BrokerAndPeer();
    await net.start();
    await net.bringUp('reader-1');
    const peer = net.peer;
    if (!peer) throw new Error('no peer');
    const statuses: { configVersion: number; queueDepth: number }[] = [];
    await peer.subscribeAsync(topics.status('reader-1'), { qos: 1 });
    peer.on('message', (topic, payload) => {
      if (topic !== topics.status('reader-1')) return;
      const d = decode('status', 'reader-1', payload);
      if (d.ok && d.value.state === 'online') statuses.push(d.value);
    });
    const dir = tempDir('vt-shipped-');
    const cfgPath = join(dir.dir, 'device.json');
    writeFileSync(
      cfgPath,
      JSON.stringify({
        readerId: 'reader-1',
        dataDir: dir.dir,
        fleetKey: FLEET_KEY,
        mqtt: { url: net.url, username: 'reader-1', password: 'pw-reader-1-0123456789abcdef' },
        reader: { driver: 'simulated' },
        feedback: { driver: 'simulated' },
        uplink: { statusIntervalMs: 1_000 },
        logLevel: 'warn',
      }),
    );
    const child = spawn(
      process.execPath,
      [...flags, entry, 'run', '--config', cfgPath, '--sim-control', 'stdin'],
      {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, RUNTIME_DIRECTORY: dir.dir },
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    const lines: Record<string, unknown>[] = [];
    createInterface({ input: child.stdout }).on('line', (l) =>
      lines.push(JSON.parse(l) as Record<string, unknown>),
    );
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await waitFor(() => lines.some((l) => l.type === 'ready'), 20_000, `ready (stderr: ${stderr})`);
      const cards = Array.from({ length: 20 }, (_, i) => uid(i));
      const config = largestConfig(
        7,
        cards.map((c) => pseudonymiseCard(c, FLEET_KEY)),
      );
      const payload = encode('config', config);
      expect(payload.length).toBeGreaterThan(LIMITS.maxPayloadBytes - 100); // really the largest
      peer.publish(topics.config('reader-1'), payload, { qos: 1, retain: true });
      await waitFor(() => statuses.some((s) => s.configVersion === 7), 20_000, 'config 7 applied').catch(
        (err: Error) => {
          throw new Error(
            `${err.message}; last status ${JSON.stringify(statuses.at(-1))}; stderr: ${stderr}`,
          );
        },
      );

      const n = 600;
      for (let i = 0; i < n; i++) {
        const before = lines.length;
        // the 21st card is not on the allow-list: rejected, still journalled
        child.stdin.write(`tap ${i % 30 === 29 ? uid(999) : (cards[i % 20] as string)}\n`);
        await waitFor(
          () => lines.slice(before).some((l) => l.type === 'tap'),
          10_000,
          `tap ${i} (stderr: ${stderr})`,
        );
      }
      const taps = lines.filter((l) => l.type === 'tap');
      expect(taps).toHaveLength(n);
      expect(taps.filter((t) => t.decision === 'rejected')).toHaveLength(n / 30);
      expect(new Set(taps.map((t) => t.decision))).toEqual(new Set(['start', 'stop', 'rejected']));
      await waitFor(() => net.contiguous === n, 30_000, 'every tap delivered');
      await waitFor(() => statuses.at(-1)?.queueDepth === 0, 20_000, 'journal drained after the acks');
      expect(child.exitCode).toBeNull(); // still alive under the small heap
    } finally {
      child.stdin.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(t);
      await net.close();
      dir.cleanup();
      expect(code, stderr).toBe(0);
      // the only flag V8 turns off is WebAssembly, which lite mode excludes (Node 20 and 22 say so once)
      const disabled = stderr.split('\n').filter((l) => /Warning: disabling flag/.test(l));
      expect(disabled.filter((l) => !/--expose_wasm/.test(l))).toEqual([]);
    }
  }, 120_000);
  it('loads the hardware drivers from the bundle (nfc-pcsc reader, reader-led and johnny-five feedback)', async () => {
    const dir = tempDir('vt-shipped-drv-');
    const run = async (feedback: object): Promise<string> => {
      const cfgPath = join(dir.dir, 'device.json');
      writeFileSync(
        cfgPath,
        JSON.stringify({
          readerId: 'reader-1',
          dataDir: dir.dir,
          fleetKey: FLEET_KEY,
          mqtt: { url: 'mqtt://127.0.0.1:1', username: 'reader-1', password: 'pw-reader-1-0123456789abcdef' },
          // no pcscd at this socket: the driver must load, then report that no reader is there
          reader: { driver: 'nfc-pcsc', pcscdSocket: join(dir.dir, 'no-pcscd.comm') },
          feedback,
        }),
      );
      const child = spawn(process.execPath, [...unitNodeFlags(), entry, 'selftest', '--config', cfgPath], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, RUNTIME_DIRECTORY: dir.dir },
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise((r) => child.on('exit', r));
      return out;
    };
    try {
      const led = await run({ driver: 'reader-led' });
      expect(led).not.toMatch(/cannot be loaded|Cannot find module/);
      expect(led).toMatch(/\[FAIL\] card reader attached: no card reader found/);
      expect(led).toMatch(/visit-started: you should see/); // the reader-led driver took the patterns
      // johnny-five loads from the bundle; the IO plugin named in the config is what is missing here
      const j5 = await run({
        driver: 'johnny-five',
        ioPlugin: 'visittag-no-such-io',
        pins: { green: 'GPIO17', red: 'GPIO27' },
      });
      expect(j5).not.toMatch(/johnny-five-feedback/);
      expect(j5).toMatch(/visittag-no-such-io/);
    } finally {
      dir.cleanup();
    }
  }, 120_000);
});
