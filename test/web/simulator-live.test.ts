import type { Browser, Page } from 'playwright-core';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ALERT_CONFIG } from '../../gateway/src/care/alerts.js';
import { DEFAULT_BEHAVIOUR, playPlan, type BehaviourRates } from '../../simulator/plan/behaviour.js';
import { generatePlan } from '../../simulator/plan/generate.js';
import { importPlan } from '../../simulator/plan/run.js';
import type { PlannedOutcome, SimPlan } from '../../simulator/plan/types.js';
import { createRng } from '../../simulator/prng.js';
import { Timeline } from '../../simulator/timeline.js';
import { createWorkers } from '../../simulator/workers.js';
import { createWorld, type World } from '../../simulator/world.js';
import { buildWeb } from '../../web/build.js';
import { axe, launch, logIn, newPage, PW } from './pages-helpers.js';

/**
 * The acceptance test "against a real gateway with the simulator feeding it": the simulator's fleet
 * (virtual readers running the real device code over MQTT, a fake planning backend) plays a generated
 * care plan into a real gateway on the simulation's virtual clock. A coordinator has the live day view
 * open in Chromium before it happens and, without reloading, sees a planned visit nobody came to turn
 * into a late alert and another planned visit turn to done when its staff member taps in.
 */
const MIN = 60_000;
/** Staff come on time except for forgotten visits (so which visit is late follows from the seed alone). */
const RATES: BehaviourRates = {
  ...DEFAULT_BEHAVIOUR,
  ill: 0,
  forgotten: 0.3,
  delayed: 0,
  secondMissing: 0,
  secondLate: 0,
  unplanned: 0,
};

interface Pick {
  seed: number;
  plan: SimPlan;
  played: ReturnType<typeof playPlan>;
  late: PlannedOutcome;
  lateAt: number;
  started: PlannedOutcome;
  arriveAt: number;
  openAt: number;
}

/**
 * The first seed whose day has a planned visit nobody reaches in time (its late alert at `lateAt`) and a
 * single-staffed one whose staff member arrives on time shortly before or after (`arriveAt`), so that
 * both happen within a few virtual minutes of opening the page. Pure and deterministic.
 */
function pick(): Pick {
  for (let seed = 1; seed <= 300; seed++) {
    const plan = generatePlan({ seed, clients: 4, staff: 2, days: 1 });
    const played = playPlan(plan, seed, RATES);
    const lateAfter = (o: PlannedOutcome) =>
      (plan.registry.areas.find((a) => a.areaId === o.areaId)?.lateAfterMinutes ??
        DEFAULT_ALERT_CONFIG.lateAfterMinutes) * MIN;
    const lates = played.outcomes
      .filter((o) => o.outcome !== 'client-absent')
      .map((o) => ({ o, at: o.startMs + lateAfter(o) }))
      .filter(({ o, at }) => (o.arrivalsMs[0] ?? Infinity) > at)
      .sort((a, b) => a.at - b.at);
    const first = lates[0];
    if (!first) continue;
    const openAt = first.at - 5 * MIN;
    const started = played.outcomes.find((o) => {
      const a = o.arrivalsMs[0];
      return (
        o.outcome === 'made' &&
        o.staffCount === 1 &&
        o.clientRef !== first.o.clientRef &&
        a !== undefined &&
        a > openAt + MIN &&
        a <= first.at + 3 * MIN &&
        a >= o.startMs - 30 * MIN &&
        a <= o.startMs + lateAfter(o) - MIN &&
        // one planned visit of that client near then, so the row and its match are unambiguous
        played.outcomes.filter(
          (x) => x.clientRef === o.clientRef && Math.abs(x.startMs - o.startMs) < 4 * 60 * MIN,
        ).length === 1
      );
    });
    if (started?.arrivalsMs[0] === undefined) continue;
    return {
      seed,
      plan,
      played,
      late: first.o,
      lateAt: first.at,
      started,
      arriveAt: started.arrivalsMs[0],
      openAt,
    };
  }
  throw new Error('no seed in 1..300 gives a late visit and an on-time start close together');
}

const hhmm = (ms: number): string =>
  new Intl.DateTimeFormat('sv-SE', {
    timeZone: 'Europe/Stockholm',
    hour: '2-digit',
    minute: '2-digit',
  }).format(ms);

