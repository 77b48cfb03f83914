/**
 * The report bench measurements, run in a worker process (bench/workers/reports-host.ts) or directly
 * (`npx tsx bench/lib/report-bench.ts executed|continuity [--small]`).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { continuity } from '../../gateway/src/reports/continuity.js';
import { executedVsPlanned } from '../../gateway/src/reports/executed.js';
import { loadFacts, runContinuity, runExecuted } from '../../gateway/src/reports/run.js';
import {
  InProcessRunner,
  WorkerReportRunner,
  type ReportCall,
  type ReportJob,
} from '../../gateway/src/reports/runner.js';
import { scopedSource } from '../../gateway/src/reports/scoped-source.js';
import type { ReportSource } from '../../gateway/src/reports/source.js';
import { SqliteReportSource } from '../../gateway/src/store/sqlite/reports/source.js';
import { addDays, ReportClock } from '../../gateway/src/reports/time.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { GATEWAY_MIGRATIONS, municipality, writeDatabase } from './report-data.js';

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
  /** What the baseline is. */
  oldLabel: string | null;
  /** Where the measured report's cells came from ('kept cells': the cells kept at write time). */
  from: string | null;
  /** Building the kept cells from scratch (the first refresh), ms; null without cells. */
  buildMs: number | null;
  /** One day's visits rewritten (every one marks its day), then the report: ms (refresh included). */
  afterDayWriteMs: number | null;
  /** The report cells' share of the database file (bytes), when SQLite can tell. */
  cellBytes: number | null;
  figure: string;
  /** The machine's 1-minute load average when the timed runs started and when they ended. */
  load: [number, number];
  /**
   * The same report scoped to one area (a unit manager's view), from the kept cells: median ms of 3 runs,
   * and once on the fly (the digests compared); null when not measured.
   */
  scoped: { label: string; runsMs: number[]; wallMs: number; onTheFlyMs: number; from: string | null } | null;
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
  withCells: 'executed' | 'continuity' | null = null,
  scopedRun: ((src: ReportSource, clock: ReportClock) => Promise<string>) | null = null,
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
    // The gateway's schema, with the report cells' tables and triggers (added to an older bench file).
    const db = openDatabase(path, GATEWAY_MIGRATIONS);
    const clock = new ReportClock();
    // Everything from the gateway's SQLite file: visits, registries, plan and matches (the care tables).
    const src = new SqliteReportSource(db);
    const onTheFly = new SqliteReportSource(db, { cells: false });
    // The earlier way: the same source without its SQL aggregation (reads the facts, computes in memory).
    const inMemory: ReportSource = {
      registries: () => onTheFly.registries(),
      planned: (w) => onTheFly.planned(w),
      matches: (w) => onTheFly.matches(w),
      executed: (w) => onTheFly.executed(w),
      tapAssurance: (w) => onTheFly.tapAssurance(w),
    };
    let buildMs: number | null = null;
    if (withCells) {
      const t0 = performance.now();
      src.cellsReady(clock); // builds them on a file that has none yet
      buildMs = performance.now() - t0;
    }
    // Baseline: with cells, the same report aggregated on the fly (REPORT_BENCH_OLD=memory: in memory);
    // without, in memory. REPORT_BENCH_OLD=0: none.
    const oldMode = process.env.REPORT_BENCH_OLD ?? (withCells ? 'sql' : 'memory');
    const old =
      !compareOld || oldMode === '0' ? null : oldMode === 'memory' || !withCells ? inMemory : onTheFly;
    const runs: number[] = [];
    const oldRuns: number[] = [];
    let figure = '';
    const load0 = loadavg()[0]!;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      figure = await run(src, clock);
      runs.push(performance.now() - t0);
      if (old) {
        const t1 = performance.now();
        const o = await run(old, clock);
        oldRuns.push(performance.now() - t1);
        if (o !== figure) throw new Error(`the two ways differ: ${figure} / ${o}`);
      }
    }
    const from =
      withCells === 'executed'
        ? src.lastExecutedFrom
        : withCells === 'continuity'
          ? src.lastContinuityFrom
          : null;
    if (withCells && from !== 'kept cells')
      throw new Error(`the report did not read the kept cells (${from})`);
    let scoped: ReportBenchResult['scoped'] = null;
    if (withCells === 'executed' && scopedRun) {
      const scopedRuns: number[] = [];
      let sf = '';
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        sf = await scopedRun(src, clock);
        scopedRuns.push(performance.now() - t0);
      }
      const scopedFrom = src.lastExecutedFrom;
      const t0 = performance.now();
      const o = await scopedRun(onTheFly, clock);
      const onTheFlyMs = performance.now() - t0;
      if (o !== sf) throw new Error(`the two ways differ (scoped): ${sf} / ${o}`);
      scoped = {
        label: 'one area of four',
        runsMs: scopedRuns,
        wallMs: median(scopedRuns),
        onTheFlyMs,
        from: scopedFrom,
      };
    }
    const load1 = loadavg()[0]!;
    let afterDayWriteMs: number | null = null;
    if (withCells) {
      const last = clock.window(addDays(fromDate, days - 1), addDays(fromDate, days - 1));
      db.prepare(
        'UPDATE visits SET updated_at_ms = updated_at_ms WHERE started_at_ms >= ? AND started_at_ms < ?',
      ).run(last.fromMs, last.toMs);
      const t0 = performance.now();
      const again = await run(src, clock);
      afterDayWriteMs = performance.now() - t0;
      if (again !== figure) throw new Error(`the report changed after rewriting a day as it was: ${again}`);
    }
    let cellBytes: number | null = null;
    try {
      cellBytes = (
        db.prepare("SELECT sum(pgsize) AS b FROM dbstat WHERE name LIKE 'report\\_%' ESCAPE '\\'").get() as {
          b: number | null;
        }
      ).b;
    } catch {
      cellBytes = null; // SQLite built without dbstat
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
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    bytes = statSync(path).size; // with the kept cells
    return {
      visits: m.visits.length,
      planned: m.planned.length,
      clients,
      days,
      dbBytes: bytes,
      wallMs: median(runs),
      pureMs: pureRuns.length ? median(pureRuns) : NaN,
      runsMs: runs,
      oldWallMs: old ? median(oldRuns) : null,
      oldRunsMs: oldRuns,
      oldLabel:
        old === null
          ? null
          : old === inMemory
            ? 'the same report computed in memory'
            : 'the same report aggregated on the fly in SQL (before: no kept cells)',
      from,
      buildMs,
      afterDayWriteMs,
      cellBytes,
      figure,
      load: [load0, load1],
      scoped,
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
    'executed',
    async (src, clock) => {
      const r = await runExecuted(scopedSource(src, { areas: ['area-1'], provider: null }), params, clock);
      return `ratio ${r.total.ratio}, ${r.rows.length} rows, report sha1 ${createHash('sha1').update(JSON.stringify(r)).digest('hex').slice(0, 12)}`;
    },
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
    'continuity',
  );
}

