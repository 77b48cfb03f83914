/**
 * Fleet rows on one gateway: (1) gateway RSS with N connected readers, then (2) the reconnect storm:
 * the gateway process is stopped, every reader journals `unackedPerReader` taps while it is down, a new
 * gateway process starts on the same port and data dir, and we time until every reader's taps are acked;
 * then count the rows in the gateway's `events` table (0 lost = all of them there). The storm runs twice on
 * the same fleet, side by side: with the connection admission before issue 15 (fixed 500/s bucket, bare
 * close) and with the new one (gateway/src/broker/admission.ts: parking, adaptive rate, busy CONNACK).
 */
import { readFileSync } from 'node:fs';
import { FIXED_ADMISSION } from '../../gateway/src/broker/admission.js';
import { transpileTree } from '../lib/build.js';
import { gatewaySettings, readerIds, type RowContext } from '../lib/ctx.js';
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
  let connected = sum(conn.map((c) => c.connected));
  let connectMs = Math.max(...conn.map((c) => c.elapsedMs));
  // the storms compare admissions of readers that have all proved themselves once (credential cached):
  // wait for the stragglers (each first connection runs the KDF, slow on a loaded machine)
  const tWait = wallNow();
  for (let i = 0; i < 600 && connected < n; i++) {
    await new Promise((r) => setTimeout(r, 500));
    connected = sum((await fleet.all<{ connected: number }>('stats')).map((s) => s.connected));
  }
  connectMs += wallNow() - tWait;
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

  // ── reconnect storm on the same fleet and data dir: the old admission and the new, `rounds` times each,
  // the order alternating per round (the first round: old first) ──
  await gw1.worker.call('stop', undefined, 60_000);
  await gw1.worker.call('exit').catch(() => undefined);
  const runs: StormRun[] = [];
  const build = transpileTree(['gateway', 'protocol', 'runtime', 'bench']);
  for (let round = 0; round < Math.max(1, ctx.profile.storm.rounds); round++) {
    const order = round % 2 === 0 ? (['fixed', 'adaptive'] as const) : (['adaptive', 'fixed'] as const);
    for (const mode of order) {
      runs.push(
        await stormOnce(ctx, fleet, {
          dataDir,
          mqttPort: gw1.mqttPort,
          perReader,
          mode,
          name: `gateway-${runs.length + 2}`,
          readers: n,
          scaledRate: ctx.profile.storm.scaledRate > 0,
          build,
        }),
      );
    }
  }
  const olds = runs.filter((r) => r.mode === 'fixed');
  const news = runs.filter((r) => r.mode === 'adaptive');
  // of an even count the upper middle: with two rounds, the slower storm is the row's figure, not the faster
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.ceil((xs.length - 1) / 2)] ?? NaN;
  const allDrained = (rs: StormRun[]) => rs.every((r) => r.drained);
  const nowMs = allDrained(news) ? median(news.map((r) => r.drainMs)) : null;
  const oldMs = allDrained(olds) ? median(olds.map((r) => r.drainMs)) : null;
  const p90 = (rs: StormRun[]) => median(rs.map((r) => r.p90FromReadyMs));
  const expected = n * perReader;
  const lost = sum(runs.map((r) => r.lost));
  const met = nowMs !== null && nowMs <= 30_000 && lost === 0;
  const sec = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : 'n/a');
  const describe = (r: StormRun) =>
    `[${r.mode}] ${r.drained ? `all drained ${sec(r.drainMs)} after the process start (${sec(r.fromReadyMs)} after up)` : `not drained in ${r.limitMs / 1000} s: ${r.pendingReaders} readers, ${r.pendingTaps} taps pending`}; ` +
    `readers drained after up p50 ${sec(r.p50FromReadyMs)} / p90 ${sec(r.p90FromReadyMs)} / p99 ${sec(r.p99FromReadyMs)}; ` +
    `${r.events - r.eventsBefore}/${expected} taps stored, lost ${r.lost}; process start ${sec(r.startupMs)}; ` +
    `${r.refusals} refused attempts (${r.busyRefusals} busy CONNACK; ${r.overflows} SYNs dropped by the kernel for a full accept queue; the gateway's count by reason: ${JSON.stringify(r.refusedBy)}); visits engine ${r.lagAtStart} taps behind at start, ` +
    `${r.lagAtDrain} when drained (done ${sec(r.settleMs)} later); connected/admitted/parked at ` +
    [5, 10, 20, 40, 60]
      .map((s) => {
        const x = r.timeline.find((t) => t.atMs >= s * 1000);
        return x ? `${s} s ${x.connected}/${x.admitted}/${x.parked}` : null;
      })
      .filter((x) => x !== null)
      .join(', ');
  const stormRow: Row = {
    id: 'reconnect-storm',
    figure: `reconnect storm: ${n.toLocaleString('en-US')} readers × ${perReader} unacked taps, gateway restart → drained`,
    generator: 'lightweight MQTT clients',
    value: nowMs !== null ? nowMs / 1000 : null,
    unit: 's',
    baseline: oldMs !== null ? oldMs / 1000 : null,
    baselineLabel: 'the same storm, old admission (fixed 500/s, bare close)',
    ratio: news.length && olds.length ? p90(news) / p90(olds) : null,
    target: '≤ 30 s, 0 lost',
    met,
    note:
      (nowMs === null ? 'n/a (not drained); ' : '') +
      `ratio = p90 of the readers' drain time after the gateway was up, new / old admission (median over ${news.length} run(s) each; of two, the slower). ` +
      runs.map(describe).join('. ') +
      `. New = parking (5 s), adaptive rate, busy CONNACK honoured by the clients; old = ${ctx.profile.storm.scaledRate > 0 ? `${Math.round((500 * n) / 10_000)}/s bucket (500/s scaled to ${n} readers)` : '500/s bucket'}, bare close. ` +
      `Client backoff ${BACKOFF.baseMs}–${BACKOFF.capMs} ms full jitter, connect timeout ${ctx.profile.storm.connectTimeoutMs / 1000} s (the device's default)` +
      (ctx.profile.storm.readers < 10_000
        ? `; ${ctx.profile.name} profile: ${n} readers, full run uses 10,000`
        : ''),
    details: { runs, expected, lost },
  };
  await fleet.all('close');
  return [rssRow, stormRow];
}

