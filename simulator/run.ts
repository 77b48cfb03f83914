/**
 * One simulated day: generate the scenario, boot the world, play actions and faults on virtual
 * time, heal, drain, then run the invariant checker. Returns a report; throws only on harness bugs.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import type { Logger } from 'pino';
import { breaches, runChecks, type CheckResult, type ReaderSeqState } from './checker.js';
import { applyFault, type FaultRuntime } from './faults/apply.js';
import { childReaders, planFaults, PROCESS_FAULTS, type FaultKind } from './faults/plan.js';
import { createRng } from './prng.js';
import { generateScenario, scenarioParams } from './scenario/generate.js';
import type { Action, ScenarioParams } from './scenario/types.js';
import { Timeline } from './timeline.js';
import { createWorkers } from './workers.js';
import { createWorld, isQuiet, type World, type WorldOptions } from './world.js';

export interface RunOptions {
  seed: number;
  readers: number;
  staff: number;
  hours: number;
  faults: readonly FaultKind[];
  /** Faults of each kind (default 1). */
  perKind?: number;
  /** Virtual step between I/O drains (ms, default 1000). */
  stepMs?: number;
  baseDir?: string;
  /** Keep the temp dir: always, or only when a check fails (default). */
  keep?: 'always' | 'on-failure' | 'never';
  logger?: Logger;
  onProgress?: (p: {
    virtualMs: number;
    totalMs: number;
    taps: number;
    delivered: number;
    phase: string;
  }) => void;
  scenario?: Partial<ScenarioParams>;
  /** Child-process support (SIGKILL faults); without it those faults are skipped. */
  processes?: Pick<WorldOptions, 'startChildGateway' | 'startChildReader'>;
  /** How device-kill faults strike: inside the tap's commit (default) or right after its feedback. */
  deviceKill?: 'mid-write' | 'after-feedback';
  /**
   * Checker self-test: for `brokenGatewayMs` of the day (from its second hour), the gateway path
   * acknowledges event batches before committing them and loses them (played by the fault proxies).
   */
  brokenGatewayMs?: number;
  /** Checker self-test: run the crash-fault readers with a deliberately broken journal. */
  brokenJournal?: 'non-durable-journal';
  /** Longest virtual drain after the day (default 4 h). */
  maxDrainMs?: number;
  /** N gateway instances on PostgreSQL behind Mosquitto with a shared subscription (needs `processes`). */
  scaleOut?: { instances: number };
}

export interface RunReport {
  seed: number;
  /** What ran the gateway: one embedded instance on SQLite, or N instances on PostgreSQL. */
  gateway: string;
  ok: boolean;
  results: CheckResult[];
  counts: {
    actions: number;
    taps: number;
    feedback: Record<string, number>;
    retriedTaps: number;
    backendEvents: Record<string, number>;
    anomalies: Record<string, number>;
    redeliveries: number;
  };
  faults: Record<string, number>;
  skippedFaults: FaultKind[];
  virtualDayMs: number;
  drainMs: number;
  wallMs: number;
  artifacts: string | null;
}

