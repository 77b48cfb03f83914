/**
 * Ingest throughput: the same load generator (lightweight MQTT clients, one message in flight per reader,
 * like a device) against three systems, side by side in one run:
 *  (a) Mosquitto relaying QoS 1 messages to one subscriber (the publisher waits for PUBACK; counted at
 *      the subscriber);
 *  (b) the pipeline a user would otherwise write: Mosquitto + a Node subscriber inserting each message into
 *      SQLite (WAL, synchronous=FULL, one transaction per message) and then acking it so the device may delete;
 *  (g) the visittag gateway: auth, validate, dedupe, group commit, visits engine, app-level ack.
 *
 * The target rows compare the gateway with **batched taps per message** (`ingest.batchSize`, the device's
 * default uplink batch is 100) against the baselines carrying **one tap per message**
 * (`ingest.baselineBatchSize`, 1): that is the issue's "(batch taps per message)", and what a broker + glue
 * pipeline sends (one MQTT message per card read). Two context rows keep the comparison honest: Mosquitto
 * relaying the gateway's own batched payloads (a pure byte relay of the same bytes), and the gateway with
 * one tap per message against the glue with one tap per message.
 */
import type { WorkerHandle } from '../lib/child.js';
import { componentPresent, readerIds, type RowContext } from '../lib/ctx.js';
import { Fleet, provision, startGateway, sum } from '../lib/harness.js';
import { startMosquitto } from '../lib/mosquitto.js';
import { wallNow } from '../lib/stats.js';
import { naRow, type Row } from '../lib/types.js';

interface BurstResult {
  messages: number;
  taps: number;
  failed: number;
  startedAt: number;
  lastAt: number;
  elapsedMs: number;
}

interface Workers {
  gen: WorkerHandle;
  sub: WorkerHandle;
}

