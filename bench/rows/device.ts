/**
 * Device rows, each on a full device (createDevice + SimulatedCardReader + SimulatedFeedback) in its own
 * process: tap → durable journal → feedback latency (device online to a real gateway when there is one),
 * and the RSS of the firmware as a Pi runs it (the bundle under the systemd unit's node flags) idle and
 * after N journalled taps (offline, so every tap stays in the journal), beside a bare node with the same flags.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { bundleDevice } from '../../device/scripts/bundle.js';
import { unitNodeFlags } from '../../device/scripts/unit.js';
import { componentPresent, FLEET_KEY, readerIds, ROOT, type RowContext } from '../lib/ctx.js';
import { provision, startGateway } from '../lib/harness.js';
import { transpileTree } from '../lib/build.js';
import { freePort } from '../lib/net.js';
import { summarize } from '../lib/stats.js';
import { benchCards } from '../lib/taps.js';
import type { Row } from '../lib/types.js';

const MB = 1024 * 1024;

function deviceSettings(readerId: string, dataDir: string, url: string, password: string) {
  return {
    readerId,
    dataDir,
    fleetKey: FLEET_KEY,
    mqtt: { url, username: readerId, password },
    reader: { driver: 'simulated' },
    feedback: { driver: 'simulated' },
    // Every tap changes state (start/stop), so every tap is a journal commit.
    visit: { repeatWindowMs: 0 },
    uplink: { backoff: { baseMs: 500, capMs: 5_000 } },
    logLevel: 'warn',
  };
}

type TapsResult = { lat: number[]; patterns: Record<string, number>; timeouts: number };

export async function deviceLatencyRows(ctx: RowContext): Promise<Row[]> {
  const p = ctx.profile.device;
  const uids = benchCards(80, FLEET_KEY).map((c) => c.uid);
  const spec = readerIds('dv', 1)[0];
  if (!spec) throw new Error('no reader');
  let url: string;
  let online = false;
  if (componentPresent('gateway/index.ts')) {
    const gw = await startGateway(ctx, { name: 'gateway', dataDir: ctx.tempDir('dev-gw') });
    await provision(gw, [spec], 80);
    url = gw.url;
    online = true;
  } else {
    url = `mqtt://127.0.0.1:${await freePort()}`;
  }
  // The shipped unit's node flags (no optimising compiler, small heap): the latency a Pi gives. Plain node on
  // transpiled JS, as a Pi runs it: the tsx loader alone does not fit the unit's 16 MB heap (it aborted).
  const build = transpileTree(['device', 'protocol', 'runtime', 'bench']);
  const dev = await ctx.worker('device', 'device-host', unitNodeFlags(), build);
  await dev.call('start', {
    settings: deviceSettings(spec.readerId, ctx.tempDir('dev'), url, spec.password),
  });
  await new Promise((r) => setTimeout(r, 1000));
  const r = await dev.call<TapsResult>('taps', { count: p.taps, gapMs: 20, uids }, 600_000);
  await dev.call('stop');
  const s = summarize(r.lat);
  return [
    {
      id: 'device-tap-latency',
      figure: 'device tap → durable journal → feedback latency',
      generator: 'full device (createDevice)',
      value: r.lat.length ? s.p99 : null,
      display: r.lat.length ? `p50 ${s.p50.toFixed(2)} / p99 ${s.p99.toFixed(2)} ms` : undefined,
      unit: 'ms',
      baseline: null,
      baselineLabel: null,
      ratio: null,
      target: 'p99 ≤ 15 ms',
      met: r.lat.length && r.timeouts === 0 ? s.p99 <= 15 : false,
      note:
        `${r.lat.length} taps, 20 ms apart, ${online ? 'uplink online to a real gateway' : 'uplink offline (no gateway)'}; ` +
        `max ${s.max.toFixed(1)} ms; ${r.timeouts} without feedback; patterns ${JSON.stringify(r.patterns)}`,
      details: { ...s, patterns: r.patterns, timeouts: r.timeouts, online },
    },
  ];
}

/** VmRSS / VmHWM of a process, from /proc (what `ps` and systemd's MemoryCurrent-style readings see). */
function procMem(pid: number): { rss: number; hwm: number } {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/**
 * `visittag-device run --sim-control stdin` exactly as the unit starts it (`node <unit flags> <entry>`),
 * taps written to its stdin, one JSON line back per tap after its feedback. No forced GC: the reading
 * is what the Pi would have.
 */
async function shippedDevice(entry: string, flags: string[], cfg: object, dir: string) {
  const cfgPath = join(dir, 'device.json');
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const p = spawn(process.execPath, [...flags, entry, 'run', '--config', cfgPath, '--sim-control', 'stdin'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, RUNTIME_DIRECTORY: dir },
  });
  // The last of its stderr, for the row's note when it dies (a refused config, an OOM).
  let errTail = '';
  p.stderr.setEncoding('utf8').on('data', (d: string) => (errTail = (errTail + d).slice(-4000)));
  p.stdin.on('error', () => undefined);
  let waiter: ((l: string) => void) | null = null;
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  createInterface({ input: p.stdout }).on('line', (l) => {
    if (l.includes('"type":"ready"')) ready();
    else if (l.includes('"type":"tap"') && waiter) waiter(l);
  });
  const exited = new Promise<void>((r) => p.on('exit', () => r()));
  await Promise.race([isReady, exited, new Promise((r) => setTimeout(r, 30_000))]);
  if (p.exitCode !== null || p.pid === undefined)
    throw new Error(
      `device exited (${p.exitCode}) before ready: ${errTail.trim().split('\n').slice(0, 6).join(' | ')}`,
    );
  const pid = p.pid;
  return {
    mem: () => procMem(pid),
    /** `n` taps, each waiting for its line; returns how many got none within 5 s. */
    async taps(uids: string[], n: number): Promise<number> {
      let missing = 0;
      for (let i = 0; i < n; i++) {
        const got = new Promise<boolean>((res) => {
          const t = setTimeout(() => res(false), 5_000);
          waiter = () => {
            clearTimeout(t);
            res(true);
          };
        });
        p.stdin.write(`tap ${uids[i % uids.length] as string}\n`);
        if (!(await got)) missing++;
        waiter = null;
      }
      return missing;
    },
    async stop(): Promise<void> {
      p.stdin.end();
      const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

const settle = () => new Promise((r) => setTimeout(r, 2_000));

export async function deviceRssRows(ctx: RowContext): Promise<Row[]> {
  const n = ctx.profile.device.rssTaps;
  const uids = benchCards(80, FLEET_KEY).map((c) => c.uid);
  // What a Pi runs: the firmware bundle (npm run build:device) under the systemd unit's node flags.
  const entry = await bundleDevice(join(ROOT, 'bench/results/bundle-device'));
  const flags = unitNodeFlags();
  const url = `mqtt://127.0.0.1:${await freePort()}`; // nothing listens: every tap stays journalled
  const cfg = (dir: string) => deviceSettings('dv-rss', dir, url, 'pw-dv-rss-0123456789abcdefghij');

  const bare = spawn(process.execPath, [...flags, '-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await settle();
  const bareMem = procMem(bare.pid ?? 0);
  bare.kill('SIGKILL');

  // Context, idle: the same bundle on node's default flags, and the tsc output (dist/device) on defaults.
  const context = async (e: string, f: string[], tag: string, taps: number) => {
    const dir = ctx.tempDir(tag);
    const d = await shippedDevice(e, f, cfg(dir), dir);
    await settle();
    const idle = d.mem();
    const missing = taps > 0 ? await d.taps(uids, taps) : 0;
    const after = taps > 0 ? d.mem() : null;
    await d.stop();
    return { idle, after, missing };
  };
  const defaults = await context(entry, [], 'dev-rss-defaults', ctx.profile.name === 'full' ? n : 0);
  const tree = transpileTree(['device', 'protocol', 'runtime']);
  const unbundled = await context(join(tree, 'device/main.js'), [], 'dev-rss-tree', 0);

  const dir = ctx.tempDir('dev-rss');
  const dev = await shippedDevice(entry, flags, cfg(dir), dir);
  await settle();
  const idle = dev.mem();
  const missing = await dev.taps(uids, n);
  await settle();
  const after = dev.mem();
  await dev.stop();

  const mb = (b: number) => `${(b / MB).toFixed(1)} MB`;
  const shared = {
    generator: 'full device (CLI as the unit runs it)' as const,
    unit: 'MB',
    target: '≤ 60 MB',
  };
  return [
    {
      ...shared,
      id: 'device-rss-idle',
      figure: 'device RSS idle (bundle, unit flags)',
      value: idle.rss / MB,
      baseline: bareMem.rss / MB,
      baselineLabel: 'bare node, same flags',
      ratio: idle.rss / bareMem.rss,
      met: idle.rss <= 60 * MB,
      note:
        `node ${flags.join(' ')}; peak (VmHWM) ${mb(idle.hwm)}; the same bundle on node's default flags ` +
        `${mb(defaults.idle.rss)}; unbundled tsc output on default flags ${mb(unbundled.idle.rss)}`,
      details: { bare: bareMem, idle, flags, defaults, unbundled },
    },
    {
      ...shared,
      id: 'device-rss-journalled',
      figure: `device RSS after ${n.toLocaleString('en-US')} journalled taps (bundle, unit flags)`,
      value: after.rss / MB,
      baseline: idle.rss / MB,
      baselineLabel: 'same device idle',
      ratio: after.rss / idle.rss,
      met: after.rss <= 60 * MB && missing === 0,
      note:
        `${n - missing} taps journalled offline (${missing} without feedback); peak (VmHWM) ${mb(after.hwm)}` +
        (defaults.after ? `; on node's default flags: ${mb(defaults.after.rss)}` : ''),
      details: { after, missing, defaults },
    },
  ];
}
