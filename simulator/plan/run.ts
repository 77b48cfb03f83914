/**
 * A simulated period driven by a care plan: boots the world (real gateway, real device code, fake backend)
 * for the plan's clients and staff, imports the registries and the plan through the admin API, lets the
 * staff tap as `playPlan` decided, drains until every plan window has closed and the outbox is empty, then
 * checks the gateway's matches and the plan alerts at the backend against what the staff did
 * (`check.ts`), besides the simulator's own tap-level invariants (`checker.ts`).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { DEFAULT_ALERT_CONFIG } from '../../gateway/src/care/alerts.js';
import { DEFAULT_MATCH_CONFIG } from '../../gateway/src/care/matching.js';
import { addDays } from '../../gateway/src/care/time.js';
import { breaches, runChecks, type CheckResult, type ReaderSeqState } from '../checker.js';
import { createRng } from '../prng.js';
import { Timeline } from '../timeline.js';
import { createWorkers } from '../workers.js';
import { createWorld, isQuiet, type World } from '../world.js';
import { DEFAULT_BEHAVIOUR, playPlan, type BehaviourRates } from './behaviour.js';
import { runPlanChecks, summarisePlan, type ApiMatch, type ApiUnplanned, type PlanSummary } from './check.js';
import type { SimPlan } from './types.js';

const MIN = 60_000;

export interface PlanRunOptions {
  plan: SimPlan;
  /** Seed of the staff's behaviour (the plan has its own). */
  seed: number;
  rates?: Partial<BehaviourRates>;
  /** Virtual ms per step while taps are near (default 5000), and when none is due for 30 min (60000). */
  stepMs?: number;
  idleStepMs?: number;
  baseDir?: string;
  keep?: 'always' | 'on-failure' | 'never';
  logger?: Logger;
  onProgress?: (p: { virtualMs: number; taps: number; delivered: number; phase: string }) => void;
  /** Called with the world once the plan is imported (the demo prints alerts as they happen). */
  onReady?: (world: World) => void;
}

export interface PlanRunReport {
  seed: number;
  planSeed: number;
  ok: boolean;
  results: CheckResult[];
  summary: PlanSummary;
  clients: number;
  staff: number;
  days: number;
  taps: number;
  illDays: number;
  backendEvents: Record<string, number>;
  wallMs: number;
  artifacts: string | null;
}