export interface IngestCostResult {
  /** Taps per transaction (the ingest's group commit takes several; 1: one fsync per tap). */
  batch: number;
  taps: number;
  /** Median µs per tap over the rounds, without and with the report cells' marking triggers. */
  withoutUs: number;
  withUs: number;
  ratio: number;
  roundsWithoutUs: number[];
  roundsWithUs: number[];
}

/**
 * What the report cells' triggers cost the ingest: the writes of a tap as the gateway's SQLite store makes
 * them (the event, the visit upsert: a start inserts the visit, the stop updates it, the outbox row, the
 * reader's sequence) into two gateway files, one without the reports' migrations (no triggers) and one
 * with, in alternating rounds in one process; median µs per tap and the ratio.
 */
export function benchIngestCost(batch: number, taps = 20_000, rounds = 5): IngestCostResult {
  const dir = mkdtempSync(join(tmpdir(), 'visittag-bench-ingest-cost-'));
  try {
    const without = openDatabase(
      join(dir, 'without.db'),
      GATEWAY_MIGRATIONS.filter((m) => !m.id.startsWith('reports-') || m.id === 'reports-001'),
    );
    const withCells = openDatabase(join(dir, 'with.db'), GATEWAY_MIGRATIONS);
    const round = (db: ReturnType<typeof openDatabase>, r: number): number => {
      const event = db.prepare(
        'INSERT OR IGNORE INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json) VALUES (?, ?, ?, ?, ?)',
      );
      const seq = db.prepare(
        `INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen) VALUES (?, ?, ?)
         ON CONFLICT (reader_id) DO UPDATE SET contiguous_upto = excluded.contiguous_upto, max_seen = excluded.max_seen`,
      );
      const visit = db.prepare(
        `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms,
             start_seq, ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq, updated_at_ms)
           VALUES (@readerId, @visitId, @clientRef, @cardRef, @staffRef, NULL, @state, @startedAtMs, @startSeq,
             @endedAtMs, @endSeq, @endReason, 'synced', '[]', NULL, @updatedAtMs)
           ON CONFLICT (reader_id, visit_id) DO UPDATE SET client_ref = excluded.client_ref,
             staff_ref = excluded.staff_ref, group_id = excluded.group_id, state = excluded.state,
             started_at_ms = excluded.started_at_ms, start_seq = excluded.start_seq,
             ended_at_ms = excluded.ended_at_ms, end_seq = excluded.end_seq, end_reason = excluded.end_reason,
             time_quality = excluded.time_quality, anomalies_json = excluded.anomalies_json,
             late_end_seq = excluded.late_end_seq, updated_at_ms = excluded.updated_at_ms`,
      );
      const outbox = db.prepare(
        `INSERT OR IGNORE INTO outbox (idempotency_key, visit_id, type, event_json, state, created_at_ms)
         VALUES (?, ?, ?, '{}', 'pending', ?)`,
      );
      const t0Ms = Date.UTC(2026, 10, 2, 7) + r * 86_400_000;
      const tap = (i: number) => {
        const reader = `rd-${i % 300}`;
        const n = Math.floor(i / 600); // each reader: start, then stop, of one visit after another
        const stop = Math.floor(i / 300) % 2 === 1;
        const at = t0Ms + n * 3_600_000 + (stop ? 1_800_000 : 0);
        const s = Math.floor(i / 300) + 1;
        event.run(reader, r * 1_000_000 + s, '{"kind":"tap"}', at + 500, '{}');
        seq.run(reader, r * 1_000_000 + s, r * 1_000_000 + s);
        visit.run({
          readerId: reader,
          visitId: `r${r}-v${n}`,
          clientRef: `c${i % 300}`,
          cardRef: `card-${i % 97}`,
          staffRef: `s${i % 97}`,
          state: stop ? 'closed' : 'open',
          startedAtMs: t0Ms + n * 3_600_000,
          startSeq: r * 1_000_000 + s - (stop ? 1 : 0),
          endedAtMs: stop ? at : null,
          endSeq: stop ? r * 1_000_000 + s : null,
          endReason: stop ? 'tap' : null,
          updatedAtMs: at,
        });
        outbox.run(
          `${reader}/r${r}-v${n}/${stop ? 'end' : 'start'}`,
          `r${r}-v${n}`,
          stop ? 'visit.ended' : 'visit.started',
          at,
        );
      };
      const t0 = performance.now();
      for (let i = 0; i < taps; i += batch)
        db.transaction(() => {
          for (let j = i; j < Math.min(taps, i + batch); j++) tap(j);
        })();
      return ((performance.now() - t0) * 1000) / taps;
    };
    const a: number[] = [];
    const b: number[] = [];
    for (let r = 0; r < rounds; r++) {
      if (r % 2 === 0) {
        a.push(round(without, r));
        b.push(round(withCells, r));
      } else {
        b.push(round(withCells, r));
        a.push(round(without, r));
      }
    }
    without.close();
    withCells.close();
    const withoutUs = median(a);
    const withUs = median(b);
    return { batch, taps, withoutUs, withUs, ratio: withUs / withoutUs, roundsWithoutUs: a, roundsWithUs: b };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface StallResult {
  report: string;
  /** Longest event-loop stall (ms) while the report ran in this thread, and while it ran in the worker. */
  inThreadMaxMs: number;
  workerMaxMs: number;
  inThreadWallMs: number;
  workerWallMs: number;
  /** 10 ms ticks that fired while the report ran (a free loop fires one per 10 ms). */
  inThreadTicks: number;
  workerTicks: number;
}

/**
 * The gateway's event loop while a report runs: once in this thread (InProcessRunner, as before) and once
 * in the report worker (WorkerReportRunner), on the same file; a 10 ms timer records the longest gap.
 */
export async function benchStall(path: string, call: ReportCall): Promise<StallResult> {
  const job: ReportJob = {
    ...call,
    timeZone: 'Europe/Stockholm',
    scope: null,
    output: { format: 'json', lang: 'sv', offset: 0, limit: 100 },
    name: 'bench',
  };
  const watch = async (run: () => Promise<unknown>) => {
    let last = performance.now();
    let max = 0;
    let ticks = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      max = Math.max(max, now - last);
      last = now;
      ticks++;
    }, 10);
    const t0 = performance.now();
    await run();
    const wall = performance.now() - t0;
    clearInterval(timer);
    return { max: Math.max(max, performance.now() - last), wall, ticks };
  };
  const db = openDatabase(path, GATEWAY_MIGRATIONS);
  const inThread = new InProcessRunner(new SqliteReportSource(db, { cells: false }));
  const worker = new WorkerReportRunner({ path, cells: false });
  try {
    await worker.run({
      ...job,
      kind: 'quality',
      params: { fromDate: '2026-01-01', toDate: '2026-01-01' },
    });
    const a = await watch(() => inThread.run(job));
    const b = await watch(() => worker.run(job));
    return {
      report: `${call.kind} ${JSON.stringify(call.params)} (aggregated on the fly)`,
      inThreadMaxMs: a.max,
      workerMaxMs: b.max,
      inThreadWallMs: a.wall,
      workerWallMs: b.wall,
      inThreadTicks: a.ticks,
      workerTicks: b.ticks,
    };
  } finally {
    await worker.close();
    db.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv[2] === 'stall') {
    // REPORT_BENCH_DB=<a continuity bench file> ... report-bench.ts stall
    console.log(
      JSON.stringify(
        await benchStall(process.env.REPORT_BENCH_DB!, {
          kind: 'continuity',
          params: { fromDate: '2026-09-14' },
        }),
      ),
    );
    process.exit(0);
  }
  const [what, size] = process.argv.slice(2);
  const small = size === '--small';
  const r =
    what === 'ingest'
      ? [benchIngestCost(1, small ? 500 : 2_000), benchIngestCost(100, small ? 5_000 : 60_000)]
      : what === 'continuity'
        ? await benchContinuity(small ? 500 : 10_000)
        : await benchExecuted(small ? 30 : 300, small ? 60 : 546);
  console.log(JSON.stringify(r));
}
