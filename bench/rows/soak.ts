/**
 * Soak rows (issue 15): does memory grow with traffic once warmed up?
 * - gateway: the latency row's live shape (N readers connected, taps paced at a fixed total rate in one-tap
 *   batches, the outbox forwarding to the fake backend) for `soak.durationMs`; the gateway's RSS and heap
 *   (after a forced GC) sampled every `soak.sampleMs`; the slope of a least-squares line over the samples
 *   after the first third, in MB per 100,000 taps; every tap checked at the backend.
 * - device: a full device online to a real gateway taps `soak.deviceTaps` times (each journalled, sent and
 *   acknowledged), memory after each of 50 chunks; the same slope after the first third.
 * Each slope is printed with its standard error: the device's RSS scatters by about ±1.5 MB with no trend.
 * Target: < 1 MB per 100,000 taps for both.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { unitNodeFlags } from '../../device/scripts/unit.js';
import { transpileTree } from '../lib/build.js';
import { BACKEND_SECRET, FLEET_KEY, readerIds, type RowContext } from '../lib/ctx.js';
import { Fleet, provision, startGateway, sum } from '../lib/harness.js';
import { summarize, wallNow } from '../lib/stats.js';
import { benchCards } from '../lib/taps.js';
import type { Row } from '../lib/types.js';

const MB = 1024 * 1024;
const PER = 100_000;

export interface Sample {
  /** ms since the load started */
  atMs: number;
  taps: number;
  rss: number;
  heapUsed: number;
}

/** Least-squares slope of y over x. */
export function slope(points: readonly [number, number][]): number {
  return fitLine(points).slope;
}

/**
 * Least-squares slope of y over x and its standard error (NaN under 3 points): how far the fitted slope
 * could be moved by the samples' scatter alone. A device's RSS wanders about ±1.5 MB around its level
 * with no trend, which over 100,000 taps is a slope error of about ±1 MB per 100,000 taps: the same size
 * as the target, so the row prints it beside the slope.
 */
export function fitLine(points: readonly [number, number][]): { slope: number; se: number } {
  const n = points.length;
  if (n < 2) return { slope: Number.NaN, se: Number.NaN };
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  if (den === 0) return { slope: Number.NaN, se: Number.NaN };
  const b = num / den;
  if (n < 3) return { slope: b, se: Number.NaN };
  let ss = 0;
  for (const [x, y] of points) ss += (y - my - b * (x - mx)) ** 2;
  return { slope: b, se: Math.sqrt(ss / (n - 2) / den) };
}

/** MB per 100,000 taps of RSS and heap over the samples after the first third of the run (warm-up). */
export function growth(samples: readonly Sample[]): {
  rss: number;
  heap: number;
  /** Standard errors of the two slopes (same unit). */
  rssSe: number;
  heapSe: number;
  used: number;
} {
  const last = samples[samples.length - 1];
  const warm = last ? samples.filter((s) => s.taps >= last.taps / 3) : [];
  const fit = (k: 'rss' | 'heapUsed') => fitLine(warm.map((s) => [s.taps / PER, s[k] / MB]));
  const rss = fit('rss');
  const heap = fit('heapUsed');
  return { rss: rss.slope, heap: heap.slope, rssSe: rss.se, heapSe: heap.se, used: warm.length };
}

