import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { careMigrations } from '../../gateway/src/store/sqlite/care-migrations.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import { applyCorrections } from '../../gateway/src/reports/memory-source.js';
import { reportMigrations } from '../../gateway/src/store/sqlite/reports/migrations.js';
import { answerJob, clocks, type ReportJob } from '../../gateway/src/reports/runner.js';
import { SqliteReportSource } from '../../gateway/src/store/sqlite/reports/source.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import { pgCorrectionMigrations } from '../../gateway/src/store/postgres/corrections-migrations.js';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { pgReportMigrations } from '../../gateway/src/store/postgres/reports.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { startFakeBackend, type FakeBackend } from '../../simulator/fake-backend.js';
import { ADMIN_TOKEN, tempDir, testConfig, waitUntil } from '../gateway/helpers.js';
import { buildFixture } from '../reports/fixture.js';
import { pgToSqlite, sqliteToPg } from '../reports/pg-copy.js';
import { writeCare, writeVisits } from '../reports/sqlite-fixture.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { bundleGateway, spawnGateway, type GatewayChild } from './pg-gateway-child.js';

/**
 * Reports and visit corrections served by two real gateway processes on one PostgreSQL database
 * (`store.engine: "postgres"`, issue 14). The fixture municipality (test/reports/fixture.ts: a plan,
 * double staffing, the DST week, withdrawn taps) is in the shared tables. A correction made through A's API
 * shows in the report B serves, and a tap withdrawn through B in A's; each correction's event reaches the
 * fake backend once by its key (both instances forward the outbox). Every report an instance serves (JSON
 * and the CSV export) is byte-identical to the report the SQLite gateway computes from the same facts: the
 * database's rows copied into a SQLite file after each step (same digest). The instances compute reports in
 * their report worker on its own pool (reports/pg-worker.ts, started from the bundle): its connections are
 * seen in pg_stat_activity under the instance's process id.
 */

const SECRET = 'backend-secret-0123456789abcdef';
const MONDAY = '2026-03-23';
const TO = '2026-04-05';
const SQLITE_STEPS = [...sqliteMigrations, ...careMigrations, ...correctionMigrations, ...reportMigrations];
const PG_STEPS = (() => {
  const have = new Set(postgresMigrations.map((m) => m.id));
  return [
    ...postgresMigrations,
    ...[...pgCorrectionMigrations, ...pgReportMigrations].filter((m) => !have.has(m.id)),
  ];
})();

/** The report calls compared: the HTTP query and the same job for the SQLite side. */
const CALLS: Array<{ path: string; job: ReportJob }> = (() => {
  const out = { format: 'json' as const, lang: 'sv' as const, offset: 0, limit: 500 };
  const base = { timeZone: 'Europe/Stockholm', scope: null };
  const exec = { fromDate: MONDAY, toDate: TO, period: 'week' as const, groupBy: ['area' as const] };
  return [
    {
      path: `/api/reports/executed?from=${MONDAY}&to=${TO}&period=week&by=area`,
      job: { kind: 'executed', params: exec, ...base, output: out, name: 'executed-vs-planned' },
    },
    {
      path: `/api/reports/executed?from=${MONDAY}&to=${TO}&period=week&by=area&format=csv`,
      job: {
        kind: 'executed',
        params: exec,
        ...base,
        output: { ...out, format: 'csv' },
        name: 'executed-vs-planned',
      },
    },
    {
      path: `/api/reports/continuity?from=${MONDAY}`,
      job: {
        kind: 'continuity',
        params: { fromDate: MONDAY, days: 14 },
        ...base,
        output: out,
        name: 'continuity',
      },
    },
    {
      path: `/api/reports/quality?from=${MONDAY}&to=${TO}`,
      job: {
        kind: 'quality',
        params: { fromDate: MONDAY, toDate: TO },
        ...base,
        output: out,
        name: 'data-quality',
      },
    },
  ];
})();

const digest = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 12);

