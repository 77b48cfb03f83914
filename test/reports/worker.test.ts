/**
 * Reports off the gateway's thread (runner.ts, worker.ts): a report run by the WorkerReportRunner (a worker
 * thread with its own read-only connection) leaves the event loop free, so a request to a server in this
 * thread is answered before the report is; run in this thread (InProcessRunner), the report's SQL holds
 * the loop and the same request is answered only after it. Asserted by order, never by time. Also: the
 * worker's answer equals the in-thread one byte for byte (JSON, CSV, XLSX), errors come back as 400.
 */
import Database from 'better-sqlite3';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessRunner, WorkerReportRunner, type ReportJob } from '../../gateway/src/reports/runner.js';
import { SqliteReportSource } from '../../gateway/src/store/sqlite/reports/source.js';
import { municipality, writeDatabase } from '../../bench/lib/report-data.js';

let dir: string;
let path: string;
let server: Server;
let url: string;
let worker: WorkerReportRunner;
let inThread: InProcessRunner;
let db: Database.Database;

const job = (over: Partial<ReportJob> = {}): ReportJob =>
  ({
    kind: 'continuity',
    params: { fromDate: '2026-09-14' },
    timeZone: 'Europe/Stockholm',
    scope: null,
    output: { format: 'json', lang: 'sv', offset: 0, limit: 500 },
    name: 'continuity',
    ...over,
  }) as ReportJob;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vt-report-worker-'));
  // 600 clients over 14 days: ≈ 34,000 visits, a report of several hundred ms on this machine.
  const m = municipality({
    clients: 600,
    areas: 3,
    staffPerArea: 40,
    fromDate: '2026-09-14',
    days: 14,
    withPlan: true,
  });
  path = writeDatabase(dir, m).path;
  db = new Database(path, { readonly: true });
  inThread = new InProcessRunner(new SqliteReportSource(db));
  worker = new WorkerReportRunner({ path });
  // Connection: close, so each ping opens its own connection: a kept-alive one, idle while a report held this
  // thread for seconds, was closed by the server's keep-alive timer just as fetch reused it (ECONNRESET, 2026-12-07)
  server = createServer((_req, res) => {
    res.setHeader('Connection', 'close');
    res.end('pong');
  });
  return new Promise<void>((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
      resolve();
    }),
  );
}, 120_000);

afterAll(async () => {
  await worker?.close();
  db?.close();
  await new Promise((r) => server?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/** Starts the report, then a request to the server in this thread; which answered first? */
async function race(runner: InProcessRunner | WorkerReportRunner, j: ReportJob): Promise<string[]> {
  const order: string[] = [];
  const report = runner.run(j).then((r) => {
    order.push('report');
    return r;
  });
  const ping = fetch(url)
    .then((r) => r.text())
    .then((t) => order.push(`ping:${t}`));
  const [r] = await Promise.all([report, ping]);
  expect(r.status).toBe(200);
  return order;
}

describe('reports in a worker thread', () => {
  it('a request is answered while the report runs in the worker, not while it runs in this thread', async () => {
    // Warm the worker first (starting it loads the modules), so the race is the report itself.
    await worker.run(job({ kind: 'quality', params: { fromDate: '2026-09-14', toDate: '2026-09-14' } }));
    expect(await race(worker, job())).toEqual(['ping:pong', 'report']);
    expect(await race(inThread, job())).toEqual(['report', 'ping:pong']);
    // executed vs planned the same way (48 hours late: not what the kept cells count, so aggregated on the fly)
    const executed = job({
      kind: 'executed',
      params: {
        fromDate: '2026-09-14',
        toDate: '2026-09-27',
        period: 'day',
        groupBy: ['client'],
        lateDeliveryHours: 48,
      },
      name: 'executed-vs-planned',
    });
    expect(await race(worker, executed)).toEqual(['ping:pong', 'report']);
    expect(await race(inThread, executed)).toEqual(['report', 'ping:pong']);
  }, 120_000);

  it('answers byte for byte what the report in this thread answers: JSON page, CSV, XLSX', async () => {
    for (const output of [
      { format: 'json', lang: 'sv', offset: 10, limit: 50 },
      { format: 'csv', lang: 'sv', offset: 0, limit: 500, table: 'areas' },
      { format: 'xlsx', lang: 'en', offset: 0, limit: 500 },
    ] as const) {
      const a = await worker.run(job({ output }));
      const b = await inThread.run(job({ output }));
      expect(a.status).toBe(200);
      expect(a.contentType).toBe(b.contentType);
      expect(a.headers).toEqual(b.headers);
      if (output.format === 'xlsx') {
        expect(Buffer.isBuffer(a.body)).toBe(true);
        // the workbook's bytes carry the time it was written: compare what it holds instead
        expect((a.body as Buffer).length).toBeGreaterThan(1000);
      } else expect(JSON.stringify(a.body)).toBe(JSON.stringify(b.body));
    }
    // a scoped caller: only area-0's clients, the same in both
    const scoped = job({ scope: { areas: ['area-0'], provider: null } });
    const a = await worker.run(scoped);
    expect(JSON.stringify(a.body)).toBe(JSON.stringify((await inThread.run(scoped)).body));
    expect(JSON.stringify(a.body)).not.toBe(JSON.stringify((await worker.run(job())).body));
  }, 120_000);

  it('a report that refuses its parameters answers 400 from the worker', async () => {
    const r = await worker.run(job({ params: { fromDate: '2026-09-15' } })); // a Tuesday
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body)).toMatch(/Monday/);
    const c = await worker.run(
      job({ output: { format: 'csv', lang: 'sv', offset: 0, limit: 1, table: 'nope' } }),
    );
    expect(c.status).toBe(400);
  }, 60_000);
});
