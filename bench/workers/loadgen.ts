/**
 * Load generator process: a fleet of lightweight MQTT protocol clients (see lib/fleet.ts), driven over
 * IPC by bench/run.ts. It runs in its own process so it never shares the event loop of the system under test.
 */
import { BenchReader, type FleetOptions } from '../lib/fleet.js';
import { emit, serve } from '../lib/serve.js';
import { wallNow } from '../lib/stats.js';
import { seeded, type TapEventInput } from '../lib/taps.js';

let readers: BenchReader[] = [];
let opts: FleetOptions | null = null;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(pred: () => boolean, timeoutMs: number, stepMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (pred()) return true;
    await sleep(stepMs);
  }
  return pred();
}

serve({
  setup(args: Omit<FleetOptions, 'random'> & { seed: number }) {
    opts = { ...args, random: seeded(args.seed) };
    readers = args.readers.map((r) => new BenchReader(r, opts as FleetOptions));
    return { readers: readers.length };
  },

  /** Connects every reader (with a bounded number of CONNECTs in flight). */
  async connect(args: { timeoutMs: number; concurrency: number }) {
    const t0 = wallNow();
    let i = 0;
    const deadline = Date.now() + args.timeoutMs;
    const lane = async () => {
      while (i < readers.length && Date.now() < deadline) {
        const r = readers[i++] as BenchReader;
        r.connect();
        await Promise.race([r.whenConnected(), sleep(Math.max(0, deadline - Date.now()))]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(args.concurrency, readers.length) }, lane));
    await waitUntil(() => readers.every((r) => r.connected), Math.max(0, deadline - Date.now()));
    const connected = readers.filter((r) => r.connected).length;
    const refusals = readers.reduce((s, r) => s + r.refusals, 0);
    return { connected, refusals, elapsedMs: wallNow() - t0 };
  },

  /**
   * Each reader publishes pre-encoded batches back to back (one in flight, like a device), waiting
   * for PUBACK (`puback`) or for the app-level ack covering the batch (`ack`), until the time is up.
   */
  async burst(args: { durationMs: number; batches: number; waitFor: 'puback' | 'ack'; startAt: number }) {
    const batchSize = (opts as FleetOptions).batchSize;
    const plans = readers.map((r) => {
      const out: { lastSeq: number; payload: Buffer }[] = [];
      for (let b = 0; b < args.batches; b++) {
        const events: TapEventInput[] = [];
        for (let k = 0; k < batchSize; k++) events.push(r.source.next(wallNow()));
        out.push({
          lastSeq: events[events.length - 1]?.seq ?? 0,
          payload: r.source.batch(events, wallNow()),
        });
      }
      return out;
    });
    await sleep(Math.max(0, args.startAt - wallNow()));
    const t0 = wallNow();
    const stopAt = t0 + args.durationMs;
    let messages = 0;
    let failed = 0;
    let lastAt = t0;
    await Promise.all(
      readers.map(async (r, idx) => {
        for (const b of plans[idx] ?? []) {
          if (wallNow() >= stopAt) break;
          const ok = await r.publish(b.payload);
          if (!ok) {
            failed++;
            break;
          }
          if (args.waitFor === 'ack') await Promise.race([r.waitAck(b.lastSeq), sleep(30_000)]);
          if (args.waitFor === 'ack' && r.ackedUpTo < b.lastSeq) {
            failed++;
            break;
          }
          messages++;
          lastAt = wallNow();
        }
      }),
    );
    return { messages, taps: messages * batchSize, failed, startedAt: t0, lastAt, elapsedMs: lastAt - t0 };
  },

  /** One-tap batches at a fixed total rate over random connected readers; returns each tap's send time. */
  async paced(args: { tapsPerSecond: number; durationMs: number }) {
    const sent: [string, number, number][] = [];
    // Only readers that are online: a tap queued on an offline reader would measure its reconnect, not the pipeline.
    const online = readers.filter((r) => r.connected);
    if (online.length === 0) throw new Error('no connected reader to pace taps on');
    const t0 = wallNow();
    const rnd = seeded(7);
    let done = 0;
    const total = Math.floor((args.tapsPerSecond * args.durationMs) / 1000);
    while (done < total) {
      const due = Math.min(total, Math.floor(((wallNow() - t0) / 1000) * args.tapsPerSecond));
      for (; done < due; done++) {
        const r = online[Math.floor(rnd() * online.length)] as BenchReader;
        const at = wallNow();
        const e = r.source.next(at);
        sent.push([r.spec.readerId, e.seq, at]);
        r.queue([e]);
      }
      await sleep(2);
    }
    return { sent, elapsedMs: wallNow() - t0 };
  },

  /** Every disconnected reader forgets the back-off of the current outage (FleetReader.rearm). */
  rearm(args?: { connectTimeoutMs?: number }) {
    for (const r of readers) r.rearm(args?.connectTimeoutMs);
    return { rearmed: readers.filter((r) => !r.connected).length };
  },

  /** Adds `perReader` new taps to every reader (sent now if connected, else after reconnect). */
  queue(args: { perReader: number }) {
    for (const r of readers) {
      const events: TapEventInput[] = [];
      for (let k = 0; k < args.perReader; k++) events.push(r.source.next(wallNow()));
      r.queue(events);
    }
    return { queued: readers.length * args.perReader };
  },

  /** Waits until every reader's journal is empty (all acked); reports when the last one drained. */
  async drain(args: { timeoutMs: number }) {
    await waitUntil(() => readers.every((r) => r.unacked.length === 0), args.timeoutMs, 50);
    const pending = readers.filter((r) => r.unacked.length > 0);
    const lastDrainedAt = Math.max(0, ...readers.map((r) => r.drainedAt ?? 0));
    return {
      drained: readers.length - pending.length,
      pendingReaders: pending.length,
      pendingTaps: pending.reduce((s, r) => s + r.unacked.length, 0),
      lastDrainedAt,
      // when each drained reader's last tap was acked (the storm row's percentiles)
      drainedAts: readers.flatMap((r) =>
        r.drainedAt !== null && r.unacked.length === 0 ? [r.drainedAt] : [],
      ),
      acked: readers.reduce((s, r) => s + r.ackedUpTo, 0),
    };
  },

  /** How many readers are in each phase (BenchReader.phase); `tcpUpOver10s`: waiting over 10 s for a CONNACK. */
  phases() {
    const out = { connected: 0, 'tcp-up': 0, 'tcp-pending': 0, idle: 0, tcpUpOver10s: 0 };
    for (const r of readers) {
      const p = r.phase();
      out[p.phase]++;
      if (p.phase === 'tcp-up' && (p.waitMs ?? 0) > 10_000) out.tcpUpOver10s++;
    }
    return out;
  },

  stats() {
    return {
      readers: readers.length,
      connected: readers.filter((r) => r.connected).length,
      connects: readers.reduce((s, r) => s + r.connects, 0),
      refusals: readers.reduce((s, r) => s + r.refusals, 0),
      busyRefusals: readers.reduce((s, r) => s + r.busyRefusals, 0),
      rssBytes: process.memoryUsage().rss,
    };
  },

  async close() {
    for (const r of readers) r.close();
    await sleep(50);
    readers = [];
    return { closed: true };
  },
});

process.on('uncaughtException', (err) => emit('error', err.stack ?? String(err)));
