/**
 * The report bench measurements, run in a worker process (bench/workers/reports-host.ts) or directly
 * (`npx tsx bench/lib/report-bench.ts executed|continuity [--small]`).
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { continuity } from '../../gateway/src/reports/continuity.js';
import { executedVsPlanned } from '../../gateway/src/reports/executed.js';
import { loadFacts, runContinuity, runExecuted } from '../../gateway/src/reports/run.js';
import type { ReportSource } from '../../gateway/src/reports/source.js';
import { SqliteReportSource } from '../../gateway/src/reports/sqlite-source.js';
import { addDays, ReportClock } from '../../gateway/src/reports/time.js';
import { municipality, writeDatabase } from './report-data.js';

export interface ReportBenchResult {
  visits: number;
  planned: number;
  clients: number;
  days: number;
  dbBytes: number;
  /** Median wall ms of the whole report: SQLite reads + computation. */
  wallMs: number;
  /** Median wall ms of the computation alone, on facts already in memory. */
  pureMs: number;
  runsMs: number[];
  /**
   * The same report computed the earlier way (every fact read into memory, then computed there), run
   * alternately with the measured one in the same process: median wall ms and the runs. Null when the
   * report has no other way.
   */
  oldWallMs: number | null;
  oldRunsMs: number[];
  figure: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function measure(
  clients: number,
  days: number,
  fromDate: string,
  withPlan: boolean,
  run: (src: ReportSource, clock: ReportClock) => Promise<string>,
  pure: (f: Awaited<ReturnType<typeof loadFacts>>, clock: ReportClock) => void,
  compareOld = false,
): Promise<ReportBenchResult> {
  const m = municipality({
    clients,
    areas: 4,
    staffPerArea: Math.max(20, Math.round(clients / 25)),
    fromDate,
    days,
    withPlan,
  });
  const keep = process.env.REPORT_BENCH_DB; // a path: reuse (or create) that database file (profiling)
  const dir = mkdtempSync(join(keep ? dirname(keep) : tmpdir(), 'visittag-bench-reports-'));
  try {
    let path = keep ?? '';
    let bytes: number;
    if (keep && existsSync(keep)) bytes = statSync(keep).size;
    else {
      const written = writeDatabase(dir, m);
      if (keep) renameSync(written.path, keep);
      else path = written.path;
      bytes = written.bytes;
    }
    const db = new Database(path, { readonly: true });
    // Everything from the gateway's SQLite file: visits, registries, plan and matches (the care tables).
    const src: ReportSource = new SqliteReportSource(db);
    // The earlier way: the same source without its SQL aggregation (reads the facts, computes in memory).
    const inMemory: ReportSource = {
      registries: () => src.registries(),
      planned: (w) => src.planned(w),
      matches: (w) => src.matches(w),
      executed: (w) => src.executed(w),
      tapAssurance: (w) => src.tapAssurance!(w),
    };
    const hasOld = compareOld && process.env.REPORT_BENCH_OLD !== '0';
    const clock = new ReportClock();
    const runs: number[] = [];
    const oldRuns: number[] = [];
    let figure = '';
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      figure = await run(src, clock);
      runs.push(performance.now() - t0);
      if (hasOld) {
        const t1 = performance.now();
        const old = await run(inMemory, clock);
        oldRuns.push(performance.now() - t1);
        if (old !== figure) throw new Error(`the two ways differ: ${figure} / ${old}`);
      }
    }
    // REPORT_BENCH_PURE=0 skips timing the computation alone (it reads every fact into memory first).
    const pureTimes = process.env.REPORT_BENCH_PURE === '0' ? 0 : 3;
    const facts =
      pureTimes > 0 ? await loadFacts(src, fromDate, addDays(fromDate, days - 1), clock) : undefined;
    const pureRuns: number[] = [];
    for (let i = 0; facts && i < pureTimes; i++) {
      const t0 = performance.now();
      pure(facts, clock);
      pureRuns.push(performance.now() - t0);
    }
    db.close();
    return {
      visits: m.visits.length,
      planned: m.planned.length,
      clients,
      days,
      dbBytes: bytes,
      wallMs: median(runs),
      pureMs: pureRuns.length ? median(pureRuns) : NaN,
      runsMs: runs,
      oldWallMs: hasOld ? median(oldRuns) : null,
      oldRunsMs: oldRuns,
      figure,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Executed vs planned over `days` days (18 months: 546) for `clients` clients, per area and month. */
export function benchExecuted(clients = 300, days = 546): Promise<ReportBenchResult> {
  const fromDate = '2025-01-01';
  const toDate = addDays(fromDate, days - 1);
  const params = { fromDate, toDate, period: 'month', groupBy: ['area'] } as const;
  return measure(
    clients,
    days,
    fromDate,
    true,
    async (src, clock) => {
      const r = await runExecuted(src, params, clock);
      // The figure includes a digest of the whole report, so the two ways are compared in full.
      return `ratio ${r.total.ratio}, ${r.rows.length} rows, report sha1 ${createHash('sha1').update(JSON.stringify(r)).digest('hex').slice(0, 12)}`;
    },
    (f, clock) => void executedVsPlanned(f, params, clock),
    true,
  );
}

/** The 14-day continuity measure for `clients` clients. */
export function benchContinuity(clients = 10_000): Promise<ReportBenchResult> {
  const fromDate = '2026-09-14';
  return measure(
    clients,
    14,
    fromDate,
    false,
    async (src, clock) => {
      const r = await runContinuity(src, { fromDate }, clock);
      // The figure includes a digest of the whole report, so the two ways are compared in full.
      return `mean ${r.mean}, median ${r.median}, ${r.clients} clients in the measure, report sha1 ${createHash('sha1').update(JSON.stringify(r)).digest('hex').slice(0, 12)}`;
    },
    (f, clock) => void continuity(f, { fromDate }, clock),
    true,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [what, size] = process.argv.slice(2);
  const small = size === '--small';
  const r =
    what === 'continuity'
      ? await benchContinuity(small ? 500 : 10_000)
      : await benchExecuted(small ? 30 : 300, small ? 60 : 546);
  console.log(JSON.stringify(r));
}
