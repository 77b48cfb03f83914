/**
 * The report worker thread (started by WorkerReportRunner, runner.ts): its own connection to the
 * gateway's SQLite file, opened through the store's report adapter (store/sqlite/reports/source.ts: it reads
 * the gateway's tables and writes only the report cells), the composition root of this thread;
 * one report at a time in arrival order, each answered whole (the exported page, CSV or XLSX), so the
 * gateway's thread only validates the query and sends the answer.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { answerJob, clocks, type WorkerReply, type WorkerRequest } from './runner.js';
import { SqliteReportSource } from '../store/sqlite/reports/source.js';

const port = parentPort;
if (port === null) throw new Error('worker.ts runs as a worker thread (WorkerReportRunner)');
const { path, cells } = workerData as { path: string; cells: boolean };
const source = SqliteReportSource.open(path, { cells });
const clockOf = clocks();

let queue: Promise<void> = Promise.resolve();
port.on('message', ({ id, job }: WorkerRequest) => {
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
