/**
 * The care plan's size figure (issue 11): a plan of N clients × 4 visits a day × D days imported (one
 * import per area of 20 clients, each its own plan version) and matched into a real gateway SQLite file,
 * then one area's next two weeks re-imported (a changed plan) and re-matched. The two-week area has its
 * executed visits in the gateway's visits table, so the re-import matches real visits. Runnable alone:
 * `npx tsx bench/rows/care-bench.ts 300 30` (clients, days).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { CarePlan } from '../../gateway/src/care/service.js';
import { careMigrations } from '../../gateway/src/care/sqlite/migrations.js';
import { createSqliteCareStore } from '../../gateway/src/care/sqlite/store.js';
import { addDays, localToUtcMs } from '../../gateway/src/care/time.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';

export interface CareBenchResult {
  clients: number;
  days: number;
  planned: number;
  importMs: number;
  reimportMs: number;
  reimportRows: number;
  executedVisits: number;
  dbBytes: number;
}

const FROM = '2025-06-01';
const TIMES = ['07:30', '11:45', '16:15', '20:30'];

export async function benchCarePlan(clients: number, days: number): Promise<CareBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'visittag-bench-care-'));
  try {
    const db = openDatabase(join(dir, 'gateway.db'), [...sqliteMigrations, ...careMigrations]);
    const last = addDays(FROM, days - 1);
    let now = localToUtcMs(last, '12:00');
    const clock = {
      now: () => now,
      monotonic: () => now,
      setTimeout: () => ({}) as never,
      clearTimeout: () => undefined,
    };
    const store = createSqliteCareStore({ db });
    const plan = new CarePlan({ store, clock, logger: pino({ level: 'silent' }) });
    const areas = Math.ceil(clients / 20);
    const clientRef = (i: number) => `k-${String(i).padStart(5, '0')}`;
    const areaOf = (i: number) => `area-${Math.floor(i / 20) + 1}`;
    const rows = (area: number, from: string, n: number, shift: number) => {
      const out: Array<Record<string, unknown>> = [];
      for (let d = 0; d < n; d++) {
        const date = addDays(from, d);
        for (let i = area * 20; i < Math.min(clients, area * 20 + 20); i++)
          TIMES.forEach((t, k) =>
            out.push({
              plannedVisitId: `pv-${date.replaceAll('-', '')}-${i}-${k}`,
              clientRef: clientRef(i),
              date,
              start: t,
              plannedMinutes: 20 + shift + k * 5,
            }),
          );
      }
      return out;
    };
    // Executed visits of area 1 in the re-import's two weeks (one per planned visit, a few minutes late).
    const reFrom = addDays(last, -13);
    const put = db.prepare(
      `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms, start_seq,
         ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, updated_at_ms)
       VALUES (?, ?, ?, ?, ?, NULL, 'closed', ?, ?, ?, ?, 'tap', 'synced', '[]', ?)`,
    );
    let executed = 0;
    db.transaction(() => {
      for (let d = 0; d < 14; d++) {
        const date = addDays(reFrom, d);
        for (let i = 0; i < Math.min(20, clients); i++)
          TIMES.forEach((t, k) => {
            const s = localToUtcMs(date, t) + ((i + k) % 9) * 60_000;
            executed++;
            put.run(
              `r-${i}`,
              `v-${executed}`,
              clientRef(i),
              `c1_${'0'.repeat(31)}${i % 10}`,
              `s-${i % 7}`,
              s,
              executed * 2,
              s + 1_200_000,
              executed * 2 + 1,
              s,
            );
          });
      }
    })();
    void areaOf;

    const t0 = performance.now();
    for (let a = 0; a < areas; a++) {
      const r = await plan.importPlan({
        areaId: `area-${a + 1}`,
        fromDate: FROM,
        toDate: last,
        dryRun: false,
        actor: 'bench',
        source: 'bench',
        rows: rows(a, FROM, days, 0),
      });
      if (!r.ok) throw new Error(`bench import failed: ${JSON.stringify(r.errors.slice(0, 3))}`);
    }
    const importMs = performance.now() - t0;

    now += 60_000;
    const again = rows(0, reFrom, 14, 5);
    const t1 = performance.now();
    const r = await plan.importPlan({
      areaId: 'area-1',
      fromDate: reFrom,
      toDate: last,
      dryRun: false,
      actor: 'bench',
      source: 'bench',
      rows: again,
    });
    const reimportMs = performance.now() - t1;
    if (!r.ok) throw new Error(`bench re-import failed: ${JSON.stringify(r.errors.slice(0, 3))}`);
    const planned = (db.prepare('SELECT COUNT(*) AS n FROM care_planned_visits').get() as { n: number }).n;
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    return {
      clients,
      days,
      planned,
      importMs,
      reimportMs,
      reimportRows: again.length,
      executedVisits: executed,
      dbBytes: statSync(join(dir, 'gateway.db')).size,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [clients = 300, days = 30] = process.argv.slice(2).map(Number);
  benchCarePlan(clients, days).then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
