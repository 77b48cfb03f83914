/**
 * How long a report on PostgreSQL holds the gateway's event loop: the same report jobs run in this thread
 * (InProcessRunner over PgReportSource, as before) and in the report worker with its own pool
 * (reports/pg-worker.ts PgReportWorker), side by side on the same facts, alternating, median of N. While a
 * report runs a 5 ms interval timer ticks; the longest gap between its ticks beyond 5 ms is the stall (what
 * an MQTT ack or an HTTP request would have waited), the sum of every gap's excess over 10 ms is how long the
 * loop was held in all, and perf_hooks' event-loop delay p99/max is beside them. A baseline row watches the
 * idle loop for 3 s the same way (what the machine's load alone costs the loop).
 * Both answers are compared byte for byte.
 * Run: `npx tsx test/scale/pg-reports-stall.ts [clients] [days] [runs]` (default 1000 28 3).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { municipality } from '../../bench/lib/report-data.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import { PgReportWorker } from '../../gateway/src/reports/pg-worker.js';
import { reportMigrations } from '../../gateway/src/store/sqlite/reports/migrations.js';
import { InProcessRunner, type ReportJob, type ReportRunner } from '../../gateway/src/reports/runner.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import { migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgReportSource } from '../../gateway/src/store/postgres/reports.js';
import { careMigrations } from '../../gateway/src/store/sqlite/care-migrations.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { writeCare, writeVisits } from '../reports/sqlite-fixture.js';
import { sqliteToPg } from '../reports/pg-copy.js';
import { startPgCluster } from '../support/pg-cluster.js';

const [clients, days, runs] = [1000, 28, 3].map((d, i) => Number(process.argv[2 + i] ?? d)) as [
  number,
  number,
  number,
];
const FROM = '2026-03-02';
const TICK_MS = 5;
/** Runs `fn` while watching the event loop (a 5 ms interval timer and perf_hooks' delay histogram). */
async function watched<T>(
  fn: () => Promise<T>,
): Promise<{ res: T; wall: number; stall: number; held: number; p99: number; max: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  let last = performance.now();
  let stall = 0;
  let held = 0;
  const gap = (t: number) => {
    const excess = t - last - TICK_MS;
    stall = Math.max(stall, excess);
    if (excess > 10) held += excess;
    last = t;
  };
  const timer = setInterval(() => gap(performance.now()), TICK_MS);
  h.enable();
  const t0 = performance.now();
  const res = await fn();
  const wall = performance.now() - t0;
  h.disable();
  clearInterval(timer);
  gap(performance.now());
  return { res, wall, stall, held, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
}

const dir = mkdtempSync(join(tmpdir(), 'vt-pg-reports-stall-'));
const pgc = await startPgCluster();
let worker: PgReportWorker | null = null;
try {
  const m = municipality({
    clients,
    areas: 4,
    staffPerArea: Math.ceil(clients / 25),
    fromDate: FROM,
    days,
    withPlan: true,
    seed: 7,
  });
  const db = openDatabase(join(dir, 'gateway.db'), [
    ...sqliteMigrations,
    ...careMigrations,
    ...correctionMigrations,
    ...reportMigrations,
  ]);
  writeVisits(db, m.visits);
  writeCare(db, m, m.visits, new ReportClock());
  const url = await pgc.createDatabase();
  const pool = openPgPool({ url, max: 4 });
  await migrate(pool, postgresMigrations);
  await sqliteToPg(db, pool);
  db.close();
  await pool.query('ANALYZE');
  const to = new Date(Date.parse(`${FROM}T00:00:00Z`) + (days - 1) * 86_400_000).toISOString().slice(0, 10);
  const job = (j: Pick<ReportJob, 'kind' | 'params'>, name: string): ReportJob =>
    ({
      ...j,
      timeZone: 'Europe/Stockholm',
      scope: null,
      output: { format: 'json', lang: 'sv', offset: 0, limit: 500 },
      name,
    }) as ReportJob;
  const jobs: Array<[string, ReportJob]> = [
    [
      'executed (month, by area)',
      job(
        { kind: 'executed', params: { fromDate: FROM, toDate: to, period: 'month', groupBy: ['area'] } },
        'executed-vs-planned',
      ),
    ],
    ['continuity (14 days)', job({ kind: 'continuity', params: { fromDate: FROM } }, 'continuity')],
  ];
  worker = new PgReportWorker({ url });
  const runners: Array<[string, ReportRunner]> = [
    ['in this thread', new InProcessRunner(new PgReportSource(pool))],
    ['report worker', worker],
  ];
  // the worker's start (its loader, its pool) is not what is measured: one small report first
  await worker.run(job({ kind: 'continuity', params: { fromDate: FROM, days: 1 } }, 'warm-up'));

  const load0 = loadavg()[0]!;
  const idle = await watched(() => new Promise((r) => setTimeout(r, 3000)));
  console.log(
    `baseline (idle loop, 3 s): longest stall ${idle.stall.toFixed(0)} ms, held in all ${(idle.held / 1000).toFixed(2)} s, ` +
      `loop delay p99 ${idle.p99.toFixed(0)} ms max ${idle.max.toFixed(0)} ms`,
  );
  console.log(
    `${clients} clients, ${days} days, ${m.visits.length} visits, ${m.planned.length} planned; median of ${runs}; load ${load0.toFixed(1)}`,
  );
  for (const [name, j] of jobs) {
    const rows = new Map<string, { wall: number; stall: number; held: number; p99: number; max: number }[]>(
      runners.map(([r]) => [r, []]),
    );
    const digests = new Map<string, Set<string>>(runners.map(([r]) => [r, new Set<string>()]));
    for (let r = 0; r < runs; r++) {
      for (const [rn, runner] of r % 2 ? [...runners].reverse() : runners) {
        const { res, ...row } = await watched(() => runner.run(j));
        if (res.status !== 200) throw new Error(`${rn}: ${res.status} ${JSON.stringify(res.body)}`);
        digests
          .get(rn)!
          .add(createHash('sha256').update(JSON.stringify(res.body)).digest('hex').slice(0, 12));
        rows.get(rn)!.push(row);
      }
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const stallOf = (rn: string) => med(rows.get(rn)!.map((x) => x.stall));
    for (const [rn] of runners) {
      const xs = rows.get(rn)!;
      console.log(
        `${name}: ${rn}: wall ${(med(xs.map((x) => x.wall)) / 1000).toFixed(2)} s, longest stall ${stallOf(rn).toFixed(0)} ms ` +
          `(runs ${xs.map((x) => x.stall.toFixed(0)).join(' / ')}), held in all ${(med(xs.map((x) => x.held)) / 1000).toFixed(2)} s, loop delay p99 ${med(xs.map((x) => x.p99)).toFixed(0)} ms ` +
          `max ${med(xs.map((x) => x.max)).toFixed(0)} ms; answer digest ${[...digests.get(rn)!].join(',')}`,
      );
    }
    const all = [...digests.values()].flatMap((d) => [...d]);
    const same = all.length > 0 && all.every((d) => d === all[0]);
    console.log(
      `${name}: stall in this thread / in the worker = ${(stallOf('in this thread') / Math.max(1, stallOf('report worker'))).toFixed(0)}x; answers ${same ? 'byte-identical' : 'DIFFER'}`,
    );
    if (!same) process.exitCode = 1;
  }
  console.log(`load ${load0.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}`);
  await pool.end();
} finally {
  await worker?.close();
  await pgc.destroy();
  rmSync(dir, { recursive: true, force: true });
}
