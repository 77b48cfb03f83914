/**
 * Reports on PostgreSQL (`store.engine: "postgres"`) in a worker thread with its own small pool: the report
 * reads the window's facts from the shared tables and computes its figures in memory (PgReportSource,
 * store/postgres/reports.ts), which takes seconds for a large month; in the worker that never holds the
 * gateway's event loop (MQTT acks, the admin API and the web app keep answering). The worker makes the
 * whole answer (JSON page, CSV, XLSX) with the same code as in this thread (runner.ts `answerJob`), so the
 * bytes are the same.
 *
 * The worker's entry is THIS module, wherever it is: from sources (tsx) `pg-worker.ts`, in the built tree
 * `pg-worker.js`, and in a bundle of the gateway (one file, no worker file beside it: the tests' and the
 * simulator's esbuild bundles of gateway/main.ts) the bundle itself. The worker imports that URL; this
 * module's top-level code sees its workerData and serves. A bundle's CLI does not start in the worker: its
 * `process.argv[1]` is not the bundle (gateway/main.ts `isEntryPoint`), and VISITTAG_GATEWAY_MAIN is left
 * out of its environment.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { openPgPool, type PgPool } from '../store/postgres/db.js';
import { PgReportSource } from '../store/postgres/reports.js';
import { answerJob, clocks, ReportThread, type WorkerReply, type WorkerRequest } from './runner.js';

const ROLE = 'visittag-pg-reports';
/** Sent by close(): end the pool (its connections closed cleanly, not cut) and the thread. */
const STOP = { stop: ROLE } as const;

export interface PgReportWorkerOptions {
  /** postgres://… of the shared database (the worker opens its own pool). */
  url: string;
  /** The worker's pool size (default 2: a report runs its reads one after another). */
  max?: number;
}

interface PgWorkerData {
  role: typeof ROLE;
  url: string;
  max: number;
  applicationName: string;
}

/** Reports in one worker thread on its own pool to PostgreSQL (started on the first report). */
export class PgReportWorker extends ReportThread {
  constructor(o: PgReportWorkerOptions) {
    const env = { ...process.env };
    delete env.VISITTAG_GATEWAY_MAIN; // a bundle's CLI must not start in the worker
    super({
      url: import.meta.url,
      data: {
        role: ROLE,
        url: o.url,
        max: o.max ?? 2,
        applicationName: `visittag-reports-${process.pid}`,
      } satisfies PgWorkerData,
      env,
      stop: { message: STOP },
    });
  }
}

/** The worker's side: one report at a time in arrival order, each answered whole. */
function serve(d: PgWorkerData): void {
  const port = parentPort;
  if (port === null) return;
  const pool: PgPool = openPgPool({ url: d.url, max: d.max, applicationName: d.applicationName });
  const source = new PgReportSource(pool);
  const clockOf = clocks();
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (m: WorkerRequest | typeof STOP) => {
    if ('stop' in m) {
      // after the reports already asked for; then nothing keeps the thread alive (or close() terminates it)
      queue = queue.then(async () => {
        await pool.end().catch(() => undefined);
        port.close();
      });
      return;
    }
    const { id, job } = m;
    queue = queue.then(async () => {
      let reply: WorkerReply;
      try {
        reply = { id, response: await answerJob(source, job, clockOf) };
      } catch (e) {
        reply = { id, error: (e as Error).message };
      }
      port.postMessage(reply);
    });
  });
  port.postMessage({ ready: true } satisfies WorkerReply);
}

const data = workerData as Partial<PgWorkerData> | null;
if (!isMainThread && data?.role === ROLE) serve(data as PgWorkerData);