/**
 * The kernel's count of connections dropped because a listening socket's accept queue was full (Linux,
 * /proc/net/netstat TcpExt ListenOverflows, machine-wide); NaN elsewhere.
 */
export function listenOverflows(): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    const i = lines.findIndex((l) => l.startsWith('TcpExt:') && l.includes('ListenOverflows'));
    const names = lines[i]?.split(/\s+/) ?? [];
    const values = lines[i + 1]?.split(/\s+/) ?? [];
    return Number(values[names.indexOf('ListenOverflows')] ?? NaN);
  } catch {
    return Number.NaN;
  }
}

/** `name{stage="x"} 3` lines → { x: 3 } (non-zero only). */
function byStage(lines: string[], prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of lines) {
    if (!l.startsWith(prefix)) continue;
    const m = /stage="([^"]+)"\}\s+(\S+)/.exec(l);
    if (m && Number(m[2]) !== 0) out[m[1] as string] = Number(m[2]);
  }
  return out;
}

interface StormSample {
  atMs: number;
  connected: number;
  admitted: number;
  parked: number;
  waiting: number;
  rate: number;
  /** Admitted connections not yet connected, by step (gateway/src/broker/handshakes.ts), and those abandoned. */
  handshakes: Record<string, number>;
  abandoned: Record<string, number>;
  /** The readers' side (BenchReader.phase), summed over the load generators. */
  readers: Record<string, number>;
}

interface StormRun {
  mode: 'fixed' | 'adaptive';
  drained: boolean;
  /** From starting the gateway process to the last reader's ack. */
  drainMs: number;
  /** From the gateway being up (start returned) to the last reader's ack. */
  fromReadyMs: number;
  startupMs: number;
  limitMs: number;
  eventsBefore: number;
  events: number;
  acked: number;
  lost: number;
  pendingTaps: number;
  pendingReaders: number;
  /** Percentiles over all readers (a reader not drained counts as never). */
  p50FromReadyMs: number;
  p90FromReadyMs: number;
  p99FromReadyMs: number;
  refusals: number;
  busyRefusals: number;
  /** Committed taps the visits engine had not processed when the gateway came up. */
  lagAtStart: number;
  /** The gateway's count of refused connections, by reason. */
  refusedBy: Record<string, number>;
  timeline: StormSample[];
  /** Connections the kernel dropped for a full accept queue during the storm (machine-wide; NaN off Linux). */
  overflows: number;
  /** The same when every reader had drained, and how long the engine took to finish after. */
  lagAtDrain: number;
  settleMs: number;
}

