/**
 * Hosts one full visittag device (createDevice from device/index.ts) with the simulated card reader and
 * simulated feedback, in its own process (its RSS is its own). Measures tap → durable journal → feedback:
 * from just before the simulated card enters the field to the feedback signal, on the same monotonic clock.
 * `bare` mode loads nothing but this IPC shell: the baseline RSS of a Node + tsx process.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { serve } from '../lib/serve.js';

interface DeviceLike {
  start(): Promise<void>;
  stop(graceMs?: number): Promise<void>;
  on(ev: 'tap', fn: (t: { decision: string; feedback: string }) => void): unknown;
}
interface ReaderLike {
  present(uid: string): void;
  remove(): void;
}
interface FeedbackLike {
  onSignal: ((s: { pattern: string; atMonoMs: number }) => void) | undefined;
}
interface DeviceModule {
  createDevice(o: {
    config: unknown;
    logger: pino.Logger;
    cardReader: ReaderLike;
    feedback: FeedbackLike;
    clockSynced?: () => boolean;
  }): DeviceLike;
  parseDeviceSettings(raw: unknown): unknown;
  SimulatedCardReader: new () => ReaderLike;
  SimulatedFeedback: new () => FeedbackLike;
}

const ROOT = resolve(import.meta.dirname, '../..');
// From a transpiled build (bench/lib/build.ts) the device is the .js beside it.
const ENTRY = join(ROOT, import.meta.filename.endsWith('.js') ? 'device/index.js' : 'device/index.ts');
let device: DeviceLike | null = null;
let reader: ReaderLike | null = null;
let feedback: FeedbackLike | null = null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

serve({
  async start(args: { settings: unknown }) {
    if (!existsSync(ENTRY)) throw new Error('component missing: device/index.ts');
    const mod = (await import(pathToFileURL(ENTRY).href)) as DeviceModule;
    const config = mod.parseDeviceSettings(args.settings);
    reader = new mod.SimulatedCardReader();
    feedback = new mod.SimulatedFeedback();
    const logger = pino({ level: 'warn', base: { app: 'bench-device' } }, pino.destination(2));
    device = mod.createDevice({ config, logger, cardReader: reader, feedback, clockSynced: () => true });
    await device.start();
    return true;
  },

  /** `count` taps, one at a time, `gapMs` apart; returns each tap's latency (ms) and the patterns seen. */
  async taps(args: { count: number; gapMs: number; uids: string[] }) {
    const r = reader;
    const f = feedback;
    if (!r || !f) throw new Error('device not started');
    const lat: number[] = [];
    const patterns: Record<string, number> = {};
    let timeouts = 0;
    for (let i = 0; i < args.count; i++) {
      const uid = args.uids[i % args.uids.length] as string;
      const done = new Promise<string | null>((res) => {
        const t = setTimeout(() => res(null), 5_000);
        f.onSignal = (s) => {
          clearTimeout(t);
          res(s.pattern);
        };
      });
      const t0 = performance.now();
      r.present(uid);
      const pattern = await done;
      const t1 = performance.now();
      f.onSignal = undefined;
      r.remove();
      if (pattern === null) timeouts++;
      else {
        lat.push(t1 - t0);
        patterns[pattern] = (patterns[pattern] ?? 0) + 1;
      }
      if (args.gapMs > 0) await sleep(args.gapMs);
    }
    return { lat, patterns, timeouts };
  },

  memory() {
    global.gc?.();
    return process.memoryUsage();
  },

  async stop() {
    await device?.stop();
    device = null;
    return true;
  },
});
