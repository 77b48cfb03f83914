/**
 * Ad-hoc measurement (not a test): the care plan's matcher catching up on a reconnect storm's visits
 * (bench/README.md, "The care matcher in a storm"). A storm of 10,000 readers brings visits at 10,000 homes on
 * one day; the care tick then re-matches every client with a changed visit (`CarePlan.processVisitChanges`),
 * on the gateway's main thread, while the storm is still being served. Writes `clients` × `perClient` visits
 * on one day into a real gateway.db (`synchronous = FULL`, as the gateway opens it), then times the catch-up,
 * the longest stall of a 10 ms interval probe (what MQTT acks would have waited), and the WAL's commits.
 * `days` > 1 spreads each client's visits over that many days (a backlog: care switched on after months of
 * visits, or a restore); `limit` is `processVisitChanges`'s chunk.
 *   npx tsx test/scale/measure-care-catchup.ts [clients] [perClient] [days] [limit]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { CarePlan } from '../../gateway/src/care/service.js';
import { localToUtcMs } from '../../gateway/src/care/time.js';
import { careMigrations } from '../../gateway/src/store/sqlite/care-migrations.js';
import { createSqliteCareStore } from '../../gateway/src/store/sqlite/care.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { SqliteOutbox } from '../../gateway/src/store/sqlite/outbox.js';
import { manualClock } from '../care/helpers.js';
import { putVisitRow } from '../contracts/store-care.contract.js';

const [clients = 10_000, perClient = 5, days = 1, limit = 2_000] = process.argv.slice(2).map(Number);
const D = '2026-10-25';
const TZ = 'Europe/Stockholm';
const at = (h: number, m: number) =>
  localToUtcMs(D, `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`, TZ);

const dir = mkdtempSync(join(tmpdir(), 'vt-care-catchup-'));
try {
  const db = openDatabase(join(dir, 'gateway.db'), [...sqliteMigrations, ...careMigrations]);
  const outbox = new SqliteOutbox({ db });
  const store = createSqliteCareStore({ db, enqueue: (e, nowMs) => outbox.enqueue(e, nowMs) });
  const put = db.transaction(() => {
    let u = 0;
    for (let c = 0; c < clients; c++) {
      for (let v = 0; v < perClient; v++) {
        // one day: 07:xx, 09:xx, …; over `days` days: the same hours, one visit a day, going back in time
        const start =
          days > 1 ? at(7 + (v % 6) * 2, c % 60) - (v % days) * 86_400_000 : at(7 + v * 2, c % 60);
        putVisitRow((text, params) => db.prepare(text).run(...params), {
          readerId: `r${c}`,
          visitId: `v${v}`,
          clientRef: `k-${c}`,
          startedAtMs: start,
          endedAtMs: start + 25 * 60_000,
          updatedAtMs: ++u,
        });
      }
    }
  });
  put();
  // wall time fixed in the evening of the visits' day; monotonic time real, as the gateway's clock is (the
  // matcher sizes its batches by it)
  const plan = new CarePlan({
    store,
    clock: { ...manualClock(at(20, 0)), monotonic: () => performance.now() },
    logger: pino({ level: 'silent' }),
    config: {
      timeZone: TZ,
      alerts: { lateAfterMinutes: 15, missedAfterMinutes: 60, liveHorizonMinutes: 360 },
    },
  });
  const walFrames = () =>
    (db.pragma('wal_checkpoint(PASSIVE)', { simple: false }) as { log: number }[])[0]?.log ?? 0;
  db.pragma('wal_checkpoint(TRUNCATE)');
  let longest = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const t = performance.now();
    longest = Math.max(longest, t - last);
    last = t;
  }, 10);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const n = await plan.processVisitChanges(limit);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  clearInterval(probe);
  const frames = walFrames();
  const stats = db.prepare('SELECT COUNT(*) AS n FROM care_visit_matches').get() as { n: number };
  console.log(
    JSON.stringify({
      clients,
      perClient,
      days,
      limit,
      visitsMatched: n,
      storedMatches: stats.n,
      ms: Math.round(ms),
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      perClientMs: Number((ms / clients).toFixed(3)),
      longestStallMs: Math.round(longest),
      walFramesWritten: frames,
    }),
  );
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
