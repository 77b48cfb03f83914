/**
 * Where a report runs. A report job is plain data (which report, its parameters, the caller's scope, the
 * output wanted), so it can run in this thread (`InProcessRunner`: the CLI, tests, a source that is not a
 * file) or in a worker thread with its own read-only connection to the gateway's SQLite file
 * (`WorkerReportRunner`, worker.ts): a report that takes seconds then never blocks the gateway's event loop
 * (MQTT acks, the web app keep answering). The worker makes the whole answer, export included, and sends
 * back only that (a JSON page, a CSV text, an XLSX buffer), so the gateway's thread does no report work.
 */
import { Worker } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AdminResponse } from '../admin/types.js';
import type { ContinuityParams } from './continuity.js';
import { jsonPage, tablesOf, toCsv, toXlsx, type AnyReport, type Lang } from './export.js';
import {
  runContinuity,
  runExecuted,
  runMonthly,
  runQuality,
  runStaffing,
  type MonthlyParams,
} from './run.js';
import { scopedSource, type ReportScope } from './scoped-source.js';
import type { ReportSource } from './source.js';
import type { StaffingParams } from './staffing.js';
import { ReportClock } from './time.js';
import type { ExecutedParams } from '../store/report-types.js';

export interface OutputOpts {
  format: 'json' | 'csv' | 'xlsx';
  lang: Lang;
  table?: string;
  offset: number;
  limit: number;
}

export type ReportCall =
  | { kind: 'executed'; params: ExecutedParams }
  | { kind: 'continuity'; params: ContinuityParams }
  | { kind: 'monthly'; params: MonthlyParams }
  | { kind: 'staffing'; params: StaffingParams }
  | { kind: 'quality'; params: { fromDate: string; toDate: string; lateDeliveryHours?: number } };

export type ReportJob = ReportCall & {
  timeZone: string;
  /** The caller's scope (null: everything). */
  scope: ReportScope | null;
  output: OutputOpts;
  /** File name stem of an export. */
  name: string;
};

const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
const bad = (error: string): AdminResponse => ({ status: 400, body: { error } });

/** Runs one report on `source` (one clock per zone, kept by the caller). */
export function runCall(source: ReportSource, call: ReportCall, clock: ReportClock): Promise<AnyReport> {
  switch (call.kind) {
    case 'executed':
      return runExecuted(source, call.params, clock);
    case 'continuity':
      return runContinuity(source, call.params, clock);
    case 'monthly':
      return runMonthly(source, call.params, clock);
    case 'staffing':
      return runStaffing(source, call.params, clock);
    case 'quality':
      return runQuality(source, call.params, clock);
  }
}

async function output(report: AnyReport, o: OutputOpts, name: string): Promise<AdminResponse> {
  if (o.format === 'xlsx')
    return {
      status: 200,
      body: await toXlsx(report, o.lang),
      contentType: XLSX_TYPE,
      headers: { 'content-disposition': `attachment; filename="${name}.xlsx"` },
    };
  if (o.format === 'csv') {
    const tables = tablesOf(report);
    const t = o.table === undefined ? tables[0] : tables.find((x) => x.name === o.table);
    if (!t) return bad(`no table "${o.table}": this report has ${tables.map((x) => x.name).join(', ')}`);
    return {
      status: 200,
      body: toCsv(t, o.lang),
      contentType: 'text/csv; charset=utf-8',
      headers: { 'content-disposition': `attachment; filename="${name}-${t.name}.csv"` },
    };
  }
  return { status: 200, body: jsonPage(report, o.offset, o.limit) };
}

/** A job's whole answer: the report in the caller's scope, exported; 400 for parameters a report refuses. */
export async function answerJob(
  source: ReportSource,
  job: ReportJob,
  clockOf: (timeZone: string) => ReportClock,
): Promise<AdminResponse> {
  let report: AnyReport;
  try {
    const src = job.scope === null ? source : scopedSource(source, job.scope);
    report = await runCall(src, job, clockOf(job.timeZone));
  } catch (e) {
    // The report functions throw only on bad parameters (a period not starting on a Monday, …).
    return bad((e as Error).message);
  }
  return output(report, job.output, job.name);
}

export interface ReportRunner {
  run(job: ReportJob): Promise<AdminResponse>;
  close(): Promise<void>;
}

/** Keeps one ReportClock per zone (its offset caches are worth keeping). */
export function clocks(): (timeZone: string) => ReportClock {
  const byZone = new Map<string, ReportClock>();
  return (tz) => {
    let c = byZone.get(tz);
    if (c === undefined) byZone.set(tz, (c = new ReportClock(tz)));
    return c;
  };
}