describe('reports and corrections served by two gateway processes on PostgreSQL', () => {
  let pgc: PgCluster;
  let tmp: ReturnType<typeof tempDir>;
  let bundle: { file: string; cleanup: () => void };
  let backend: FakeBackend;
  let pool: PgPool | undefined;
  const children: GatewayChild[] = [];
  beforeAll(async () => {
    [pgc, bundle, backend] = await Promise.all([
      startPgCluster(),
      bundleGateway(),
      startFakeBackend({ secret: SECRET }),
    ]);
    tmp = tempDir('vt-pg-reports-');
  }, 120_000);
  afterAll(async () => {
    for (const c of children) {
      if (c.proc.exitCode === null) {
        c.proc.kill('SIGTERM');
        await c.exited;
      }
    }
    await pool?.end();
    await backend?.close();
    bundle?.cleanup();
    tmp?.cleanup();
    await pgc?.destroy();
  }, 120_000);

  it(
    'a correction on A shows in B’s report, a withdrawal on B in A’s; events once; every report equals SQLite’s for the same facts',
    { timeout: 300_000 },
    async () => {
      const started = Date.now();
      const url = await pgc.createDatabase();
      pool = openPgPool({ url, max: 2 });
      const db = pool;
      await migrate(db, PG_STEPS);
      // the fixture's facts in the shared database (as the fixture writers put them in a SQLite file)
      const clock = new ReportClock();
      const f = buildFixture(MONDAY);
      // the fixture's visit ids hold ':' (a time), which the API's ids do not allow: '.' instead;
      const id = (x: string) => x.replace(/:/g, '.');
      const visits = applyCorrections(f.visits, f.corrections).map((v) => ({
        ...v,
        visitId: id(v.visitId),
        groupId: v.groupId === null ? null : id(v.groupId),
        // and a pseudonymised card reference, as the gateway stores them (events carry it)
        cardRef: `c1_${createHash('md5').update(v.cardRef).digest('hex')}`,
      }));
      const matches = f.matches.map((m) => ({ ...m, executedKeys: m.executedKeys.map(id) }));
      const seed = openDatabase(join(tmp.dir, 'seed.db'), SQLITE_STEPS);
      writeVisits(seed, visits);
      writeCare(seed, { ...f, matches }, visits, clock);
      await sqliteToPg(seed, db);
      seed.close();

      const files = [0, 1].map((i) => {
        const cfg = testConfig(join(tmp.dir, `gw-${i}`), {
          store: { engine: 'postgres', url, poolMax: 3 },
          // the care plan's sweep re-matches a corrected visit at its next tick: short, so the test waits less
          care: { tickSeconds: 2 },
          backend: {
            url: backend.url,
            secret: SECRET,
            timeoutMs: 2000,
            batchMax: 10,
            backoff: { baseMs: 20, capMs: 200 },
          },
          logLevel: 'info',
        });
        const file = join(tmp.dir, `gw-${i}.json`);
        writeFileSync(file, JSON.stringify(cfg));
        return file;
      });
      children.push(...(await Promise.all(files.map((file) => spawnGateway(bundle.file, file)))));
      const [a, b] = children as [GatewayChild, GatewayChild];
      const call = async (c: GatewayChild, path: string, body?: unknown) => {
        const res = await fetch(`http://127.0.0.1:${c.adminPort}${path}`, {
          method: body === undefined ? 'GET' : 'POST',
          headers: {
            authorization: `Bearer ${ADMIN_TOKEN}`,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        return { status: res.status, text: await res.text() };
      };

      // The care plan's sweep (one instance, lease care-alerts) re-matches changed visits: wait until it has
      // seen every visit change, so the facts stand still while they are compared.
      const settled = () =>
        waitUntil(async () => {
          const r = await db.query<{ value: string | null; max: number }>(
            `SELECT (SELECT value FROM care_meta WHERE key = 'visit-cursor') AS value,
                    (SELECT max(updated_at_ms) FROM visits) AS max`,
          );
          const row = r.rows[0]!;
          return (
            row.value !== null && (JSON.parse(row.value) as { updatedAtMs: number }).updatedAtMs >= row.max
          );
        }, 120_000);

      /** Every report from this instance equals the SQLite report over a copy of the database's rows. */
      let copies = 0;
      const sameAsSqlite = async (c: GatewayChild): Promise<Record<string, string>> => {
        await settled();
        const file = openDatabase(join(tmp.dir, `copy-${copies++}.db`), SQLITE_STEPS);
        try {
          await pgToSqlite(db, file);
          const source = new SqliteReportSource(file);
          const clockOf = clocks();
          const out: Record<string, string> = {};
          for (const { path, job } of CALLS) {
            const got = await call(c, path);
            expect(got.status, path).toBe(200);
            const want = await answerJob(source, job, clockOf);
            const wantText = typeof want.body === 'string' ? want.body : JSON.stringify(want.body);
            const gotText = typeof want.body === 'string' ? got.text : JSON.stringify(JSON.parse(got.text));
            expect(digest(gotText), path).toBe(digest(wantText));
            out[path] = digest(gotText);
          }
          expect(source.lastExecutedFrom).toBe('kept cells'); // the SQLite side used its speed-up
          return out;
        } finally {
          file.close();
        }
      };
      /** The instance's report worker has its own connections (application_name visittag-reports-<pid>). */
      const workerOf = async (c: GatewayChild) =>
        (
          await db.query<{ n: number }>(
            'SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1',
            [`visittag-reports-${c.proc.pid}`],
          )
        ).rows[0]!.n;
      const qualityOf = async (c: GatewayChild) =>
        (
          JSON.parse((await call(c, `/api/reports/quality?from=${MONDAY}&to=${TO}`)).text) as {
            quality: { total: { corrected: number; withdrawn: number } };
          }
        ).quality.total;

      const before = await sameAsSqlite(b);
      expect(await workerOf(b)).toBeGreaterThan(0);
      const q0 = await qualityOf(b);
      expect(q0.withdrawn).toBe(2);

      // two closed visits ended by a tap, of known clients
      const picked = (
        await db.query<{ reader_id: string; visit_id: string; ended_at_ms: number }>(
          `SELECT reader_id, visit_id, ended_at_ms FROM visits v WHERE state = 'closed' AND end_reason = 'tap' AND visit_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]*$'
           AND client_ref IN (SELECT client_ref FROM care_clients)
           AND NOT EXISTS (SELECT 1 FROM visit_audit x WHERE x.reader_id = v.reader_id AND x.visit_id = v.visit_id)
           AND NOT EXISTS (SELECT 1 FROM visit_corrections x WHERE x.reader_id = v.reader_id AND x.visit_id = v.visit_id)
         ORDER BY started_at_ms, reader_id, visit_id LIMIT 2`,
        )
      ).rows;
      expect(picked).toHaveLength(2);
      const [v1, v2] = picked as [(typeof picked)[0], (typeof picked)[0]];

      // corrected through A (ended 10 minutes later), shown in B's report
      const corrected = await call(a, `/api/visits/${v1.visit_id}/corrections`, {
        readerId: v1.reader_id,
        endedAt: new Date(v1.ended_at_ms + 10 * 60_000).toISOString(),
        reasonCode: 'wrong-time',
        note: 'left later',
        requestId: 'pg-reports-0001',
      });
      expect(corrected.status, corrected.text).toBe(201);
      const c1 = (JSON.parse(corrected.text) as { correction: { correctionId: number } }).correction
        .correctionId;
      const afterCorrection = await sameAsSqlite(b);
      expect((await qualityOf(b)).corrected).toBe(q0.corrected + 1);
      expect(afterCorrection[CALLS[0]!.path]).not.toBe(before[CALLS[0]!.path]);

      // withdrawn through B, shown in A's report
      const withdrawn = await call(b, `/api/visits/${v2.visit_id}/withdraw`, {
        readerId: v2.reader_id,
        reasonCode: 'tap-by-mistake',
        requestId: 'pg-reports-0002',
      });
      expect(withdrawn.status, withdrawn.text).toBe(201);
      const c2 = (JSON.parse(withdrawn.text) as { correction: { correctionId: number } }).correction
        .correctionId;
      const afterWithdrawal = await sameAsSqlite(a);
      expect(await workerOf(a)).toBeGreaterThan(0);
      expect((await qualityOf(a)).withdrawn).toBe(3);
      expect(afterWithdrawal[CALLS[0]!.path]).not.toBe(afterCorrection[CALLS[0]!.path]);
      // a resent request changes nothing and queues nothing
      const again = await call(a, `/api/visits/${v1.visit_id}/corrections`, {
        readerId: v1.reader_id,
        endedAt: new Date(v1.ended_at_ms + 10 * 60_000).toISOString(),
        reasonCode: 'wrong-time',
        note: 'left later',
        requestId: 'pg-reports-0001',
      });
      expect(again.status).toBe(200);

      // each correction's event reached the backend once (both instances forward the outbox)
      const keys = [`vt1:corrected:${c1}`, `vt1:withdrawn:${c2}`];
      await waitUntil(
        () => keys.every((k) => backend.received().some((e) => e.idempotencyKey === k)),
        60_000,
      );
      await new Promise((r) => setTimeout(r, 2_000)); // a second delivery would come within this
      for (const k of keys) expect(backend.received().filter((e) => e.idempotencyKey === k)).toHaveLength(1);
      expect(backend.duplicates).toBe(0);
      const outbox = await db.query<{ n: number }>(
        `SELECT count(*) AS n FROM outbox WHERE idempotency_key = ANY($1::text[]) AND state = 'delivered'`,
        [keys],
      );
      expect(outbox.rows[0]!.n).toBe(2);
      // what the web app's correction pages read, answered on both instances
      for (const c of [a, b]) {
        for (const path of [
          '/api/corrections/reasons',
          '/api/periods/locks',
          '/api/flags?state=all',
          `/api/visits/${v1.visit_id}/corrections`,
        ]) {
          const r = await call(c, path);
          expect(r.status, path).toBe(200);
        }
        const list = JSON.parse((await call(c, `/api/visits/${v1.visit_id}/corrections`)).text) as {
          corrections: Array<{ correctionId: number; kind: string }>;
        };
        expect(list.corrections.map((x) => [x.correctionId, x.kind])).toEqual([[c1, 'times']]);
      }
      // the web app is mounted (its files are public; 503 only while it is not built)
      expect([200, 503]).toContain((await call(b, '/')).status);

      console.log(
        `pg-reports-instances: ${CALLS.length} reports x 3 steps equal to SQLite's (${Object.values(afterWithdrawal).join(' ')}), ` +
          `events once, ${((Date.now() - started) / 1000).toFixed(0)} s at load ${loadavg()[0]?.toFixed(1)}`,
      );
    },
  );
});
