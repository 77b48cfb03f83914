/**
 * Fleet rows on one gateway: (1) gateway RSS with N connected readers, then (2) the reconnect storm:
 * the gateway process is stopped, every reader journals `unackedPerReader` taps while it is down, a new
 * gateway process starts on the same port and data dir, and we time until every reader's taps are acked;
 * then count the rows in the gateway's `events` table (0 lost = all of them there).
 */
import { readerIds, type RowContext } from '../lib/ctx.js';
import { Fleet, provision, startGateway, sum } from '../lib/harness.js';
import { wallNow } from '../lib/stats.js';
import type { Row } from '../lib/types.js';

const MB = 1024 * 1024;
const BACKOFF = { baseMs: 500, capMs: 10_000 };

export async function fleetRows(ctx: RowContext): Promise<Row[]> {
  const n = Math.max(ctx.profile.rss.readers, ctx.profile.storm.readers);
  const perReader = ctx.profile.storm.unackedPerReader;
  const dataDir = ctx.tempDir('storm-gw');
  const gw1 = await startGateway(ctx, { name: 'gateway-1', dataDir });
  const readers = readerIds('st', n);
  const tProv = wallNow();
  ctx.say(`provisioning ${n} readers`);
  await provision(gw1, readers);
  const provisionMs = wallNow() - tProv;
  ctx.say(`provisioned in ${(provisionMs / 1000).toFixed(1)} s; connecting`);
  const idle = await gw1.worker.call<NodeJS.MemoryUsage>('memory');
  const fleet = await Fleet.start(ctx, {
    name: 'storm-gen',
    url: gw1.url,
    readers,
    batchSize: 10,
    appAcks: true,
    perProcess: 2500,
    backoff: BACKOFF,
  });
  const conn = await fleet.all<{ connected: number; refusals: number; elapsedMs: number }>(
    'connect',
    { timeoutMs: Math.max(60_000, n * 25), concurrency: 200 },
    Math.max(60_000, n * 25) + 30_000,
  );
  const connected = sum(conn.map((c) => c.connected));
  const connectMs = Math.max(...conn.map((c) => c.elapsedMs));
  ctx.say(`${connected}/${n} connected in ${(connectMs / 1000).toFixed(1)} s`);
  const loaded = await gw1.worker.call<NodeJS.MemoryUsage>('memory');
  const rssRow: Row = ctx.done({
    id: 'gateway-rss',
    figure: `gateway RSS with ${connected.toLocaleString('en-US')} connected readers`,
    generator: 'lightweight MQTT clients',
    value: loaded.rss / MB,
    unit: 'MB',
    baseline: idle.rss / MB,
    baselineLabel: 'same gateway, 0 connected',
    ratio: loaded.rss / idle.rss,
    target: '≤ 1024 MB',
    met: connected === n ? loaded.rss <= 1024 * MB : false,
    note:
      `${((loaded.rss - idle.rss) / Math.max(1, connected) / 1024).toFixed(1)} KB RSS per connection; ` +
      `heapUsed ${(loaded.heapUsed / MB).toFixed(0)} MB; connected ${connected}/${n} in ${(connectMs / 1000).toFixed(1)} s` +
      ` (gateway rate limit 500 conn/s); provisioning ${n} readers took ${(provisionMs / 1000).toFixed(1)} s` +
      (ctx.profile.rss.readers < 10_000
        ? `; ${ctx.profile.name} profile: ${n} readers, full run uses 10,000`
        : ''),
    details: { idle, loaded, connected, connectMs, provisionMs },
  });

  // ── reconnect storm ──
  await gw1.worker.call('stop', undefined, 60_000);
  await gw1.worker.call('exit').catch(() => undefined);
  await fleet.all('queue', { perReader });
  await new Promise((r) => setTimeout(r, 1000));
  const tRestart = wallNow();
  const gw2 = await startGateway(ctx, { name: 'gateway-2', dataDir, mqttPort: gw1.mqttPort });
  const startupMs = wallNow() - tRestart;
  ctx.say(`gateway restarted in ${(startupMs / 1000).toFixed(1)} s; draining`);
  const limit = ctx.profile.storm.drainTimeoutMs * 2;
  const drains = await fleet.all<{
    pendingReaders: number;
    pendingTaps: number;
    lastDrainedAt: number;
    acked: number;
  }>('drain', { timeoutMs: limit }, limit + 30_000);
  const pendingTaps = sum(drains.map((d) => d.pendingTaps));
  const pendingReaders = sum(drains.map((d) => d.pendingReaders));
  const drainMs = Math.max(...drains.map((d) => d.lastDrainedAt)) - tRestart;
  const stats = await fleet.all<{ refusals: number; connects: number }>('stats');
  const { events } = await gw2.worker.call<{ events: number }>('countEvents');
  const expected = n * perReader;
  // Lost = acknowledged to a reader (so deleted from its journal) but not in gateway.db. Taps still
  // pending on a reader are not lost (yet): they are counted separately.
  const acked = sum(drains.map((d) => d.acked));
  const lost = Math.max(0, acked - events);
  const drained = pendingTaps === 0;
  const stormRow: Row = {
    id: 'reconnect-storm',
    figure: `reconnect storm: ${n.toLocaleString('en-US')} readers × ${perReader} unacked taps, gateway restart → drained`,
    generator: 'lightweight MQTT clients',
    value: drained ? drainMs / 1000 : null,
    unit: 's',
    baseline: null,
    baselineLabel: null,
    ratio: null,
    target: '≤ 60 s, 0 lost',
    met: drained && drainMs <= 60_000 && lost === 0,
    note:
      (drained
        ? ''
        : `n/a (not drained in ${limit / 1000} s: ${pendingReaders} readers, ${pendingTaps} taps pending); `) +
      `${events}/${expected} taps in gateway.db, ${acked} acked, ${pendingTaps} still pending on readers, lost ${lost}; gateway process start ${(startupMs / 1000).toFixed(1)} s ` +
      `(included); client backoff ${BACKOFF.baseMs}–${BACKOFF.capMs} ms full jitter; ` +
      `${sum(stats.map((s) => s.refusals))} refused connection attempts in total` +
      (ctx.profile.storm.readers < 10_000
        ? `; ${ctx.profile.name} profile: ${n} readers, full run uses 10,000`
        : ''),
    details: { drainMs, startupMs, events, expected, acked, lost, pendingTaps, pendingReaders, drains },
  };
  await fleet.all('close');
  await gw2.worker.call('stop', undefined, 60_000);
  return [rssRow, stormRow];
}
