/**
 * Reports on PostgreSQL (facts read, figures computed in memory) against the same reports on SQLite (kept
 * cells) and on SQLite computed in memory (the reference), side by side on the same facts, alternating,
 * median of N. Run: `npx tsx test/scale/pg-reports-measure.ts [clients] [days] [runs]` (default 1000 28 3).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { municipality } from '../../bench/lib/report-data.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import { reportMigrations } from '../../gateway/src/store/sqlite/reports/migrations.js';
import { runCall, type ReportCall } from '../../gateway/src/reports/runner.js';
import type { ReportSource } from '../../gateway/src/reports/source.js';
import { SqliteReportSource } from '../../gateway/src/store/sqlite/reports/source.js';
import { ReportClock } from '../../gateway/src/reports/time.js';
import { migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgReportSource } from '../../gateway/src/store/postgres/reports.js';
import { careMigrations } from '../../gateway/src/store/sqlite/care-migrations.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { inMemory, writeCare, writeVisits } from '../reports/sqlite-fixture.js';
import { sqliteToPg } from '../reports/pg-copy.js';
import { startPgCluster } from '../support/pg-cluster.js';

const [clients, days, runs] = [1000, 28, 3].map((d, i) => Number(process.argv[2 + i] ?? d)) as [
  number,
  number,
  number,
];
const FROM = '2026-03-02';
const clock = new ReportClock();
const dir = mkdtempSync(join(tmpdir(), 'vt-pg-reports-measure-'));
const pgc = await startPgCluster();
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
  writeCare(db, m, m.visits, clock);
  const pool = openPgPool({ url: await pgc.createDatabase(), max: 4 });
  await migrate(pool, postgresMigrations);
  await sqliteToPg(db, pool);
  await pool.query('ANALYZE');
  const to = new Date(Date.parse(`${FROM}T00:00:00Z`) + (days - 1) * 86_400_000).toISOString().slice(0, 10);
  const calls: Array<[string, ReportCall]> = [
    [
      'executed (month, by area)',
      { kind: 'executed', params: { fromDate: FROM, toDate: to, period: 'month', groupBy: ['area'] } },
    ],
    ['continuity (14 days)', { kind: 'continuity', params: { fromDate: FROM } }],
  ];
  const sources: Array<[string, ReportSource]> = [
    ['SQLite, kept cells', new SqliteReportSource(db)],
    ['SQLite, in memory', inMemory(new SqliteReportSource(db))],
    ['PostgreSQL', new PgReportSource(pool)],
  ];
  const load0 = loadavg()[0]!;
  console.log(
    `${clients} clients, ${days} days, ${m.visits.length} visits, ${m.planned.length} planned; median of ${runs}`,
  );
  for (const [name, call] of calls) {
    const times = new Map<string, number[]>(sources.map(([s]) => [s, []]));
    const digests = new Map<string, string>();
    for (let r = 0; r < runs; r++) {
      for (const [s, src] of r % 2 ? [...sources].reverse() : sources) {
        const t = performance.now();
        const rep = await runCall(src, call, clock);
        times.get(s)!.push(performance.now() - t);
        digests.set(s, createHash('sha256').update(JSON.stringify(rep)).digest('hex').slice(0, 12));
      }
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const base = med(times.get('SQLite, kept cells')!);
    for (const [s] of sources) {
      const t = med(times.get(s)!);
      console.log(
        `${name}: ${s} ${(t / 1000).toFixed(2)} s (runs ${times
          .get(s)!
          .map((x) => (x / 1000).toFixed(2))
          .join(' / ')}; ${(t / base).toFixed(2)}x kept cells) digest ${digests.get(s)}`,
      );
    }
  }
  console.log(`load ${load0.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}`);
  db.close();
  await pool.end();
} finally {
  await pgc.destroy();
  rmSync(dir, { recursive: true, force: true });
}