export async function runSimulation(opts: RunOptions): Promise<RunReport> {
  const wall0 = performance.now();
  const logger = opts.logger ?? pino({ level: 'silent' });
  const rng = createRng(opts.seed);
  const scenario = generateScenario(
    scenarioParams({
      seed: opts.seed,
      readers: opts.readers,
      staff: opts.staff,
      hours: opts.hours,
      ...opts.scenario,
    }),
  );
  const canProcess = Boolean(opts.processes?.startChildGateway && opts.processes.startChildReader);
  const kinds = opts.faults.filter((k) => canProcess || !PROCESS_FAULTS.includes(k));
  const skippedFaults = opts.faults.filter((k) => !kinds.includes(k));
  const faults = planFaults({
    scenario,
    rng: rng.fork('faults'),
    kinds,
    ...(opts.perKind ? { perKind: opts.perKind } : {}),
  });
  if (opts.deviceKill === 'after-feedback') for (const f of faults) if (f.kind === 'device-kill') f.value = 2;
  const skews = new Map<string, number>();
  for (const f of faults) if (f.kind === 'clock-skew' && f.readerId) skews.set(f.readerId, f.value);

  const world: World = await createWorld({
    scenario,
    rng: rng.fork('world'),
    logger,
    skews,
    childReaders: childReaders(faults),
    gatewayInChild: kinds.includes('gateway-kill'),
    ...(opts.baseDir ? { baseDir: opts.baseDir } : {}),
    ...(opts.processes ?? {}),
    ...(opts.brokenJournal ? { brokenJournal: opts.brokenJournal } : {}),
    ...(opts.scaleOut ? { scaleOut: opts.scaleOut } : {}),
  });
  let report: RunReport | null = null;
  try {
    report = await play({ opts, world, scenario, faults, skews, skippedFaults, wall0 });
    return report;
  } finally {
    const keep = opts.keep === 'always' || (opts.keep !== 'never' && (!report || !report.ok));
    await world.close({ keep });
  }
}