/**
 * BENCH_STORM_ADMISSION: a JSON object of admission settings (gateway/src/broker/admission.ts) laid over the
 * defaults for the `adaptive` runs, to try a setting side by side with the old admission, e.g.
 * BENCH_STORM_ADMISSION='{"minPerSecond":500}'.
 */
const adaptiveOverride: Record<string, unknown> | null = process.env.BENCH_STORM_ADMISSION
  ? (JSON.parse(process.env.BENCH_STORM_ADMISSION) as Record<string, unknown>)
  : null;

/**
 * One storm: every reader journals `perReader` taps while no gateway runs, then a gateway process starts
 * on the same port and data dir with the given admission (`fixed`: the bucket before issue 15, bare close;
 * `adaptive`: the default), and we wait until every reader's taps are acked; the gateway is stopped after.
 */
async function stormOnce(
  ctx: RowContext,
  fleet: Fleet,
  o: {
    dataDir: string;
    mqttPort: number;
    perReader: number;
    mode: 'fixed' | 'adaptive';
    name: string;
    readers: number;
    scaledRate: boolean;
    /** A transpiled tree (bench/lib/build.ts) to run the gateway from. */
    build: string;
  },
): Promise<StormRun> {
  // The previous gateway is stopped. How long it took to stop (the first storm's gateway was idle, the next
  // ones had just taken 100,000 taps) grew the readers' back-off unequally: the second storm of a pair drained
  // about twice as slowly whichever admission it used. Every storm starts from the same back-off instead.
  await fleet.all('rearm', { connectTimeoutMs: ctx.profile.storm.connectTimeoutMs });
  const before = await fleet.all<{ refusals: number; busyRefusals: number }>('stats');
  const ackedBefore = await fleet.all<{ acked: number }>('drain', { timeoutMs: 0 });
  await fleet.all('queue', { perReader: o.perReader });
  await new Promise((r) => setTimeout(r, 1000));
  const base = gatewaySettings({ dataDir: o.dataDir, mqttPort: o.mqttPort });
  const settings = {
    ...base,
    // storm.scaledRate: the full run's shape on a smaller fleet (10,000 readers at 500/s, burst 1,000)
    ...(o.scaledRate
      ? {
          mqtt: {
            ...(base.mqtt as object),
            maxConnectionsPerSecond: Math.max(1, Math.round((500 * o.readers) / 10_000)),
            connectionBurst: Math.max(1, Math.round((1000 * o.readers) / 10_000)),
          },
        }
      : {}),
    ...(o.mode === 'fixed'
      ? { limits: { connectionAdmission: FIXED_ADMISSION } }
      : adaptiveOverride
        ? { limits: { connectionAdmission: adaptiveOverride } }
        : {}),
  };
  const overflowsBefore = listenOverflows();
  const tRestart = wallNow();
  // the restarted gateway runs transpiled JS under plain node, as production does (`npm run build`, the unit's
  // `node …/visittag-gateway.js`): its start is part of the timed outage, and under tsx it included
  // transforming the gateway's sources (and, with the writer thread, the thread's again)
  const worker = await ctx.worker(o.name, 'gateway-host', ['--expose-gc'], o.build);
  await worker.call('start', { settings }, 120_000);
  const ready = wallNow();
  const startupMs = ready - tRestart;
  const eventsBefore = (await worker.call<{ events: number }>('countEvents')).events;
  // committed taps the visits engine had not processed when this gateway came up (0 when the one before
  // finished its work before it stopped; see below)
  const lagAtStart = (await worker.call<{ events: number }>('visitLag')).events;
  ctx.say(`${o.mode}: gateway up in ${(startupMs / 1000).toFixed(1)} s; draining`);
  const limitMs = ctx.profile.storm.drainTimeoutMs * 2;
  // the gateway's view while the fleet drains, every 5 s: readers connected, connections admitted and parked
  // (each look renders the whole /metrics page: 3.8 % of the storm gateway's busiest 10 s at one every 2 s)
  const timeline: StormSample[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const lines = await worker
        .call<string[]>('metrics', {
          prefixes: ['visittag_connected_readers', 'visittag_mqtt_admission_', 'visittag_mqtt_handshakes'],
        })
        .catch(() => [] as string[]);
      const phases = await fleet
        .all<Record<string, number>>('phases', undefined, 10_000)
        .catch(() => [] as Record<string, number>[]);
      const readers: Record<string, number> = {};
      for (const p of phases) for (const [k, n] of Object.entries(p)) readers[k] = (readers[k] ?? 0) + n;
      const v = (name: string) => Number(lines.find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? NaN);
      timeline.push({
        atMs: wallNow() - ready,
        connected: v('visittag_connected_readers'),
        admitted: v('visittag_mqtt_admission_admitted'),
        parked: v('visittag_mqtt_admission_parked'),
        waiting: v('visittag_mqtt_admission_waiting'),
        rate: v('visittag_mqtt_admission_rate'),
        handshakes: byStage(lines, 'visittag_mqtt_handshakes{'),
        abandoned: byStage(lines, 'visittag_mqtt_handshakes_abandoned_total{'),
        readers,
      });
      await new Promise((r) => setTimeout(r, 5000));
    }
  })();
  const drains = await fleet.all<{
    pendingReaders: number;
    pendingTaps: number;
    lastDrainedAt: number;
    drainedAts: number[];
    acked: number;
  }>('drain', { timeoutMs: limitMs }, limitMs + 30_000);
  sampling = false;
  await sampler;
  const overflows = listenOverflows() - overflowsBefore;
  const total = sum(drains.map((d) => d.drainedAts.length + d.pendingReaders));
  const times = drains.flatMap((d) => d.drainedAts.map((t) => t - ready)).sort((x, y) => x - y);
  const pct = (q: number) => times[Math.ceil(q * total) - 1] ?? Number.POSITIVE_INFINITY;
  const pendingTaps = sum(drains.map((d) => d.pendingTaps));
  const last = Math.max(...drains.map((d) => d.lastDrainedAt));
  const after = await fleet.all<{ refusals: number; busyRefusals: number }>('stats');
  const { events } = await worker.call<{ events: number }>('countEvents');
  // Lost = acknowledged to a reader (deleted from its journal) but not in gateway.db. Taps still pending
  // on a reader are not lost (yet): counted apart.
  const acked = sum(drains.map((d) => d.acked));
  const lost = Math.max(0, acked - events);
  // the gateway's side of the storm: connections refused by reason (rate, busy, park-timeout, auth, …)
  const refusedBy = Object.fromEntries(
    (
      await worker.call<string[]>('metrics', { prefixes: ['visittag_mqtt_connections_refused_total'] })
    ).flatMap((l) => {
      const m = /reason="([^"]+)"\} (\d+)/.exec(l);
      return m ? [[m[1] as string, Number(m[2])]] : [];
    }),
  ) as Record<string, number>;
  // The storm's taps are acked; the visits engine may still be behind (it is slower than the ingest at 10
  // taps per message). Let it finish before the stop, bounded: a gateway stopped with a backlog hands it to
  // the next storm's gateway, whose ingest then waits on the engine (its back-pressure).
  const tSettle = wallNow();
  const lagAtDrain = (await worker.call<{ events: number }>('visitLag')).events;
  for (let lag = lagAtDrain; lag > 0 && wallNow() - tSettle < 120_000;) {
    await new Promise((r) => setTimeout(r, 250));
    lag = (await worker.call<{ events: number }>('visitLag')).events;
  }
  const settleMs = wallNow() - tSettle;
  await worker.call('stop', undefined, 60_000);
  await worker.call('exit').catch(() => undefined);
  ctx.say(
    `${o.mode}: ${pendingTaps === 0 ? `drained ${((last - ready) / 1000).toFixed(1)} s after up` : 'not drained'}`,
  );
  return {
    mode: o.mode,
    drained: pendingTaps === 0,
    drainMs: last - tRestart,
    fromReadyMs: last - ready,
    startupMs,
    limitMs,
    eventsBefore,
    events,
    acked: acked - sum(ackedBefore.map((d) => d.acked)),
    lost,
    pendingTaps,
    pendingReaders: sum(drains.map((d) => d.pendingReaders)),
    p50FromReadyMs: pct(0.5),
    p90FromReadyMs: pct(0.9),
    p99FromReadyMs: pct(0.99),
    lagAtStart,
    refusedBy,
    timeline,
    overflows,
    lagAtDrain,
    settleMs,
    refusals: sum(after.map((s) => s.refusals)) - sum(before.map((s) => s.refusals)),
    busyRefusals: sum(after.map((s) => s.busyRefusals)) - sum(before.map((s) => s.busyRefusals)),
  };
}