const fmt = (v: number) => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toFixed(2)}` : 'n/a');
const fmtSe = (se: number) => (Number.isFinite(se) ? ` ±${se.toFixed(2)}` : '');
/** "RSS +0.12 ±0.30 / heap …": each slope with its standard error. */
const growthDisplay = (g: ReturnType<typeof growth>) =>
  `RSS ${fmt(g.rss)}${fmtSe(g.rssSe)} / heap ${fmt(g.heap)}${fmtSe(g.heapSe)} MB per 100k taps`;
const series = (samples: readonly Sample[], k: 'rss' | 'heapUsed') => {
  const step = Math.max(1, Math.floor(samples.length / 8));
  return samples
    .filter((_, i) => i % step === 0 || i === samples.length - 1)
    .map((s) => (s[k] / MB).toFixed(0))
    .join('→');
};

export async function soakRows(ctx: RowContext): Promise<Row[]> {
  return [await gatewaySoak(ctx), await deviceSoak(ctx)];
}

async function gatewaySoak(ctx: RowContext): Promise<Row> {
  const p = ctx.profile.soak;
  const backend = await ctx.worker('backend', 'backend-host');
  const { url } = await backend.call<{ url: string }>('start', { secret: BACKEND_SECRET });
  // BENCH_SOAK_SNAPSHOTS=1: V8 heap snapshots of the gateway at a third of the run and at its end (compare
  // them to see what the heap grew by), written to <log dir>/soak-snapshots
  const snapDir = join(ctx.logDir, 'soak-snapshots');
  const snapshots = process.env.BENCH_SOAK_SNAPSHOTS === '1';
  const gw = await startGateway(ctx, {
    name: 'gateway',
    dataDir: ctx.tempDir('soak-gw'),
    backendUrl: url,
    ...(p.visitIndexMaxVisits !== undefined
      ? { settings: { store: { engine: 'sqlite', visitIndexMaxVisits: p.visitIndexMaxVisits } } }
      : {}),
    nodeFlags: [
      '--expose-gc',
      ...(snapshots ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapDir}`] : []),
    ],
  });
  const snapshot = async () => {
    if (!snapshots) return;
    mkdirSync(snapDir, { recursive: true });
    await mem(); // after a GC
    process.kill(gw.worker.pid, 'SIGUSR2');
    await mem(); // answered once the snapshot is written
  };
  let snapped = false;
  const readers = readerIds('sk', p.readers);
  ctx.say(`provisioning ${p.readers} readers`);
  await provision(gw, readers);
  const fleet = await Fleet.start(ctx, {
    name: 'soak-gen',
    url: gw.url,
    readers,
    batchSize: 10,
    appAcks: true,
  });
  const conn = await fleet.all<{ connected: number }>(
    'connect',
    { timeoutMs: Math.max(60_000, p.readers * 30), concurrency: 200 },
    Math.max(60_000, p.readers * 30) + 30_000,
  );
  const connected = sum(conn.map((c) => c.connected));
  const mem = () => gw.worker.call<NodeJS.MemoryUsage>('memory');
  const idle = await mem();
  ctx.say(`${connected} connected; ${p.tapsPerSecond} taps/s for ${p.durationMs / 1000} s`);
  const t0 = wallNow();
  const samples: Sample[] = [{ atMs: 0, taps: 0, rss: idle.rss, heapUsed: idle.heapUsed }];
  const paced = fleet.all<{ sent: [string, number, number][] }>(
    'paced',
    { tapsPerSecond: p.tapsPerSecond / fleet.workers.length, durationMs: p.durationMs },
    p.durationMs + 120_000,
  );
  let pacing = true;
  void paced.finally(() => (pacing = false)).catch(() => undefined);
  while (pacing && wallNow() - t0 < p.durationMs + 60_000) {
    await new Promise((r) =>
      setTimeout(r, Math.min(p.sampleMs, Math.max(200, t0 + p.durationMs - wallNow()))),
    );
    if (!pacing) break;
    const m = await mem();
    const atMs = wallNow() - t0;
    if (!snapped && atMs >= p.durationMs / 3) {
      snapped = true;
      await snapshot();
    }
    ctx.say(
      `${(atMs / 1000).toFixed(0)} s: RSS ${(m.rss / MB).toFixed(0)} MB, heapUsed ${(m.heapUsed / MB).toFixed(0)} MB`,
    );
    samples.push({
      atMs,
      taps: Math.round((Math.min(atMs, p.durationMs) / 1000) * p.tapsPerSecond),
      rss: m.rss,
      heapUsed: m.heapUsed,
    });
  }
  const sent = (await paced).flatMap((x) => x.sent);
  await snapshot();
  const end = await mem();
  // work still queued when the load stopped: a gateway that does not keep up grows by its backlog
  const behind = (await gw.worker.call<{ events: number }>('visitLag')).events;
  samples.push({ atMs: wallNow() - t0, taps: sent.length, rss: end.rss, heapUsed: end.heapUsed });
  let got = 0;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    got = (await backend.call<{ keys: number }>('count')).keys;
    if (got >= sent.length) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const a = await backend.call<{ arrivals: [string, number][]; duplicates: number }>('arrivals');
  const byTap = new Map<string, number>();
  for (const [key, at] of a.arrivals) {
    const m = /^vt1:(.+):(\d+):(started|ended)$/.exec(key);
    if (m) byTap.set(`${m[1]}:${m[2]}`, at);
  }
  const lat: number[] = [];
  let missing = 0;
  for (const [readerId, seq, at] of sent) {
    const arrived = byTap.get(`${readerId}:${seq}`);
    if (arrived === undefined) missing++;
    else lat.push(arrived - at);
  }
  const s = summarize(lat);
  await fleet.all('close');
  await gw.worker.call('stop', undefined, 60_000);
  await backend.call('stop');
  const g = growth(samples);
  return ctx.done({
    id: 'gateway-soak',
    figure: `gateway memory growth under ${connected.toLocaleString('en-US')} readers at ${p.tapsPerSecond} taps/s for ${Math.round(p.durationMs / 60_000)} min (after warm-up)`,
    generator: 'lightweight MQTT clients',
    value: Number.isFinite(g.rss) ? g.rss : null,
    display: growthDisplay(g),
    unit: 'MB/100k taps',
    baseline: null,
    baselineLabel: null,
    ratio: null,
    target: '< 1 MB per 100,000 taps',
    met: missing === 0 && Number.isFinite(g.rss) ? g.rss < 1 && g.heap < 1 : false,
    note:
      `${sent.length} taps, visits engine ${behind} taps behind when the load stopped, ${missing} missing at the backend 60 s later, ${a.duplicates} duplicates, p99 ${s.p99.toFixed(1)} ms; ` +
      `RSS MB ${series(samples, 'rss')}; heapUsed MB ${series(samples, 'heapUsed')} (after forced GC; ` +
      `slope over the last ${g.used} of ${samples.length} samples; visit index budget ${(p.visitIndexMaxVisits ?? 50_000).toLocaleString('en-US')})`,
    details: { samples, growth: g, missing, behind, latency: s, connected },
  });
}

