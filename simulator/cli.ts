/**
 * visittag fleet simulator CLI: `npm run sim -- --readers 300 --staff 80 --hours 8 --seed 42 --faults chaos`.
 * Drives the real device and gateway code on virtual time, injects faults, checks the invariants,
 * prints a summary table and exits non-zero on any breach (naming the seed to replay).
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { FAULT_KINDS, parseFaultList, type FaultKind } from './faults/plan.js';
import { mixedKinds } from './faults/mixed.js';
import { scheduleLine, summaryTable } from './report.js';
import { processSupport, runSimulation, type RunReport } from './run.js';

const HELP = `visittag fleet simulator

Usage: npm run sim -- [options]

  --readers N       readers (homes)                                   default 12
  --staff N         care staff (with cards)                           default 6
  --hours H         length of the simulated day                       default 8
  --seed S          scenario + fault seed (printed for replay)        default 42
  --faults F        none | chaos (every kind) | mixed (a few per seed)
                    | a comma list of: ${FAULT_KINDS.join(', ')}
                                                                      default none
  --per-kind K      faults of each kind per schedule                  default 1
  --schedules N     run N seeded schedules (seeds S, S+1, …)          default 1
  --step-ms MS      virtual ms per I/O drain step                     default 1000
  --store E         the gateway's store: sqlite (one embedded gateway) | postgres
                    (gateway processes on a PostgreSQL cluster and a Mosquitto 2 broker
                    this command starts in temp dirs; MQTT 5 shared subscription)  default sqlite
  --instances N     gateway instances (with --store postgres)         default 1
  --keep            keep every run's temp dir (default: only failing ones)
  --json            print the reports as JSON on stdout
  --log-level L     component logs to stderr (silent|error|warn|info|debug) default silent
  --plan gen|FILE   a period driven by a care plan (generated, or a JSON plan file): staff tap
                    by the plan; matches and late/missed alerts are checked (simulator/plan/)
    --clients N --staff N --days N   size of a generated plan            default 60, 25, 7
    --save-plan FILE                 write the plan played as JSON
  -h, --help        this text

Exit code: 0 when every invariant held in every schedule, 1 on any breach, 2 on bad usage.
`;

function fail(msg: string): never {
  process.stderr.write(`${msg}\n\n${HELP}`);
  process.exit(2);
}

function int(name: string, v: string | undefined, def: number, min: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer ≥ ${min}, got "${v}"`);
  return n;
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        readers: { type: 'string' },
        staff: { type: 'string' },
        hours: { type: 'string' },
        seed: { type: 'string' },
        faults: { type: 'string' },
        'per-kind': { type: 'string' },
        schedules: { type: 'string' },
        'step-ms': { type: 'string' },
        store: { type: 'string' },
        instances: { type: 'string' },
        keep: { type: 'boolean' },
        json: { type: 'boolean' },
        'log-level': { type: 'string' },
        plan: { type: 'string' },
        clients: { type: 'string' },
        days: { type: 'string' },
        'save-plan': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
  } catch (err) {
    fail((err as Error).message);
  }
  const a = parsed.values;
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const store = a.store ?? 'sqlite';
  if (store !== 'sqlite' && store !== 'postgres') fail(`--store must be sqlite or postgres, got "${store}"`);
  const instances = int('instances', a.instances, 1, 1);
  if (store === 'sqlite' && instances > 1) fail('--instances above 1 needs --store postgres (one database)');
  if (instances > 16) fail('--instances must be at most 16');
  if (store === 'postgres' && a.plan !== undefined)
    fail('--store postgres runs the day simulation, not --plan');
  const scaleOut = store === 'postgres' ? { instances } : null;
  const topology = scaleOut ? ` --store postgres --instances ${instances}` : '';
  if (a.plan !== undefined) {
    const { runPlanCli } = await import('./plan/cli.js');
    return runPlanCli({
      plan: a.plan,
      clients: int('clients', a.clients, 60, 1),
      staff: int('staff', a.staff, 25, 1),
      days: int('days', a.days, 7, 1),
      seed: int('seed', a.seed, 42, 0),
      stepMs: a['step-ms'] === undefined ? null : int('step-ms', a['step-ms'], 5000, 10),
      savePlan: a['save-plan'] ?? null,
      keep: Boolean(a.keep),
      json: Boolean(a.json),
      logger: pino({ level: a['log-level'] ?? 'silent' }, pino.destination(2)),
    });
  }
  const readers = int('readers', a.readers, 12, 1);
  const staff = int('staff', a.staff, 6, 1);
  const hours = int('hours', a.hours, 8, 1);
  const seed = int('seed', a.seed, 42, 0);
  const schedules = int('schedules', a.schedules, 1, 1);
  const perKind = int('per-kind', a['per-kind'], 1, 1);
  const stepMs = int('step-ms', a['step-ms'], 1000, 10);
  const faultSpec = a.faults ?? 'none';
  let fixed: FaultKind[] | null = null;
  if (faultSpec !== 'mixed') {
    try {
      fixed = parseFaultList(faultSpec);
    } catch (err) {
      fail((err as Error).message);
    }
  }
  const level = a['log-level'] ?? 'silent';
  const logger = pino({ level }, pino.destination(2));
  const processes = await processSupport();
  const reports: RunReport[] = [];
  const t0 = performance.now();
  for (let i = 0; i < schedules; i++) {
    const s = seed + i;
    const kinds = fixed ?? mixedKinds(s);
    const replay = `npm run sim -- --readers ${readers} --staff ${staff} --hours ${hours} --seed ${s} --faults ${fixed ? faultSpec : kinds.join(',')}${perKind > 1 ? ` --per-kind ${perKind}` : ''}${topology}`;
    if (schedules === 1)
      process.stderr.write(
        `visittag sim: seed ${s}, ${readers} readers, ${staff} staff, ${hours} h, faults ${kinds.join(',') || 'none'}` +
          `${scaleOut ? `, ${instances} gateway instance(s) on PostgreSQL behind Mosquitto` : ''}\n`,
      );
    const r = await runSimulation({
      seed: s,
      readers,
      staff,
      hours,
      faults: kinds,
      perKind,
      stepMs,
      keep: a.keep ? 'always' : 'on-failure',
      logger,
      processes,
      ...(scaleOut ? { scaleOut } : {}),
      onProgress:
        schedules === 1
          ? (p) =>
              process.stderr.write(
                `  ${p.phase} ${String(Math.round(p.virtualMs / 60_000)).padStart(4)} min virtual  ` +
                  `taps ${p.taps}  delivered ${p.delivered}  wall ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
              )
          : undefined,
    });
    reports.push(r);
    if (schedules === 1) process.stderr.write(`\n${summaryTable(r, replay)}\n`);
    else process.stderr.write(`${scheduleLine(r)}${r.ok ? '' : `\n    replay: ${replay}`}\n`);
  }
  const failed = reports.filter((r) => !r.ok);
  if (schedules > 1) {
    process.stderr.write(
      `\n${schedules} schedules, ${schedules - failed.length} passed, ${failed.length} failed` +
        `${failed.length ? ` (seeds ${failed.map((r) => r.seed).join(', ')})` : ''}; wall ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
    );
  }
  if (a.json) process.stdout.write(`${JSON.stringify(reports, null, 1)}\n`);
  return failed.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`visittag sim: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(3);
  },
);
