/**
 * Boots a simulated world in a fresh temp dir: the fake planning backend, the real gateway (in
 * process, or a child process for SIGKILL faults), one fault proxy per reader and the virtual
 * readers (real device code). Everything listens on 127.0.0.1 port 0.
 */
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DeviceClock, VirtualClock, drainIo } from './clock.js';
import { startFakeBackend, type FakeBackend } from './fake-backend.js';
import { startFaultProxy, type FaultProxy } from './faults/proxy.js';
import { startInProcessGateway, type GatewayHost, type GatewayHostParams } from './gateway-host.js';
import type { Rng } from './prng.js';
import { createInProcessReader } from './readers/in-process.js';
import type { DeviceParams, VirtualReader } from './readers/types.js';
import type { Scenario } from './scenario/types.js';

export interface WorldOptions {
  scenario: Scenario;
  rng: Rng;
  logger: Logger;
  /** Parent folder for the run's temp dir (default: the OS temp dir). */
  baseDir?: string;
  /** Per-reader clock skew (ms). */
  skews: ReadonlyMap<string, number>;
  /** Readers to run as child processes. */
  childReaders: ReadonlySet<string>;
  gatewayInChild: boolean;
  startChildGateway?: (o: { params: GatewayHostParams; clock: VirtualClock }) => Promise<GatewayHost>;
  startChildReader?: (o: {
    params: DeviceParams;
    clock: VirtualClock;
    synced: boolean;
  }) => VirtualReader & { tick(now: number): Promise<void> | undefined };
  /** Checker self-test: child readers get a deliberately broken journal. */
  brokenJournal?: 'non-durable-journal';
  /** N gateway instances on PostgreSQL behind Mosquitto (./gateway-cluster.ts; needs startChildGateway). */
  scaleOut?: { instances: number };
}

/** Steps a child may lag behind the simulation's clock. */
const TICK_LAG = 10;

export interface World {
  dir: string;
  clock: VirtualClock;
  backend: FakeBackend;
  gateway: GatewayHost;
  proxies: Map<string, FaultProxy>;
  readers: Map<string, VirtualReader>;
  deviceClocks: Map<string, DeviceClock>;
  adminToken: string;
  /** Moves virtual time to `t` and lets real I/O run (also ticks child processes). */
  stepTo(t: number): Promise<void>;
  /**
   * Waits for `p` while virtual time runs on in `stepMs` steps (stop() calls wait on virtual
   * timers); with 0, virtual time stands still (a process booting) and only real I/O runs.
   */
  whileRunning<T>(p: Promise<T>, stepMs?: number): Promise<T>;
  close(opts: { keep: boolean }): Promise<void>;
}

/**
 * Where runs live: /dev/shm (tmpfs) when there, so fsync costs nothing and a day runs in seconds.
 * The simulator tests logic and crash behaviour (a SIGKILL keeps the page cache), not the disk.
 */