async function adminSend(
  world: World,
  method: 'PUT' | 'POST',
  path: string,
  body: unknown,
): Promise<unknown> {
  const res = await fetch(new URL(path, world.gateway.adminUrl), {
    method,
    headers: { authorization: `Bearer ${world.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok)
    throw new Error(`admin ${method} ${path}: HTTP ${res.status} ${JSON.stringify(json).slice(0, 500)}`);
  return json;
}

/** Imports the plan's registries and, per area, its planned visits (one plan version per area). */
export async function importPlan(world: World, plan: SimPlan): Promise<void> {
  await adminSend(world, 'PUT', '/api/plan/registry', plan.registry);
  const toDate = addDays(plan.fromDate, plan.days - 1);
  for (const a of plan.registry.areas) {
    const visits = plan.visits
      .filter((v) => v.areaId === a.areaId)
      .map(({ areaId, ...row }) => {
        void areaId;
        return row;
      });
    await adminSend(world, 'POST', '/api/plan/import', {
      areaId: a.areaId,
      fromDate: plan.fromDate,
      toDate,
      dryRun: false,
      visits,
    });
  }
}

export async function runPlanSimulation(opts: PlanRunOptions): Promise<PlanRunReport> {
  const wall0 = performance.now();
  if (opts.plan.timeZone !== DEFAULT_MATCH_CONFIG.timeZone)
    throw new Error(
      `the simulated gateway runs in ${DEFAULT_MATCH_CONFIG.timeZone}; the plan says ${opts.plan.timeZone}`,
    );
  const played = playPlan(opts.plan, opts.seed, { ...DEFAULT_BEHAVIOUR, ...opts.rates });
  const logger = opts.logger ?? pino({ level: 'silent' });
  const world = await createWorld({
    scenario: played.scenario,
    rng: createRng(opts.seed).fork('world'),
    logger,
    skews: new Map(),
    childReaders: new Set(),
    gatewayInChild: false,
    ...(opts.baseDir ? { baseDir: opts.baseDir } : {}),
  });
  let report: PlanRunReport | null = null;
  try {
    await importPlan(world, opts.plan);
    opts.onReady?.(world);
    report = await play(opts, world, played, wall0);
    return report;
  } finally {
    const keep = opts.keep === 'always' || (opts.keep !== 'never' && (!report || !report.ok));
    await world.close({ keep });
  }
}

async function play(
  opts: PlanRunOptions,
  world: World,
  played: ReturnType<typeof playPlan>,
  wall0: number,
): Promise<PlanRunReport> {
  const { scenario } = played;
  const stepMs = opts.stepMs ?? 5000;
  const idleStepMs = opts.idleStepMs ?? 60_000;
  const workers = createWorkers(world);
  const timeline = new Timeline();
  for (const a of scenario.actions)
    timeline.add({ atMs: a.atMs, label: 'action', run: () => workers.perform(a) });
  const t0 = world.clock.now();
  let lastProgress = t0;
  const progress = (phase: string) => {
    if (world.clock.now() - lastProgress < 60 * MIN) return;
    lastProgress = world.clock.now();
    opts.onProgress?.({
      virtualMs: world.clock.now() - t0,
      taps: workers.taps.length,
      delivered: world.backend.received().length,
      phase,
    });
  };
  const step = async (target: number): Promise<void> => {
    while (world.clock.now() < target) {
      const next = timeline.peek()?.atMs ?? Infinity;
      const size = next - world.clock.now() > 30 * MIN ? idleStepMs : stepMs;
      await world.stepTo(Math.min(target, world.clock.now() + size));
      workers.sweep();
      progress('plan');
    }
  };
  const runUntil = async (target: number): Promise<void> => {
    for (let item = timeline.peek(); item && item.atMs <= target; item = timeline.peek()) {
      await step(item.atMs);
      await timeline.shift()?.run();
    }
    await step(target);
  };
  await runUntil(scenario.endMs);

  // Drain: every plan window closed (plus two alert ticks), queues and outbox empty.
  const windowsClosed =
    Math.max(0, ...played.outcomes.map((o) => o.startMs)) +
    Math.max(DEFAULT_MATCH_CONFIG.windowAfterMinutes, DEFAULT_ALERT_CONFIG.missedAfterMinutes) * MIN +
    2 * MIN;
  const maxDrain = world.clock.now() + 6 * 3_600_000;
  let stable = 0;
  while (world.clock.now() < maxDrain) {
    await runUntil(world.clock.now() + 30_000);
    const quiet = world.clock.now() >= windowsClosed && timeline.size === 0 && (await isQuiet(world));
    stable = quiet ? stable + 1 : 0;
    if (stable >= 3) break;
    progress('drain');
  }

  const to = addDays(opts.plan.fromDate, opts.plan.days - 1);
  const m = await world.gateway.api<{ matches: ApiMatch[]; unplanned: ApiUnplanned[] }>(
    `/api/plan/matches?from=${opts.plan.fromDate}&to=${to}`,
  );
  const received = world.backend.received();
  const planInput = {
    outcomes: played.outcomes,
    unplanned: played.unplanned,
    matches: m.matches,
    apiUnplanned: m.unplanned,
    received,
    thresholds: DEFAULT_ALERT_CONFIG,
    nowMs: world.clock.now(),
  };
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
  const results = [
    ...runPlanChecks(planInput),
    ...runChecks({
      scenario,
      taps: workers.taps,
      received,
      backend: world.backend,
      refusedKeys: world.backend.rejectedKeys(),
      readers,
      skewMs: new Map(),
      unsyncedReaders: new Set(),
      endMs: world.clock.now(),
    }),
  ];
  const backendEvents: Record<string, number> = {};
  for (const e of received) backendEvents[e.type] = (backendEvents[e.type] ?? 0) + 1;
  const ok = breaches(results).length === 0;
  if (!ok || opts.keep === 'always') {
    writeFileSync(
      join(world.dir, 'evidence.json'),
      JSON.stringify(
        {
          plan: opts.plan,
          outcomes: played.outcomes,
          unplanned: played.unplanned,
          matches: m,
          received,
          results,
        },
        null,
        1,
      ),
    );
  }
  return {
    seed: opts.seed,
    planSeed: opts.plan.seed,
    ok,
    results,
    summary: summarisePlan(planInput),
    clients: opts.plan.registry.clients.length,
    staff: opts.plan.registry.staff.length,
    days: opts.plan.days,
    taps: workers.taps.length,
    illDays: played.ill.length,
    backendEvents,
    wallMs: Math.round(performance.now() - wall0),
    artifacts: world.dir,
  };
}

/** The summary table of a plan run. */
export function planSummaryTable(r: PlanRunReport, replay: string): string {
  const s = r.summary;
  const kv = (o: Record<string, number>) =>
    Object.entries(o)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none';
  const rows: [string, string][] = [
    ['seed', `${r.seed} (plan seed ${r.planSeed})   (replay: ${replay})`],
    ['plan', `${r.clients} clients, ${r.staff} staff, ${r.days} days; ${r.illDays} sick days`],
    ['planned', String(s.planned)],
    ['executed', `${s.executed} (${s.covered} covered by a substitute or colleague)`],
    ['late', String(s.late)],
    ['missed', `${s.missed} (${s.missedWithReason} with a reason: client in hospital)`],
    ['understaffed', String(s.understaffed)],
    ['unplanned', String(s.unplanned)],
    ['alerts raised', kv(s.alertsRaised)],
    ['alerts cleared', String(s.alertsCleared)],
    ['taps', String(r.taps)],
    ['backend events', kv(r.backendEvents)],
    ['wall time', `${(r.wallMs / 1000).toFixed(1)} s`],
  ];
  const lines = rows.map(([k, v]) => `  ${k.padEnd(16)} ${v}`);
  lines.push('', '  checks:');
  for (const c of r.results) {
    const mark = c.ok ? 'PASS' : c.severity === 'invariant' ? 'FAIL' : 'WARN';
    lines.push(`    ${mark}  ${c.name.padEnd(34)} ${c.summary}`);
    for (const f of c.failures.slice(0, 8)) lines.push(`            - ${f}`);
  }
  if (r.artifacts && !r.ok)
    lines.push('', `  artifacts kept in ${r.artifacts} (evidence.json, gateway.db, journals)`);
  return lines.join('\n');
}
