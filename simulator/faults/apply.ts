/** Turns planned faults into actions on the world (proxies, backend, processes), with their healing. */
import type { Timeline } from '../timeline.js';
import type { World } from '../world.js';
import type { FaultEvent } from './plan.js';

export interface FaultRuntime {
  world: World;
  timeline: Timeline;
  /** A reader is running again: replay the taps that met it dead. */
  onReaderBack: (readerId: string) => Promise<void>;
  /** Faults injected, by kind. */
  counts: Record<string, number>;
  healAll?: () => Promise<void>;
}

const backendState = new WeakMap<World, { outage: number; errors: number; rate: number }>();

function applyBackend(world: World): void {
  const st = backendState.get(world) ?? { outage: 0, errors: 0, rate: 0 };
  world.backend.setFaults({
    ...(st.outage > 0 ? { down: true } : {}),
    ...(st.errors > 0
      ? {
          errorRate: st.rate,
          timeoutRate: 0.05,
          resetRate: 0.05,
          acceptThenResetRate: 0.1,
          latencyMs: { min: 0, max: 5 },
        }
      : {}),
  });
}

export async function applyFault(rt: FaultRuntime, f: FaultEvent): Promise<void> {
  const { world, timeline } = rt;
  rt.counts[f.kind] = (rt.counts[f.kind] ?? 0) + 1;
  rt.healAll ??= () => healAll(rt);
  const later = (label: string, run: () => void | Promise<void>) =>
    timeline.add({ atMs: world.clock.now() + f.durationMs, label, run });
  const proxy = f.readerId ? world.proxies.get(f.readerId) : undefined;
  const reader = f.readerId ? world.readers.get(f.readerId) : undefined;
  switch (f.kind) {
    case 'partition':
    case 'blackhole':
      proxy?.setMode(f.kind);
      later(`heal ${f.kind}`, () => proxy?.setMode('pass'));
      break;
    case 'latency':
      proxy?.setLatency(f.value);
      later('heal latency', () => proxy?.setLatency(0));
      break;
    case 'reset':
      for (const p of world.proxies.values()) p.resetAll();
      break;
    case 'duplicate-publish':
      for (const p of world.proxies.values()) p.setDuplicateRate(f.value);
      later('heal duplicate-publish', () => {
        for (const p of world.proxies.values()) p.setDuplicateRate(0);
      });
      break;
    case 'backend-outage':
    case 'backend-errors': {
      const st = backendState.get(world) ?? { outage: 0, errors: 0, rate: 0 };
      backendState.set(world, st);
      if (f.kind === 'backend-outage') st.outage++;
      else {
        st.errors++;
        st.rate = f.value;
      }
      applyBackend(world);
      later(`heal ${f.kind}`, () => {
        if (f.kind === 'backend-outage') st.outage = Math.max(0, st.outage - 1);
        else st.errors = Math.max(0, st.errors - 1);
        applyBackend(world);
      });
      break;
    }
    case 'clock-skew':
      break; // applied when the reader was created (its DeviceClock)
    case 'gateway-kill': {
      const gw = world.gateway;
      if (!gw.kill || !gw.restart || !gw.alive) break;
      await gw.kill();
      later('restart gateway', () => restartGateway(world));
      break;
    }
    case 'device-kill': {
      if (!reader?.kill || !reader.restart || !reader.alive) break;
      // value 1: inside the next tap's commit (mid-write); 2: right after the next tap's feedback
      await reader.kill(f.value === 2 ? { afterFeedback: true } : { midWrite: true });
      void reader.exited?.().then(() => {
        timeline.add({
          atMs: world.clock.now() + f.durationMs,
          label: 'restart reader',
          run: () => restartReader(rt, f.readerId as string, true),
        });
      });
      break;
    }
    case 'power-loss': {
      if (!reader?.kill || !reader.restart || !reader.alive) break;
      await reader.kill();
      later('power back', async () => {
        await restartReader(rt, f.readerId as string, false);
        timeline.add({ atMs: world.clock.now() + f.value, label: 'ntp sync', run: () => reader.sync() });
      });
      break;
    }
  }
}

async function restartGateway(world: World): Promise<void> {
  const gw = world.gateway;
  if (gw.alive || !gw.restart) return;
  await world.whileRunning(gw.restart(), 0);
  for (const p of world.proxies.values()) p.setUpstreamPort(gw.mqttPort);
}

async function restartReader(rt: FaultRuntime, readerId: string, synced: boolean): Promise<void> {
  const r = rt.world.readers.get(readerId);
  if (!r?.restart || r.alive) return;
  await rt.world.whileRunning(r.restart({ synced }), 0);
  await rt.onReaderBack(readerId);
}

async function healAll(rt: FaultRuntime): Promise<void> {
  const { world } = rt;
  for (const p of world.proxies.values()) {
    p.setMode('pass');
    p.setLatency(0);
    p.setDuplicateRate(0);
  }
  backendState.delete(world);
  world.backend.setFaults({});
  await restartGateway(world);
  for (const [id, r] of world.readers) {
    if (r.alive && r.kill && r.restart && (r as { armed?: boolean }).armed) {
      await r.kill();
    }
    if (!r.alive) await restartReader(rt, id, true);
  }
}
