/**
 * Soak host for one full device (createDevice, simulated reader and feedback), online to a real gateway:
 * taps in chunks, and after each chunk the memory (after a forced GC when --expose-gc is on; VmRSS too) and
 * how many taps the journal still holds (0 = every tap acknowledged by the gateway and deleted).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { serve } from '../lib/serve.js';

interface DeviceLike {
  start(): Promise<void>;
  stop(graceMs?: number): Promise<void>;
  status(): { queueDepth: number; connected: boolean };
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
const ENTRY = join(ROOT, import.meta.filename.endsWith('.js') ? 'device/index.js' : 'device/index.ts');
let device: DeviceLike | null = null;
let reader: ReaderLike | null = null;
let feedback: FeedbackLike | null = null;
let tapped = 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function vmRss(): number {
  const st = readFileSync('/proc/self/status', 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? NaN) * 1024;
}

function memory() {
  global.gc?.();
  return { ...process.memoryUsage(), vmRss: vmRss() };
}

serve({
  async start(args: { settings: unknown }) {
    if (!existsSync(ENTRY)) throw new Error('component missing: device/index.ts');
    const mod = (await import(pathToFileURL(ENTRY).href)) as DeviceModule;
    const config = mod.parseDeviceSettings(args.settings);
    reader = new mod.SimulatedCardReader();
    feedback = new mod.SimulatedFeedback();
    const logger = pino({ level: 'warn', base: { app: 'bench-soak-device' } }, pino.destination(2));
    device = mod.createDevice({ config, logger, cardReader: reader, feedback, clockSynced: () => true });
    await device.start();
    return true;
  },

  memory,

  /** `count` taps one after the other (each waits for its feedback); then the memory and journal depth. */
  async chunk(args: { count: number; uids: string[] }) {
    const r = reader;
    const f = feedback;
    const d = device;
    if (!r || !f || !d) throw new Error('device not started');
    let timeouts = 0;
    for (let i = 0; i < args.count; i++) {
      const uid = args.uids[tapped++ % args.uids.length] as string;
      const done = new Promise<boolean>((res) => {
        const t = setTimeout(() => res(false), 5_000);
        f.onSignal = () => {
          clearTimeout(t);
          res(true);
        };
      });
      r.present(uid);
      if (!(await done)) timeouts++;
      f.onSignal = undefined;
      r.remove();
      // let the uplink's acks in now and then (a device's taps are seconds apart)
      if (i % 50 === 49) await sleep(1);
    }
    return { tapped, timeouts, queueDepth: d.status().queueDepth, memory: memory() };
  },

  /** Waits until the journal is empty (all acknowledged) or the time is up. */
  async settle(args: { timeoutMs: number }) {
    const d = device;
    if (!d) throw new Error('device not started');
    const deadline = Date.now() + args.timeoutMs;
    while (d.status().queueDepth > 0 && Date.now() < deadline) await sleep(50);
    return { queueDepth: d.status().queueDepth, connected: d.status().connected, memory: memory() };
  },

  async stop() {
    await device?.stop();
    device = null;
    return true;
  },
});