export function defaultBaseDir(): string {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

export async function createWorld(o: WorldOptions): Promise<World> {
  const s = o.scenario;
  const base = o.baseDir ?? defaultBaseDir();
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, `visittag-sim-${s.params.seed}-`));
  const clock = new VirtualClock({ startMs: s.params.startMs - 10 * 60_000 });
  const secret = `sim-webhook-secret-${o.rng.hex(8)}`;
  const adminToken = `sim-admin-token-${o.rng.hex(8)}`;
  // Virtual time runs ahead of real I/O: allow for the real time a request spends on the wire.
  const backend = await startFakeBackend({
    secret,
    clock,
    seed: s.params.seed,
    transitGraceRealMs: 10_000,
  });
  const gwParams: GatewayHostParams = {
    dataDir: join(dir, 'gateway'),
    fleetKey: s.fleetKey,
    adminToken,
    backendUrl: backend.url,
    backendSecret: secret,
  };
  const gateway = o.scaleOut
    ? await startScaleOut(o, gwParams, clock)
    : o.gatewayInChild && o.startChildGateway
      ? await o.startChildGateway({ params: gwParams, clock })
      : await startInProcessGateway({
          params: gwParams,
          clock,
          random: () => o.rng.next(),
          logger: o.logger,
        });

  const readers = new Map<string, VirtualReader>();
  const proxies = new Map<string, FaultProxy>();
  const deviceClocks = new Map<string, DeviceClock>();
  const children: (VirtualReader & { tick(now: number): Promise<void> | undefined })[] = [];
  const pendingTicks: Promise<void>[] = [];
  const world: World = {
    dir,
    clock,
    backend,
    gateway,
    proxies,
    readers,
    deviceClocks,
    adminToken,
    async stepTo(t) {
      // Children acknowledge ticks: virtual time never runs more than TICK_LAG steps ahead of them.
      if (pendingTicks.length >= TICK_LAG) await Promise.all(pendingTicks.splice(0));
      await clock.advanceTo(t);
      const now = clock.now();
      const acks = [gateway.tick(now), ...children.map((c) => c.tick(now))].filter((a) => a !== undefined);
      if (acks.length) pendingTicks.push(Promise.all(acks).then(() => undefined));
      await drainIo();
      await drainIo();
    },
    async whileRunning(p, stepMs = 1000) {
      let done = false;
      const tracked = p.finally(() => (done = true));
      for (let i = 0; i < 10_000 && !done; i++) {
        if (stepMs > 0) await world.stepTo(clock.now() + stepMs);
        else await new Promise((r) => setTimeout(r, 2)); // time stands still: only real I/O runs
      }
      return tracked;
    },
    async close({ keep }) {
      await world.whileRunning(Promise.allSettled([...readers.values()].map((r) => r.stop())));
      await world.whileRunning(gateway.stop().catch(() => undefined));
      await Promise.allSettled([...proxies.values()].map((p) => p.close()));
      await backend.close();
      if (!keep) rmSync(dir, { recursive: true, force: true });
    },
  };

  for (const st of s.staff) await gateway.addCard({ cardRef: st.card.cardRef, staffRef: st.staffRef });
  for (const h of s.homes) {
    const password = `pw-${o.rng.hex(16)}`;
    await gateway.addReader({ readerId: h.readerId, password, clientRef: h.clientRef });
    const proxy = await startFaultProxy({ upstreamPort: gateway.mqttPort, rng: o.rng.fork(h.readerId) });
    proxies.set(h.readerId, proxy);
    const params: DeviceParams = {
      readerId: h.readerId,
      dataDir: join(dir, 'readers', h.readerId),
      fleetKey: s.fleetKey,
      mqttUrl: `mqtt://127.0.0.1:${proxy.port}`,
      password,
      repeatWindowMs: s.params.repeatWindowMs,
      maxOpenMs: s.params.maxOpenMs,
      skewMs: o.skews.get(h.readerId) ?? 0,
      seed: o.rng.int(1, 2 ** 31),
    };
    let reader: VirtualReader;
    if (o.childReaders.has(h.readerId) && o.startChildReader) {
      const child = o.startChildReader({
        params: o.brokenJournal ? { ...params, broken: o.brokenJournal } : params,
        clock,
        synced: true,
      });
      children.push(child);
      reader = child;
    } else {
      const dc = new DeviceClock(clock, { skewMs: params.skewMs });
      deviceClocks.set(h.readerId, dc);
      reader = createInProcessReader({
        params,
        clock: dc,
        logger: o.logger,
      });
    }
    readers.set(h.readerId, reader);
  }
  await world.whileRunning(Promise.all([...readers.values()].map((r) => r.start())), 0);
  return world;
}

/** Several gateway processes on PostgreSQL behind Mosquitto, engines started for the run. */
async function startScaleOut(o: WorldOptions, params: GatewayHostParams, clock: VirtualClock) {
  if (!o.startChildGateway || !o.scaleOut) throw new Error('several gateway instances need child processes');
  const { startGatewayCluster } = await import('./gateway-cluster.js');
  return startGatewayCluster({
    params,
    clock,
    instances: o.scaleOut.instances,
    seed: o.scenario.params.seed,
    startChildGateway: o.startChildGateway,
  });
}

/** Nothing left to move: every reader up with an empty queue, the outbox empty. */
export async function isQuiet(world: World): Promise<boolean> {
  if (!world.gateway.alive) return false;
  for (const r of world.readers.values()) {
    const st = await r.state();
    if (!st || st.queueDepth > 0) return false;
  }
  try {
    const ob = await world.gateway.api<{ pending: number }>('/api/outbox');
    return ob.pending === 0;
  } catch {
    return false;
  }
}
