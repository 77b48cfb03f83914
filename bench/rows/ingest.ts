/**
 * Ingest throughput, three systems side by side with the same load generator and the same payloads:
 *  (a) Mosquitto relaying QoS 1 batches to one subscriber (publisher waits for PUBACK),
 *  (b) Mosquitto + a Node subscriber inserting each message into SQLite and acking it (publisher waits
 *      for that app-level ack),
 *  (g) the visittag gateway: auth, validate, dedupe, group commit, app-level ack.
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function burst(fleet: Fleet, ctx: RowContext, waitFor: 'puback' | 'ack'): Promise<BurstResult> {
  const p = ctx.profile.ingest;
  const rs = await fleet.all<BurstResult>(
    'burst',
    { durationMs: p.durationMs, batches: p.maxBatchesPerReader, waitFor, startAt: wallNow() + 300 },
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

export interface IngestResult {
  relay: { tapsPerSec: number; messages: number; received: number } | null;
  glue: { tapsPerSec: number; messages: number } | null;
  gateway: { tapsPerSec: number; messages: number; failed: number } | null;
  notes: string[];
}

/** Baseline (a): raw Mosquitto QoS 1 relay to one subscriber. */
async function relayBaseline(ctx: RowContext, url: string, w: Workers): Promise<IngestResult['relay']> {
  const p = ctx.profile.ingest;
  const sub = w.sub;
  await sub.call('start', { url, mode: 'relay' });
  const fleet = await Fleet.start(ctx, {
    reuse: [w.gen],
    name: 'relay-gen',
    url,
    readers: readerIds('rl', p.readers),
    batchSize: p.batchSize,
    appAcks: false,
  });
  await fleet.all('connect', { timeoutMs: 30_000, concurrency: 50 });
  const b = await burst(fleet, ctx, 'puback');
  let s = await sub.call<{ count: number; lastAt: number }>('stats');
  for (let i = 0; i < 200 && s.count < b.messages; i++) {
    await sleep(25);
    s = await sub.call<{ count: number; lastAt: number }>('stats');
  }
  await fleet.all('close');
  await sub.call('stop');
  const elapsed = Math.max(1, s.lastAt - b.startedAt);
  return { tapsPerSec: (s.count * p.batchSize * 1000) / elapsed, messages: b.messages, received: s.count };
}

/** Baseline (b): Mosquitto + per-message SQLite insert + app ack. */
async function glueBaseline(ctx: RowContext, url: string, w: Workers): Promise<IngestResult['glue']> {
  const p = ctx.profile.ingest;
  const sub = w.sub;
  await sub.call('start', { url, mode: 'glue' });
  const fleet = await Fleet.start(ctx, {
    reuse: [w.gen],
    name: 'glue-gen',
    url,
    readers: readerIds('gl', p.readers),
    batchSize: p.batchSize,
    appAcks: true,
  });
  await fleet.all('connect', { timeoutMs: 30_000, concurrency: 50 });
  const b = await burst(fleet, ctx, 'ack');
  await fleet.all('close');
  await sub.call('stop');
  return { tapsPerSec: (b.taps * 1000) / Math.max(1, b.elapsedMs), messages: b.messages };
}

async function gatewayRun(ctx: RowContext, w: Workers): Promise<IngestResult['gateway']> {
  const p = ctx.profile.ingest;
  const gw = await startGateway(ctx, { name: 'gateway', dataDir: ctx.tempDir('ingest-gw') });
  const readers = readerIds('gw', p.readers);
  await provision(gw, readers);
  const fleet = await Fleet.start(ctx, {
    reuse: [w.gen],
    name: 'gw-gen',
    url: gw.url,
    readers,
    batchSize: p.batchSize,
    appAcks: true,
  });
  await fleet.all('connect', { timeoutMs: 60_000, concurrency: 50 });
  const b = await burst(fleet, ctx, 'ack');
  await fleet.all('close');
  await gw.worker.call('stop');
  return { tapsPerSec: (b.taps * 1000) / Math.max(1, b.elapsedMs), messages: b.messages, failed: b.failed };
}

export async function measureIngest(ctx: RowContext): Promise<IngestResult> {
  const notes: string[] = [];
  const mosq = await startMosquitto();
  ctx.onCleanup(() => mosq.stop());
  notes.push(`mosquitto ${mosq.version}`);
  // One load-generator process and one subscriber process, reused by the three runs (they run one after another).
  const [gen, sub] = await Promise.all([ctx.worker('gen', 'loadgen'), ctx.worker('sub', 'subscriber')]);
  const w: Workers = { gen, sub };
  const relay = await relayBaseline(ctx, mosq.url, w);
  const glue = await glueBaseline(ctx, mosq.url, w);
  let gateway: IngestResult['gateway'] = null;
  if (!componentPresent('gateway/index.ts')) notes.push('gateway: n/a (component missing)');
  else gateway = await gatewayRun(ctx, w);
  return { relay, glue, gateway, notes };
}

export function ingestRows(r: IngestResult, ctx: RowContext): Row[] {
  const p = ctx.profile.ingest;
  const shape = `${p.readers} readers × 1 batch in flight, ${p.batchSize} taps/batch, ${p.durationMs / 1000} s`;
  const mk = (id: string, baseline: number | null, baselineLabel: string, targetRatio: number): Row => {
    const base = {
      id,
      figure: `gateway durable ingest vs ${baselineLabel}`,
      generator: 'lightweight MQTT clients' as const,
      unit: 'taps/s',
      target: `≥ ${targetRatio.toFixed(1)}×`,
    };
    if (!r.gateway) return { ...naRow(base, 'n/a (component missing)'), baseline, baselineLabel };
    const value = r.gateway.tapsPerSec;
    const ratio = baseline ? value / baseline : null;
    return {
      ...base,
      value,
      baseline,
      baselineLabel,
      ratio,
      met: ratio === null ? null : ratio >= targetRatio,
      note: `${shape}; ${r.notes.join('; ')}${r.gateway.failed ? `; ${r.gateway.failed} readers stalled` : ''}`,
      details: { relay: r.relay, glue: r.glue, gateway: r.gateway },
    };
  };
  return [
    mk('ingest-vs-mosquitto', r.relay?.tapsPerSec ?? null, 'Mosquitto QoS 1 relay', 1.0),
    mk('ingest-vs-glue', r.glue?.tapsPerSec ?? null, 'Mosquitto + SQLite glue', 3.0),
  ];
}