/** One measured run: taps/s and messages/s at a given number of taps per message. */
export interface Rate {
  tapsPerSec: number;
  messagesPerSec: number;
  tapsPerMessage: number;
  messages: number;
  failed: number;
  /** Gateway runs: visit events not yet processed when the burst ended; ms to catch up (null: not in 60 s). */
  visitLag?: { atEnd: number; catchUpMs: number | null };
  /**
   * Gateway runs: the gateway process's CPU time (user + system) per acked tap, over the burst alone and
   * over the burst plus the visits engine's catch-up (µs). Load on a shared machine stretches wall time
   * much more than CPU time, so this is the steadier figure for before/after comparisons.
   */
  cpuUsPerTap?: { burst: number; withCatchUp: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Batches to pre-encode per reader so a reader never runs dry before the time is up. */
function batchesFor(ctx: RowContext, tapsPerMessage: number): number {
  const p = ctx.profile.ingest;
  return Math.max(2, Math.ceil(p.maxTapsPerReader / tapsPerMessage));
}

async function burst(
  fleet: Fleet,
  ctx: RowContext,
  waitFor: 'puback' | 'ack',
  tpm: number,
): Promise<BurstResult> {
  const p = ctx.profile.ingest;
  const rs = await fleet.all<BurstResult>(
    'burst',
    { durationMs: p.durationMs, batches: batchesFor(ctx, tpm), waitFor, startAt: wallNow() + 300 },
    p.durationMs + 120_000,
  );
  const startedAt = Math.min(...rs.map((r) => r.startedAt));
  const lastAt = Math.max(...rs.map((r) => r.lastAt));
  return {
    messages: sum(rs.map((r) => r.messages)),
    taps: sum(rs.map((r) => r.taps)),
    failed: sum(rs.map((r) => r.failed)),
    startedAt,
    lastAt,
    elapsedMs: lastAt - startedAt,
  };
}

const rate = (messages: number, tpm: number, elapsedMs: number, failed: number): Rate => {
  const s = Math.max(1, elapsedMs) / 1000;
  return {
    tapsPerSec: (messages * tpm) / s,
    messagesPerSec: messages / s,
    tapsPerMessage: tpm,
    messages,
    failed,
  };
};

export interface IngestResult {
  /** Mosquitto relay, one tap per message (target baseline). */
  relay: Rate | null;
  /** Mosquitto relay of the gateway's own batched payloads (context). */
  relaySame: Rate | null;
  /** Mosquitto + SQLite glue, one tap per message (target baseline). */
  glue: Rate | null;
  /** The gateway, batched taps per message (the figure). */
  gateway: Rate | null;
  /** The gateway, one tap per message (context). */
  gatewayOne: Rate | null;
  notes: string[];
}

/** Baseline (a): raw Mosquitto QoS 1 relay to one subscriber. */
async function relayRun(
  ctx: RowContext,
  url: string,
  w: Workers,
  tpm: number,
  prefix: string,
): Promise<Rate> {
  const p = ctx.profile.ingest;
  await w.sub.call('start', { url, mode: 'relay' });
  const fleet = await Fleet.start(ctx, {
    reuse: [w.gen],
    name: `relay-gen-${tpm}`,
    url,
    readers: readerIds(prefix, p.readers),
    batchSize: tpm,
    appAcks: false,
  });
  await fleet.all('connect', { timeoutMs: 30_000, concurrency: 50 });
  const b = await burst(fleet, ctx, 'puback', tpm);
  let s = await w.sub.call<{ count: number; lastAt: number }>('stats');
  for (let i = 0; i < 200 && s.count < b.messages; i++) {
    await sleep(25);
    s = await w.sub.call<{ count: number; lastAt: number }>('stats');
  }
  await fleet.all('close');
  await w.sub.call('stop');
  return rate(s.count, tpm, s.lastAt - b.startedAt, b.messages - s.count);
}

/** Baseline (b): Mosquitto + per-message SQLite insert + app ack. */
async function glueRun(ctx: RowContext, url: string, w: Workers, tpm: number): Promise<Rate> {
  const p = ctx.profile.ingest;
  await w.sub.call('start', { url, mode: 'glue' });
  const fleet = await Fleet.start(ctx, {
    reuse: [w.gen],
    name: `glue-gen-${tpm}`,
    url,
    readers: readerIds('gl', p.readers),
    batchSize: tpm,
    appAcks: true,
  });
  await fleet.all('connect', { timeoutMs: 30_000, concurrency: 50 });
  const b = await burst(fleet, ctx, 'ack', tpm);
  await fleet.all('close');
  await w.sub.call('stop');
  return rate(b.messages, tpm, b.elapsedMs, b.failed);
}

/** (g): a fresh gateway process (own data dir) per run. */
async function gatewayRun(ctx: RowContext, w: Workers, tpm: number): Promise<Rate> {
  const p = ctx.profile.ingest;
  const gw = await startGateway(ctx, { name: `gateway-${tpm}`, dataDir: ctx.tempDir(`ingest-gw-${tpm}`) });
  const readers = readerIds(`g${tpm}`, p.readers);
  await provision(gw, readers);
  const fleet = await Fleet.start(ctx, {
    reuse: [w.gen],
    name: `gw-gen-${tpm}`,
    url: gw.url,
    readers,
    batchSize: tpm,
    appAcks: true,
  });
  await fleet.all('connect', { timeoutMs: 60_000, concurrency: 50 });
  const cpu = async () => (await gw.worker.call<{ us: number }>('cpu')).us;
  const cpu0 = await cpu();
  const b = await burst(fleet, ctx, 'ack', tpm);
  const cpu1 = await cpu();
  // The visits engine runs behind the acks: how far behind it was when the burst ended, and how long
  // it took to catch up (so a figure that only moved work past the end of the run shows).
  const lagAtEnd = (await gw.worker.call<{ events: number }>('visitLag')).events;
  const t0 = wallNow();
  let lag = lagAtEnd;
  while (lag > 0 && wallNow() - t0 < 60_000) {
    await sleep(20);
    lag = (await gw.worker.call<{ events: number }>('visitLag')).events;
  }
  const catchUpMs = lag > 0 ? null : wallNow() - t0;
  const cpu2 = await cpu();
  await fleet.all('close');
  await gw.worker.call('stop');
  const taps = Math.max(1, b.messages * tpm);
  return {
    ...rate(b.messages, tpm, b.elapsedMs, b.failed),
    visitLag: { atEnd: lagAtEnd, catchUpMs },
    cpuUsPerTap: { burst: (cpu1 - cpu0) / taps, withCatchUp: (cpu2 - cpu0) / taps },
  };
}

export async function measureIngest(ctx: RowContext): Promise<IngestResult> {
  const p = ctx.profile.ingest;
  const notes: string[] = [];
  const mosq = await startMosquitto();
  ctx.onCleanup(() => mosq.stop());
  notes.push(`mosquitto ${mosq.version}`);
  // One load-generator process and one subscriber process, reused by every run (one after another).
  const [gen, sub] = await Promise.all([ctx.worker('gen', 'loadgen'), ctx.worker('sub', 'subscriber')]);
  const w: Workers = { gen, sub };
  const one = p.baselineBatchSize;
  const relay = await relayRun(ctx, mosq.url, w, one, 'rl');
  const glue = await glueRun(ctx, mosq.url, w, one);
  let gateway: Rate | null = null;
  let gatewayOne: Rate | null = null;
  if (!componentPresent('gateway/index.ts')) notes.push('gateway: n/a (component missing)');
  else {
    gateway = await gatewayRun(ctx, w, p.batchSize);
    gatewayOne = p.batchSize === one ? gateway : await gatewayRun(ctx, w, one);
  }
  const relaySame = p.batchSize === one ? relay : await relayRun(ctx, mosq.url, w, p.batchSize, 'rs');
  return { relay, relaySame, glue, gateway, gatewayOne, notes };
}

const perMsg = (n: number) => `${n} tap${n === 1 ? '' : 's'}/message`;
/** The backlog note, and the rate through the visits engine: taps / (burst + catch-up). */
const fmtLag = (r: Rate) => {
  const lag = r.visitLag;
  if (!lag) return '';
  const taps = r.messages * r.tapsPerMessage;
  const burstS = r.tapsPerSec > 0 ? taps / r.tapsPerSec : 0;
  const through =
    lag.catchUpMs === null
      ? ''
      : `, i.e. ${Math.round(taps / (burstS + lag.catchUpMs / 1000)).toLocaleString('en-US')} taps/s through the visits engine`;
  return `, visits engine ${lag.atEnd.toLocaleString('en-US')} taps behind at the end (caught up ${
    lag.catchUpMs === null ? 'not within 60 s' : `in ${(lag.catchUpMs / 1000).toFixed(2)} s`
  }${through})`;
};
const fmtRate = (r: Rate) =>
  `${Math.round(r.tapsPerSec).toLocaleString('en-US')} taps/s = ${Math.round(r.messagesPerSec).toLocaleString('en-US')} msg/s at ${perMsg(r.tapsPerMessage)}${
    r.cpuUsPerTap
      ? ` (gateway CPU ${Math.round(r.cpuUsPerTap.burst)} µs/tap in the burst, ${Math.round(r.cpuUsPerTap.withCatchUp)} with the visits catch-up)`
      : ''
  }`;

export function ingestRows(r: IngestResult, ctx: RowContext): Row[] {
  const p = ctx.profile.ingest;
  const shape = `${p.readers} readers × 1 message in flight, ${p.durationMs / 1000} s per run`;
  const all: [string, Rate | null][] = [
    ['gateway', r.gateway],
    ['gateway 1-tap', r.gatewayOne],
    ['relay', r.relay],
    ['relay same payloads', r.relaySame],
    ['glue', r.glue],
  ];
  const rates = all
    .flatMap(([k, v]) =>
      v ? [`${k} ${fmtRate(v)}${v.failed ? ` (${v.failed} stalled)` : ''}${fmtLag(v)}`] : [],
    )
    .join('; ');
  const mk = (
    id: string,
    figure: string,
    value: Rate | null,
    baseline: Rate | null,
    baselineLabel: string,
    target: number | null,
  ): Row => {
    const base = {
      id,
      figure,
      generator: 'lightweight MQTT clients' as const,
      unit: 'taps/s',
      target: target === null ? '— (context)' : `≥ ${target.toFixed(1)}×`,
    };
    if (!value) return { ...naRow(base, 'n/a (component missing)'), baselineLabel };
    const ratio = baseline ? value.tapsPerSec / baseline.tapsPerSec : null;
    return {
      ...base,
      value: value.tapsPerSec,
      baseline: baseline?.tapsPerSec ?? null,
      baselineLabel,
      ratio,
      met: ratio === null || target === null ? null : ratio >= target,
      note:
        id === 'ingest-vs-mosquitto'
          ? `${shape}; ${rates}; ${r.notes.join('; ')}`
          : 'runs: see ingest-vs-mosquitto',
      details: {
        relay: r.relay,
        relaySame: r.relaySame,
        glue: r.glue,
        gateway: r.gateway,
        gatewayOne: r.gatewayOne,
      },
    };
  };
  const b = perMsg(p.batchSize);
  const one = perMsg(p.baselineBatchSize);
  return [
    mk(
      'ingest-vs-mosquitto',
      `gateway durable ingest (${b}) vs Mosquitto QoS 1 relay (${one})`,
      r.gateway,
      r.relay,
      `Mosquitto relay, ${one}`,
      1.0,
    ),
    mk(
      'ingest-vs-glue',
      `gateway durable ingest (${b}) vs Mosquitto + SQLite glue (${one})`,
      r.gateway,
      r.glue,
      `Mosquitto + SQLite glue, ${one}`,
      3.0,
    ),
    mk(
      'ingest-vs-relay-same-payload',
      `context: gateway (${b}) vs Mosquitto relaying the same ${b}`,
      r.gateway,
      r.relaySame,
      `Mosquitto relay, ${b}`,
      null,
    ),
    mk(
      'ingest-one-tap-vs-glue',
      `context: gateway (${one}) vs Mosquitto + SQLite glue (${one})`,
      r.gatewayOne,
      r.glue,
      `Mosquitto + SQLite glue, ${one}`,
      null,
    ),
  ];
}
