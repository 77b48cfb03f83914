/**
 * Reports on PostgreSQL in the report worker (reports/pg-worker.ts `PgReportWorker`: a worker thread with its
 * own pool, started here from the TypeScript sources through tsx): its answers equal the answers of the same
 * jobs run in this thread over `PgReportSource`, byte for byte (JSON page, CSV; an XLSX arrives as a Buffer), for
 * every report kind, also for a scoped caller; a report that refuses its parameters answers 400 from the
 * worker; closed, it ends its pool and its thread on its stop message; and it reads through its own connections (pg_stat_activity, application_name
 * visittag-reports-<pid>), not this thread's pool. (That a report there leaves the event loop free is measured by
 * test/scale/pg-reports-stall.ts; that it runs from a bundle of gateway/main.ts, by pg-reports-instances.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { municipality } from '../../bench/lib/report-data.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import { PgReportWorker } from '../../gateway/src/reports/pg-worker.js';
import { reportMigrations } from '../../gateway/src/store/sqlite/reports/migrations.js';
import { InProcessRunner, type ReportJob } from '../../gateway/src/reports/runner.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgReportSource } from '../../gateway/src/store/postgres/reports.js';
import { careMigrations } from '../../gateway/src/store/sqlite/care-migrations.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { sqliteToPg } from './pg-copy.js';
import { writeCare, writeVisits } from './sqlite-fixture.js';

const FROM = '2026-09-14';
const TO = '2026-09-27';
let dir: string;
let pgc: PgCluster;
let pool: PgPool;
let worker: PgReportWorker;
let inThread: InProcessRunner;
let workerUrl: string;

const job = (over: Partial<ReportJob> = {}): ReportJob =>
  ({
    kind: 'continuity',
    params: { fromDate: FROM },
    timeZone: 'Europe/Stockholm',
    scope: null,
    output: { format: 'json', lang: 'sv', offset: 0, limit: 500 },
    name: 'continuity',
    ...over,
  }) as ReportJob;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vt-pg-report-worker-'));
  const m = municipality({
    clients: 60,
    areas: 3,
    staffPerArea: 6,
    fromDate: FROM,
    days: 14,
    withPlan: true,
  });
  const db = openDatabase(join(dir, 'gateway.db'), [
    ...sqliteMigrations,
    ...careMigrations,
    ...correctionMigrations,
    ...reportMigrations,
  ]);
  writeVisits(db, m.visits);
  writeCare(db, m, m.visits, new ReportClock());
  pgc = await startPgCluster();
  const url = await pgc.createDatabase();
  pool = openPgPool({ url, max: 2 });
  await migrate(pool, postgresMigrations);
  await sqliteToPg(db, pool);
  db.close();
  inThread = new InProcessRunner(new PgReportSource(pool));
  worker = new PgReportWorker({ url });
  workerUrl = url;
}, 120_000);

afterAll(async () => {
  await worker?.close();
  await pool?.end();
  await pgc?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe('reports on PostgreSQL in the report worker', () => {
  it('answers byte for byte what the same job answers in this thread: every kind, JSON, CSV, XLSX, scoped', async () => {
    const jobs: ReportJob[] = [
      job(),
      job({
        kind: 'executed',
        params: { fromDate: FROM, toDate: TO, period: 'week', groupBy: ['area'] },
        name: 'executed-vs-planned',
      }),
      job({ kind: 'monthly', params: { fromMonth: '2026-09', toMonth: '2026-09' }, name: 'monthly' }),
      job({ kind: 'staffing', params: { fromDate: FROM, toDate: TO }, name: 'staffing' }),
      job({ kind: 'quality', params: { fromDate: FROM, toDate: TO }, name: 'data-quality' }),
      job({ output: { format: 'json', lang: 'sv', offset: 10, limit: 50 } }),
      job({ output: { format: 'csv', lang: 'sv', offset: 0, limit: 500, table: 'areas' } }),
      job({ scope: { areas: ['area-0'], provider: null } }),
    ];
    for (const j of jobs) {
      const a = await worker.run(j);
      const b = await inThread.run(j);
      expect(a.status, j.kind).toBe(200);
      expect(a.contentType).toBe(b.contentType);
      expect(a.headers).toEqual(b.headers);
      expect(JSON.stringify(a.body), `${j.kind} ${JSON.stringify(j.output)}`).toBe(JSON.stringify(b.body));
    }
    // the scoped answer is not the whole one
    expect(JSON.stringify((await worker.run(jobs.at(-1)!)).body)).not.toBe(
      JSON.stringify((await worker.run(job())).body),
    );
    const x = await worker.run(job({ output: { format: 'xlsx', lang: 'en', offset: 0, limit: 500 } }));
    expect(x.status).toBe(200);
    expect(Buffer.isBuffer(x.body)).toBe(true); // the workbook's bytes carry the time it was written
    expect((x.body as Buffer).length).toBeGreaterThan(1000);
    // the worker read through its own pool
    const own = await pool.query<{ n: number }>(
      'SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1',
      [`visittag-reports-${process.pid}`],
    );
    expect(own.rows[0]!.n).toBeGreaterThan(0);
  }, 120_000);

  it('closed, it ends its pool and its thread on the stop message', async () => {
    const w = new PgReportWorker({ url: workerUrl });
    expect((await w.run(job())).status).toBe(200);
    await w.close();
    expect(w.ended).toBe('stopped'); // not terminated: the pool's connections were closed, not cut
    await expect(w.run(job())).rejects.toThrow(/closed/);
  }, 60_000);

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