/** Runs reports in this thread: their SQL then blocks the event loop while it runs. */
export class InProcessRunner implements ReportRunner {
  private readonly clockOf = clocks();
  constructor(private readonly source: ReportSource) {}
  run(job: ReportJob): Promise<AdminResponse> {
    return answerJob(this.source, job, this.clockOf);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Messages between WorkerReportRunner and worker.ts. */
export interface WorkerRequest {
  id: number;
  job: ReportJob;
}
export type WorkerReply =
  { id: number; response: AdminResponse } | { id: number; error: string } | { ready: true };

export interface WorkerReportRunnerOptions {
  /** The gateway's SQLite file (the worker opens its own connection). */
  path: string;
  /** Use the report cells kept at write time (default true; false: the bench's before). */
  cells?: boolean;
}

/** Where a report thread starts and what it is given (ReportThread). */
export interface ReportThreadEntry {
  /**
   * The URL of the module that serves report jobs in the worker: a .ts file (sources through tsx: the worker
   * registers tsx's loader first), a .js file (the built tree), or a bundle holding that module (its
   * top-level code then serves, told by `data`).
   */
  url: string;
  /** The worker's workerData. */
  data: Record<string, unknown>;
  /** The worker's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /**
   * Sent at close: the worker finishes the reports it has, releases what it holds (a pool's connections) and
   * ends; terminated if it has not within `stopMs` (default 2 s). Without it close terminates at once.
   */
  stop?: { message: unknown; stopMs?: number };
}

/**
 * Runs reports in one worker thread (started on the first report, restarted if it dies), one report at a
 * time in arrival order. The worker does not keep the process alive while idle.
 */
export class ReportThread implements ReportRunner {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: AdminResponse) => void; reject: (e: Error) => void }
  >();
  private closed = false;
  /** How the last worker ended at close: on the stop message, or terminated (none started: null). */
  ended: 'stopped' | 'terminated' | null = null;

  constructor(private readonly entry: ReportThreadEntry) {}

  private start(): Worker {
    if (this.worker) return this.worker;
    const entry = this.entry.url;
    // From TypeScript sources (tsx, the tests) the worker registers tsx's loader before loading its entry.
    const tsx = entry.endsWith('.ts') ? tsxApi(import.meta.url) : null;
    const code =
      tsx === null
        ? `import(${JSON.stringify(entry)})`
        : `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); })`;
    const w = new Worker(code, {
      eval: true,
      workerData: this.entry.data,
      ...(this.entry.env ? { env: this.entry.env } : {}),
    });
    w.unref();
    w.on('message', (m: WorkerReply) => {
      if ('ready' in m) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
      if ('error' in m) p.reject(new Error(m.error));
      else p.resolve(toBuffer(m.response));
    });
    const fail = (err: Error) => {
      if (this.worker === w) this.worker = null;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`report worker exited (${code})`)));
    this.worker = w;
    return w;
  }

  run(job: ReportJob): Promise<AdminResponse> {
    if (this.closed) return Promise.reject(new Error('report runner closed'));
    const w = this.start();
    const id = this.nextId++;
    return new Promise<AdminResponse>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.ref(); // a report in progress keeps the process alive until it answers
      w.postMessage({ id, job } satisfies WorkerRequest);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    if (!w) return;
    const stop = this.entry.stop;
    if (stop) {
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
      w.postMessage(stop.message);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), stop.stopMs ?? 2000);
      });
      const r = await Promise.race([exited, late]);
      clearTimeout(timer);
      if (r !== 'late') {
        this.ended = 'stopped';
        return;
      }
    }
    this.ended = 'terminated';
    await w.terminate();
  }
}

/** Reports in a worker thread with its own read-only connection to the gateway's SQLite file (worker.ts). */
export class WorkerReportRunner extends ReportThread {
  constructor(opts: WorkerReportRunnerOptions) {
    const here = import.meta.url;
    super({
      url: new URL(`./worker.${here.endsWith('.ts') ? 'ts' : 'js'}`, here).href,
      data: { path: opts.path, cells: opts.cells ?? true },
    });
  }
}

/** The file URL of tsx's ESM register API (`tsx/esm/api`, import condition), found through its package.json. */
function tsxApi(from: string): string {
  const pkgPath = createRequire(from).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as {
    exports: Record<string, { import?: { default?: string } } | string>;
  };
  const entry = pkg.exports['./esm/api'];
  const rel = typeof entry === 'string' ? entry : entry?.import?.default;
  if (rel === undefined)
    throw new Error('tsx has no ./esm/api export: cannot start the report worker from sources');
  return pathToFileURL(join(dirname(pkgPath), rel)).href;
}

/** An XLSX buffer arrives as a Uint8Array: give the HTTP layer a Buffer again (no copy). */
function toBuffer(r: AdminResponse): AdminResponse {
  return r.body instanceof Uint8Array && !Buffer.isBuffer(r.body)
    ? { ...r, body: Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength) }
    : r;
}