async function play(ctx: {
  opts: RunOptions;
  world: World;
  scenario: ReturnType<typeof generateScenario>;
  faults: ReturnType<typeof planFaults>;
  skews: Map<string, number>;
  skippedFaults: FaultKind[];
  wall0: number;
}): Promise<RunReport> {
  const { opts, world, scenario, faults } = ctx;
  const stepMs = opts.stepMs ?? 1000;
  const workers = createWorkers(world);
  const { taps, feedbackCounts } = workers;
  const perform = (a: Action) => workers.perform(a);
  const replay = (id: string) => workers.replay(id);
  const sweepUnanswered = () => workers.sweep();

  const timeline = new Timeline();
  for (const a of scenario.actions) timeline.add({ atMs: a.atMs, label: 'action', run: () => perform(a) });
  const runtime: FaultRuntime = {
    world,
    timeline,
    onReaderBack: replay,
    counts: {},
  };
  for (const f of faults) timeline.add({ atMs: f.atMs, label: f.kind, run: () => applyFault(runtime, f) });
  if (opts.brokenGatewayMs) {
    const from = scenario.params.startMs + 3_600_000;
    const setForge = (on: boolean) => {
      for (const [id, p] of world.proxies) p.setForgeAcks(on ? id : null);
    };
    timeline.add({ atMs: from, label: 'broken gateway on', run: () => setForge(true) });
    timeline.add({
      atMs: from + opts.brokenGatewayMs,
      label: 'broken gateway off',
      run: () => setForge(false),
    });
  }

  const total = scenario.endMs - world.clock.now();
  const t0 = world.clock.now();
  let lastProgress = t0;
  const step = async (target: number): Promise<void> => {
    while (world.clock.now() < target) {
      await world.stepTo(Math.min(target, world.clock.now() + stepMs));
      sweepUnanswered();
      if (world.clock.now() - lastProgress >= 15 * 60_000) {
        lastProgress = world.clock.now();
        opts.onProgress?.({
          virtualMs: world.clock.now() - t0,
          totalMs: total,
          taps: taps.length,
          delivered: world.backend.received().length,
          phase: 'day',
        });
      }
    }
  };
  /** Plays timeline items due up to `target`, stepping virtual time between them. */
  const runUntil = async (target: number): Promise<void> => {
    for (let item = timeline.peek(); item && item.atMs <= target; item = timeline.peek()) {
      await step(item.atMs);
      // an item added while stepping may now come first: run whatever is earliest
      await timeline.shift()?.run();
    }
    await step(target);
  };
  await runUntil(scenario.endMs);

  // Heal every fault, bring everything back, then drain.
  await runtime.healAll?.();
  for (const id of world.readers.keys()) await replay(id);
  const drain0 = world.clock.now();
  const openUntil = Math.max(
    0,
    ...scenario.truth
      .filter((v) => v.endMs === null)
      .map((v) => v.startMs + scenario.params.maxOpenMs + 10 * 60_000),
  );
  const maxDrain = drain0 + (opts.maxDrainMs ?? 4 * 3_600_000);
  let stable = 0;
  while (world.clock.now() < maxDrain) {
    await runUntil(world.clock.now() + 10_000);
    const due = world.clock.now() >= Math.min(openUntil, maxDrain);
    const quiet = due && timeline.size === 0 && (await isQuiet(world));
    stable = quiet ? stable + 1 : 0;
    if (stable >= 3) break;
    if (world.clock.now() - lastProgress >= 15 * 60_000) {
      lastProgress = world.clock.now();
      opts.onProgress?.({
        virtualMs: world.clock.now() - t0,
        totalMs: total,
        taps: taps.length,
        delivered: world.backend.received().length,
        phase: 'drain',
      });
    }
  }
  const drainMs = world.clock.now() - drain0;

  const readers: ReaderSeqState[] = [];
  const api = await world.gateway.api<{
    readers: { readerId: string; contiguousUpto: number; maxSeen: number }[];
  }>('/api/readers');
  for (const r of api.readers) {
    const st = await world.readers.get(r.readerId)?.state();
    readers.push({
      readerId: r.readerId,
      contiguousUpto: r.contiguousUpto,
      maxSeen: r.maxSeen,
      deviceLastSeq: st?.lastSeq ?? null,
      deviceQueueDepth: st?.queueDepth ?? null,
    });
  }
  const received = world.backend.received();
  const unsynced = new Set(
    faults.filter((f) => f.kind === 'power-loss' && f.readerId).map((f) => f.readerId as string),
  );
  const results = runChecks({
    scenario,
    taps,
    received,
    backend: world.backend,
    refusedKeys: world.backend.rejectedKeys(),
    readers,
    skewMs: new Map([...ctx.skews].map(([k, v]) => [k, Math.abs(v)])),
    unsyncedReaders: unsynced,
    endMs: world.clock.now(),
  });
  const backendEvents: Record<string, number> = {};
  const anomalies: Record<string, number> = {};
  for (const e of received) {
    backendEvents[e.type] = (backendEvents[e.type] ?? 0) + 1;
    if (e.type === 'visit.anomaly') anomalies[e.anomaly] = (anomalies[e.anomaly] ?? 0) + 1;
  }
  const faultCounts: Record<string, number> = { ...runtime.counts };
  for (const [k, v] of Object.entries(world.backend.faultCounts())) if (v) faultCounts[`backend:${k}`] = v;
  let dups = 0;
  let resets = 0;
  for (const p of world.proxies.values()) {
    dups += p.stats.duplicatedPublishes;
    resets += p.stats.resets;
  }
  if (dups) faultCounts['proxy:duplicated-publishes'] = dups;
  const forged = [...world.proxies.values()].reduce((n, p) => n + p.stats.forgedAcks, 0);
  if (forged) faultCounts['broken-gateway:acks-before-commit'] = forged;
  if (resets) faultCounts['proxy:connection-resets'] = resets;
  const ok = breaches(results).length === 0;
  if (!ok || opts.keep === 'always') {
    writeFileSync(
      join(world.dir, 'evidence.json'),
      JSON.stringify(
        { params: scenario.params, faults, results, taps, received, readers, truth: scenario.truth },
        null,
        1,
      ),
    );
  }
  return {
    seed: scenario.params.seed,
    gateway: opts.scaleOut
      ? `${opts.scaleOut.instances} instance(s) on PostgreSQL behind Mosquitto (MQTT 5 shared subscription)`
      : 'one instance, embedded broker, SQLite',
    ok,
    results,
    counts: {
      actions: scenario.actions.length,
      taps: taps.length,
      feedback: feedbackCounts,
      retriedTaps: workers.retried,
      backendEvents,
      anomalies,
      redeliveries: world.backend.duplicates,
    },
    faults: faultCounts,
    skippedFaults: ctx.skippedFaults,
    virtualDayMs: scenario.endMs - scenario.params.startMs,
    drainMs,
    wallMs: Math.round(performance.now() - ctx.wall0),
    artifacts: world.dir,
  };
}

export { processSupport } from './processes.js';