async function deviceSoak(ctx: RowContext): Promise<Row> {
  const p = ctx.profile.soak;
  const spec = readerIds('sd', 1)[0];
  if (!spec) throw new Error('no reader');
  const gw = await startGateway(ctx, { name: 'dev-gateway', dataDir: ctx.tempDir('soak-dev-gw') });
  await provision(gw, [spec], 80);
  const uids = benchCards(80, FLEET_KEY).map((c) => c.uid);
  // transpiled, under the shipped unit's node flags (what a Pi runs), plus --expose-gc for the heap reading
  const build = transpileTree(['device', 'protocol', 'runtime', 'bench']);
  const dev = await ctx.worker('device', 'soak-device', [...unitNodeFlags(), '--expose-gc'], build);
  await dev.call('start', {
    settings: {
      readerId: spec.readerId,
      dataDir: ctx.tempDir('soak-dev'),
      fleetKey: FLEET_KEY,
      mqtt: { url: gw.url, username: spec.readerId, password: spec.password },
      reader: { driver: 'simulated' },
      feedback: { driver: 'simulated' },
      visit: { repeatWindowMs: 0 },
      uplink: { backoff: { baseMs: 500, capMs: 5_000 } },
      logLevel: 'warn',
    },
  });
  await new Promise((r) => setTimeout(r, 1000));
  type Mem = NodeJS.MemoryUsage & { vmRss: number };
  const first = await dev.call<Mem>('memory');
  const samples: Sample[] = [{ atMs: 0, taps: 0, rss: first.vmRss, heapUsed: first.heapUsed }];
  // 50 samples, not 20: the slope's standard error from the RSS's scatter shrinks with more of them
  const chunks = 50;
  const per = Math.ceil(p.deviceTaps / chunks);
  const t0 = wallNow();
  let timeouts = 0;
  let maxDepth = 0;
  for (let i = 0; i < chunks; i++) {
    const r = await dev.call<{ tapped: number; timeouts: number; queueDepth: number; memory: Mem }>(
      'chunk',
      { count: per, uids },
      600_000,
    );
    timeouts += r.timeouts;
    maxDepth = Math.max(maxDepth, r.queueDepth);
    samples.push({ atMs: wallNow() - t0, taps: r.tapped, rss: r.memory.vmRss, heapUsed: r.memory.heapUsed });
  }
  const settled = await dev.call<{ queueDepth: number; memory: Mem }>(
    'settle',
    { timeoutMs: 60_000 },
    90_000,
  );
  const { events } = await gw.worker.call<{ events: number }>('countEvents');
  await dev.call('stop');
  await gw.worker.call('stop', undefined, 60_000);
  const taps = samples[samples.length - 1]?.taps ?? 0;
  const g = growth(samples);
  return ctx.done({
    id: 'device-soak',
    figure: `device memory growth over ${taps.toLocaleString('en-US')} journalled and acknowledged taps (after warm-up)`,
    generator: 'full device (createDevice)',
    value: Number.isFinite(g.rss) ? g.rss : null,
    display: growthDisplay(g),
    unit: 'MB/100k taps',
    baseline: null,
    baselineLabel: null,
    ratio: null,
    target: '< 1 MB per 100,000 taps',
    met:
      settled.queueDepth === 0 && events >= taps && Number.isFinite(g.rss) ? g.rss < 1 && g.heap < 1 : false,
    note:
      `${taps} taps in ${((wallNow() - t0) / 1000).toFixed(0)} s, ${timeouts} without feedback; journal ${settled.queueDepth} left at the end ` +
      `(max ${maxDepth} after a chunk), ${events} events in gateway.db; VmRSS MB ${series(samples, 'rss')}; ` +
      `heapUsed MB ${series(samples, 'heapUsed')} (after forced GC); transpiled device under the unit's node flags`,
    details: { samples, growth: g, timeouts, events, settled },
  });
}
