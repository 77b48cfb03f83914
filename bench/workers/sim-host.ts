/**
 * Runs one simulated day through the simulator's API (simulator/run.ts `runSimulation`) in its own
 * process: real device and gateway code on virtual time, with the fake backend and the invariant checker.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serve } from '../lib/serve.js';

interface SimReport {
  ok: boolean;
  wallMs: number;
  virtualDayMs: number;
  drainMs: number;
  counts: { taps: number; actions: number; backendEvents: Record<string, number> };
  results: { name?: string; ok?: boolean }[];
}

const ROOT = resolve(import.meta.dirname, '../..');
const ENTRY = join(ROOT, 'simulator/run.ts');

serve({
  async day(args: { readers: number; staff: number; hours: number; seed: number }) {
    if (!existsSync(ENTRY)) throw new Error('component missing: simulator/run.ts');
    const mod = (await import(pathToFileURL(ENTRY).href)) as {
      runSimulation?: (o: Record<string, unknown>) => Promise<SimReport>;
    };
    if (typeof mod.runSimulation !== 'function') throw new Error('component missing: runSimulation');
    const t0 = performance.now();
    const r = await mod.runSimulation({ ...args, faults: [], keep: 'never' });
    const outerMs = performance.now() - t0;
    return {
      ok: r.ok,
      wallMs: r.wallMs,
      outerMs,
      virtualDayMs: r.virtualDayMs,
      drainMs: r.drainMs,
      taps: r.counts.taps,
      actions: r.counts.actions,
      backendEvents: r.counts.backendEvents,
      failedChecks: r.results.filter((c) => c.ok === false).map((c) => c.name ?? '?'),
    };
  },
});
