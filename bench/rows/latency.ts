/**
 * Tap → planning backend latency: N readers connected to the gateway, taps paced at a fixed total
 * rate (one-tap batches, like devices in normal operation), the gateway forwarding to the simulator's
 * fake backend behind a timestamping proxy. Latency = backend 2xx time − the moment the reader sent.
 */
import { BACKEND_SECRET, readerIds, type RowContext } from '../lib/ctx.js';
import { Fleet, provision, startGateway, sum } from '../lib/harness.js';
import { summarize } from '../lib/stats.js';
import type { Row } from '../lib/types.js';

export async function backendLatencyRows(ctx: RowContext): Promise<Row[]> {
  const p = ctx.profile.backendLatency;
  const backend = await ctx.worker('backend', 'backend-host');
  const { url } = await backend.call<{ url: string }>('start', { secret: BACKEND_SECRET });
  const gw = await startGateway(ctx, { name: 'gateway', dataDir: ctx.tempDir('lat-gw'), backendUrl: url });
  const readers = readerIds('lt', p.readers);
  ctx.say(`provisioning ${p.readers} readers`);
  await provision(gw, readers);
  ctx.say('connecting');
  const fleet = await Fleet.start(ctx, {
    name: 'lat-gen',
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
  ctx.say(`${connected} connected; pacing ${p.tapsPerSecond} taps/s`);
  // Every generator process paces its share of the total rate over its own connected readers.
  const shares = await fleet.all<{ sent: [string, number, number][] }>(
    'paced',
    { tapsPerSecond: p.tapsPerSecond / fleet.workers.length, durationMs: p.durationMs },
    p.durationMs + 60_000,
  );
  const sent = shares.flatMap((x) => x.sent);
  const want = sent.length;
  let got = 0;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    got = (await backend.call<{ keys: number }>('count')).keys;
    if (got >= want) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const a = await backend.call<{ arrivals: [string, number][]; duplicates: number; conflicts: number }>(
    'arrivals',
  );
  const byTap = new Map<string, number>();
  for (const [key, at] of a.arrivals) {
    const m = /^vt1:(.+):(\d+):(started|ended)$/.exec(key);
    if (m) byTap.set(`${m[1]}:${m[2]}`, at);
  }
  const lat: number[] = [];
  /** [sent at (wall-clock ms), latency ms] of each tap that arrived: the slowest go to the details. */
  const timed: [number, number][] = [];
  let missing = 0;
  for (const [readerId, seq, at] of sent) {
    const arrived = byTap.get(`${readerId}:${seq}`);
    if (arrived === undefined) missing++;
    else {
      lat.push(arrived - at);
      timed.push([at, arrived - at]);
    }
  }
  const s = summarize(lat);
  const first = Math.min(...timed.map((t) => t[0]));
  const slowest = timed
    .sort((x, y) => y[1] - x[1])
    .slice(0, 30)
    .map(([at, ms]) => [at - first, Math.round(ms)]);
  // BENCH_STALLS=1 (gateway-host): the gateway's event-loop stalls over 20 ms, on the same time axis
  const { stalls } = await gw.worker.call<{ stalls: [number, number][] }>('stalls');
  await fleet.all('close');
  await gw.worker.call('stop', undefined, 60_000);
  await backend.call('stop');
  const scale =
    p.readers < 5_000 ? `; ${ctx.profile.name} profile: ${p.readers} readers, full run uses 5,000` : '';
  return [
    {
      id: 'tap-to-backend-latency',
      figure: `tap → planning backend latency, ${connected.toLocaleString('en-US')} readers at ${p.tapsPerSecond} taps/s`,
      generator: 'lightweight MQTT clients',
      value: lat.length ? s.p99 : null,
      display: lat.length ? `p50 ${s.p50.toFixed(1)} / p99 ${s.p99.toFixed(1)} ms` : undefined,
      unit: 'ms',
      baseline: null,
      baselineLabel: null,
      ratio: null,
      target: 'p99 ≤ 250 ms',
      met: lat.length && missing === 0 ? s.p99 <= 250 : false,
      note:
        `${lat.length}/${want} taps reached the backend (${missing} missing after 30 s); ` +
        `${p.durationMs / 1000} s of paced one-tap batches; backend duplicates ${a.duplicates}, conflicts ${a.conflicts}` +
        scale,
      details: {
        ...s,
        missing,
        want,
        connected,
        // [ms after the first tap was sent, latency ms]; stalls: [ms after the first tap, stall ms]
        slowest,
        stalls: stalls.filter(([at]) => at >= first).map(([at, ms]) => [at - first, ms]),
      },
    },
  ];
}
