/**
 * Device rows, each on a full device (createDevice + SimulatedCardReader + SimulatedFeedback) in its own
 * process: tap → durable journal → feedback latency (device online to a real gateway when there is one),
 * and the device's RSS idle and after N journalled taps (offline, so every tap stays in the journal),
 * beside the RSS of a bare Node + tsx process of the same shape.
 */
import { componentPresent, FLEET_KEY, readerIds, type RowContext } from '../lib/ctx.js';
import { provision, startGateway } from '../lib/harness.js';
import { transpileTree } from '../lib/build.js';
import { freePort } from '../lib/net.js';
import { summarize } from '../lib/stats.js';
import { benchCards } from '../lib/taps.js';
import type { Row } from '../lib/types.js';

const MB = 1024 * 1024;
const SMALL_V8 = ['--max-semi-space-size=1', '--max-old-space-size=64', '--v8-pool-size=1'];

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
  const dev = await ctx.worker('device', 'device-host');
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

export async function deviceRssRows(ctx: RowContext): Promise<Row[]> {
  const n = ctx.profile.device.rssTaps;
  const uids = benchCards(80, FLEET_KEY).map((c) => c.uid);
  // What a Pi runs: plain node over transpiled JS (npm run build → dist/), not the tsx loader.
  const build = transpileTree(['device', 'protocol', 'bench/lib', 'bench/workers']);
  const bare = await ctx.worker('bare', 'device-host', ['--expose-gc'], build);
  await new Promise((r) => setTimeout(r, 500));
  const bareMem = await bare.call<NodeJS.MemoryUsage>('memory');
  await bare.kill();
  const url = `mqtt://127.0.0.1:${await freePort()}`;
  const pw = 'pw-dv-rss-0123456789abcdefghij';
  // The same device under tsx, idle, for comparison (how `npm start` / the simulator run it); full runs only.
  let tsxIdle: NodeJS.MemoryUsage | null = null;
  if (ctx.profile.name === 'full') {
    const tsxDev = await ctx.worker('device-tsx', 'device-host', ['--expose-gc']);
    await tsxDev.call('start', { settings: deviceSettings('dv-rss', ctx.tempDir('dev-rss-tsx'), url, pw) });
    await new Promise((r) => setTimeout(r, 1000));
    tsxIdle = await tsxDev.call<NodeJS.MemoryUsage>('memory');
    await tsxDev.call('stop');
    await tsxDev.kill();
  }
  // The same build with V8's heap sized for a small board (what a systemd unit could set): measured, not guessed.
  const small = await ctx.worker('device-small', 'device-host', ['--expose-gc', ...SMALL_V8], build);
  await small.call('start', { settings: deviceSettings('dv-rss', ctx.tempDir('dev-rss-small'), url, pw) });
  await new Promise((r) => setTimeout(r, 1000));
  const smallIdle = await small.call<NodeJS.MemoryUsage>('memory');
  await small.call('stop');
  await small.kill();
  const dev = await ctx.worker('device', 'device-host', ['--expose-gc'], build);
  await dev.call('start', { settings: deviceSettings('dv-rss', ctx.tempDir('dev-rss'), url, pw) });
  await new Promise((r) => setTimeout(r, 1000));
  const idle = await dev.call<NodeJS.MemoryUsage>('memory');
  const t = await dev.call<TapsResult>('taps', { count: n, gapMs: 0, uids }, 600_000);
  const after = await dev.call<NodeJS.MemoryUsage>('memory');
  await dev.call('stop');
  const shared = {
    generator: 'full device (createDevice)' as const,
    unit: 'MB',
    target: '≤ 60 MB',
  };
  return [
    {
      ...shared,
      id: 'device-rss-idle',
      figure: 'device RSS idle (transpiled JS, plain node)',
      value: idle.rss / MB,
      baseline: bareMem.rss / MB,
      baselineLabel: 'bare node process',
      ratio: idle.rss / bareMem.rss,
      met: idle.rss <= 60 * MB,
      note:
        `heapUsed ${(idle.heapUsed / MB).toFixed(1)} MB of heapTotal ${(idle.heapTotal / MB).toFixed(1)} MB; ` +
        (tsxIdle ? `the same device under tsx: ${(tsxIdle.rss / MB).toFixed(1)} MB RSS (the loader); ` : '') +
        `with ${SMALL_V8.join(' ')}: ` +
        `${(smallIdle.rss / MB).toFixed(1)} MB`,
      details: { bare: bareMem, idle, tsxIdle, smallIdle, smallFlags: SMALL_V8 },
    },
    {
      ...shared,
      id: 'device-rss-journalled',
      figure: `device RSS after ${n.toLocaleString('en-US')} journalled taps (transpiled JS)`,
      value: after.rss / MB,
      baseline: idle.rss / MB,
      baselineLabel: 'same device idle',
      ratio: after.rss / idle.rss,
      met: after.rss <= 60 * MB && t.timeouts === 0,
      note:
        `${t.lat.length} taps journalled offline (${t.timeouts} without feedback); ` +
        `heapUsed ${(after.heapUsed / MB).toFixed(1)} MB; tap p99 ${summarize(t.lat).p99.toFixed(1)} ms back to back`,
      details: { after, taps: t.lat.length, timeouts: t.timeouts },
    },
  ];
}
