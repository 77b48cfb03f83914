/**
 * `npm run sim -- --plan gen [--clients 60 --staff 25 --days 7 --seed 42]` or `--plan FILE.json`: a
 * simulated period driven by a care plan (simulator/plan/run.ts). Prints the summary (planned, executed,
 * late, missed, unplanned, alerts) and every check; exit 0 when all invariants held, 1 otherwise.
 */
import { writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { generatePlan } from './generate.js';
import { loadSimPlan } from './load.js';
import { planSummaryTable, runPlanSimulation } from './run.js';

export interface PlanCliArgs {
  plan: string;
  clients: number;
  staff: number;
  days: number;
  seed: number;
  stepMs: number | null;
  savePlan: string | null;
  keep: boolean;
  json: boolean;
  logger: Logger;
}

export async function runPlanCli(a: PlanCliArgs): Promise<number> {
  const plan =
    a.plan === 'gen'
      ? generatePlan({ seed: a.seed, clients: a.clients, staff: a.staff, days: a.days })
      : loadSimPlan(a.plan);
  if (a.savePlan) writeFileSync(a.savePlan, `${JSON.stringify(plan, null, 1)}\n`);
  const replay =
    a.plan === 'gen'
      ? `npm run sim -- --plan gen --clients ${a.clients} --staff ${a.staff} --days ${a.days} --seed ${a.seed}`
      : `npm run sim -- --plan ${a.plan} --seed ${a.seed}`;
  process.stderr.write(
    `visittag sim: plan ${a.plan === 'gen' ? `generated (seed ${a.seed})` : a.plan}: ${plan.registry.clients.length} clients, ` +
      `${plan.registry.staff.length} staff, ${plan.visits.length} planned visits over ${plan.days} days\n`,
  );
  const t0 = performance.now();
  const r = await runPlanSimulation({
    plan,
    seed: a.seed,
    keep: a.keep ? 'always' : 'on-failure',
    logger: a.logger,
    ...(a.stepMs ? { stepMs: a.stepMs } : {}),
    onProgress: (p) =>
      process.stderr.write(
        `  ${p.phase} day ${Math.floor(p.virtualMs / 86_400_000) + 1} ${String(Math.round((p.virtualMs % 86_400_000) / 60_000)).padStart(4)} min  ` +
          `taps ${p.taps}  delivered ${p.delivered}  wall ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
      ),
  });
  process.stderr.write(`\n${planSummaryTable(r, replay)}\n`);
  if (a.json) process.stdout.write(`${JSON.stringify(r, null, 1)}\n`);
  return r.ok ? 0 : 1;
}