let browser: Browser;
let world: World;
let p: Pick;

beforeAll(async () => {
  await buildWeb();
  p = pick();
  world = await createWorld({
    scenario: p.played.scenario,
    rng: createRng(p.seed).fork('world'),
    logger: pino({ level: 'silent' }),
    skews: new Map(),
    childReaders: new Set(),
    gatewayInChild: false,
  });
  await importPlan(world, p.plan);
  const res = await fetch(`${world.gateway.adminUrl}/api/users`, {
    method: 'POST',
    headers: { authorization: `Bearer ${world.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'samordnare',
      displayName: 'Samordnare',
      role: 'coordinator',
      areas: p.plan.registry.areas.map((a) => a.areaId),
      password: PW,
      reason: 'simulator live test',
    }),
  });
  expect(res.status).toBe(201);
  browser = await launch();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await world?.close({ keep: false });
});

describe('live day view fed by the simulator', () => {
  it('shows a late visit appear and a started visit arrive without a reload', async () => {
    const workers = createWorkers(world);
    const timeline = new Timeline();
    for (const a of p.played.scenario.actions)
      timeline.add({ atMs: a.atMs, label: 'action', run: () => workers.perform(a) });
    /** Plays the staff's taps up to `target` in virtual steps of `stepMs`, pausing `realMs` between. */
    const runUntil = async (target: number, stepMs: number, realMs = 0): Promise<void> => {
      for (let i = 0; i < 100_000 && world.clock.now() < target; i++) {
        const next = Math.min(target, world.clock.now() + stepMs, timeline.peek()?.atMs ?? Infinity);
        await world.stepTo(Math.max(next, world.clock.now()));
        for (let item = timeline.peek(); item && item.atMs <= world.clock.now(); item = timeline.peek())
          await timeline.shift()?.run();
        workers.sweep();
        if (realMs) await new Promise((r) => setTimeout(r, realMs));
      }
    };

    // the day runs up to a few minutes before the late visit is due, the page not yet open
    await runUntil(p.openAt, 30_000);
    const page: Page = await newPage(browser);
    await logIn(page, world.gateway.adminUrl, 'samordnare');
    await page.goto(`${world.gateway.adminUrl}/#/live`);
    await page.locator('#day table').first().waitFor();
    await page.evaluate(() => ((globalThis as { __notReloaded?: boolean }).__notReloaded = true));

    const lateAlert = page
      .locator('#day table')
      .first()
      .locator('tbody tr')
      .filter({ hasText: p.late.clientRef })
      .filter({ hasText: hhmm(p.late.startMs) })
      .filter({ hasText: 'Sent besök' });
    const startedRow = page
      .locator('#day table')
      .last()
      .locator('tbody tr')
      .filter({ hasText: p.started.clientRef })
      .filter({ hasText: hhmm(p.started.startMs) });
    expect(await lateAlert.count()).toBe(0);
    expect(await startedRow.textContent()).toContain('Väntar');
    expect(await axe(page)).toEqual([]);

    // virtual time runs on in small steps (the day view's stream polls on the gateway's clock)
    const until = Math.max(p.lateAt, p.arriveAt) + 2 * MIN;
    await runUntil(until, 2_000, 10);
    let seen = false;
    const deadline = Date.now() + 30_000; // real time: the stream may be between reconnects
    for (let i = 0; i < 2_000 && !seen && Date.now() < deadline; i++) {
      await runUntil(world.clock.now() + 2_000, 2_000, 10);
      if (i % 5 === 0)
        seen = (await lateAlert.count()) === 1 && ((await startedRow.textContent()) ?? '').includes('Utfört');
    }
    expect(seen).toBe(true);
    await lateAlert.waitFor();
    expect(await startedRow.textContent()).toContain('Utfört');
    // the same page all along, and the gateway agrees
    expect(await page.evaluate(() => (globalThis as { __notReloaded?: boolean }).__notReloaded)).toBe(true);
    const alerts = await world.gateway.api<{ alerts: { plannedVisitId: string; kind: string }[] }>(
      '/api/plan/alerts?state=all',
    );
    expect(alerts.alerts.some((a) => a.plannedVisitId === p.late.plannedVisitId && a.kind === 'late')).toBe(
      true,
    );
    expect(await axe(page)).toEqual([]);
    await page.context().close();
  }, 90_000);
});
