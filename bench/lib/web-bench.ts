/**
 * The web app's size rows (issue 13): a real gateway whose SQLite file holds N readers and M visits (written
 * straight into the tables, as years of taps would have left them), the built web app, real headless Chromium.
 * Two pages: the technician's readers page (every reader) and a coordinator's live day view (one area's day:
 * 200 clients × 4 planned visits, the ones already due started). For each: time from navigation to the first
 * rows on screen (median of 5 fresh loads, logged in), and the p50/p99 of the page's API query over 50 calls
 * with the same session (playwright's request context: the page's cookie).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Page } from 'playwright-core';
import { buildWeb } from '../../web/build.js';
import { tempDir } from '../../test/gateway/helpers.js';
import {
  adminApi,
  launch,
  localDate,
  localTime,
  logIn,
  newPage,
  seed,
  startCareGateway,
} from '../../test/web/pages-helpers.js';

export interface WebBenchResult {
  readers: number;
  visits: number;
  dbBytes: number;
  readersRenderMs: number[];
  readersApiMs: { p50: number; p99: number };
  readersAllApiMs: { p50: number; p99: number };
  dayRenderMs: number[];
  dayApiMs: { p50: number; p99: number };
  dayPlanned: number;
  dayStarted: number;
  seedMs: number;
}

const AREA_CLIENTS = 200;
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
};

/** Readers, clients and visits written straight into the gateway's tables (one transaction). */
function fill(
  dbFile: string,
  readers: number,
  visits: number,
  nowMs: number,
  today: { reader: number; startMs: number }[],
): void {
  const db = new Database(dbFile);
  db.pragma('journal_mode = WAL');
  const putReader = db.prepare(
    `INSERT INTO readers (reader_id, password_hash, client_ref, label, revoked_at, created_at) VALUES (?, ?, ?, NULL, NULL, ?)`,
  );
  const putVisit = db.prepare(
    `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms, start_seq,
       ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, updated_at_ms)
     VALUES (?, ?, ?, ?, ?, NULL, 'closed', ?, ?, ?, ?, 'tap', 'synced', '[]', ?)`,
  );
  const putToday = db.prepare(
    `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms, start_seq,
       ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, updated_at_ms)
     VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, 'synced', '[]', ?)`,
  );
  db.transaction(() => {
    for (let r = 0; r < readers; r++)
      putReader.run(`rb-${r}`, 'scrypt$bench$not-a-real-hash', `kb-${r}`, nowMs - 400 * 86_400_000);
    // M visits over the last year, round robin over the readers' homes, closed, two seqs each
    const span = 365 * 86_400_000;
    for (let v = 0; v < visits; v++) {
      const r = v % readers;
      const start = nowMs - 86_400_000 - Math.floor((v / visits) * span);
      const seq = 2 * Math.floor(v / readers) + 1;
      putVisit.run(
        `rb-${r}`,
        `vb-${v}`,
        `kb-${r}`,
        `c1_${(v % 997).toString(16).padStart(32, '0')}`,
        `sb-${v % 500}`,
        start,
        seq,
        start + 1_500_000,
        seq + 1,
        start,
      );
    }
    // The history predates the care plan and a running gateway would have matched it as it arrived: the
    // care cursor starts after it (catching up a year of visits at once is measured apart, bench/README.md).
    db.prepare(`INSERT OR REPLACE INTO care_meta (key, value) VALUES ('visit-cursor', ?)`).run(
      JSON.stringify({ updatedAtMs: nowMs - 86_400_000, key: '~/~' }),
    );
    // today's started visits in the coordinator's area (open if started in the last 25 minutes)
    today.forEach(({ reader, startMs }, k) => {
      const seq = 1_000_000 + 2 * k;
      const open = startMs > nowMs - 1_500_000;
      putToday.run(
        `rb-${reader}`,
        `vt-${k}`,
        `kb-${reader}`,
        `c1_${(k % 997).toString(16).padStart(32, '0')}`,
        'p-anna',
        open ? 'open' : 'closed',
        startMs,
        seq,
        open ? null : startMs + 1_500_000,
        open ? null : seq + 1,
        open ? null : 'tap',
        startMs,
      );
    });
  })();
  db.close();
}

/** Epoch ms of `date` at `minutes` past local midnight in the bench's time zone (Europe/Stockholm). */
function localMs(date: string, minutes: number): number {
  const guess = Date.parse(`${date}T00:00:00Z`) + minutes * 60_000;
  // the zone's offset at that instant, read back from its local rendering (twice: right across a DST change)
  let ms = guess;
  for (let i = 0; i < 2; i++) {
    const [d, t] = [localDate(ms), localTime(ms)];
    ms += guess - Date.parse(`${d}T${t}:00Z`);
  }
  return ms;
}

async function timeRender(page: Page, url: string, rows: string, n = 5): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    await page.goto('about:blank');
    const t0 = performance.now();
    await page.goto(url);
    await page.locator(rows).first().waitFor({ timeout: 60_000 });
    out.push(performance.now() - t0);
  }
  return out;
}

async function timeApi(page: Page, url: string, n = 50): Promise<{ p50: number; p99: number }> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await page.request.get(url);
    await res.body();
    if (!res.ok()) throw new Error(`GET ${url}: HTTP ${res.status()}`);
    xs.push(performance.now() - t0);
  }
  return { p50: quantile(xs, 0.5), p99: quantile(xs, 0.99) };
}

export async function benchWeb(readers: number, visits: number): Promise<WebBenchResult> {
  await buildWeb();
  const tmp = tempDir('vt-bench-web-');
  const t0 = performance.now();
  // phase times on stderr (the bench worker's log): where a slow set-up went
  const mark = (what: string) =>
    process.stderr.write(`[web-bench] +${((performance.now() - t0) / 1000).toFixed(1)} s ${what}\n`);
  // First start: the schema, users of every role, the registry; then the bulk rows with the gateway stopped.
  let gw = await startCareGateway(tmp.dir);
  mark('gateway started');
  await seed(gw);
  mark('seeded');
  const now = Date.now();
  const north = Array.from({ length: AREA_CLIENTS }, (_, i) => `kb-${i}`);
  await adminApi(gw, 'PUT', '/api/plan/registry', {
    clients: north.map((clientRef) => ({
      clientRef,
      areaId: 'north',
      teamId: 'north-a',
      providerId: 'kommunen',
      birthYear: 1940,
      decisionTypes: ['personal-care'],
      careContactStaffRef: 'p-anna',
      activeFrom: '2025-01-01',
    })),
  });
  // Today's plan for the area: four visits per client spread over the day; the ones already due have a visit.
  const today = localDate(now);
  const planned = north.flatMap((clientRef, i) =>
    [7 * 60 + 30, 11 * 60 + 45, 16 * 60 + 15, 20 * 60 + 30].map((min, k) => {
      const at = min + (i % 30);
      return {
        plannedVisitId: `pvb-${i}-${k}`,
        clientRef,
        date: today,
        start: `${String(Math.floor(at / 60)).padStart(2, '0')}:${String(at % 60).padStart(2, '0')}`,
        plannedMinutes: 25,
        staffCount: 1,
        staffRefs: ['p-anna'],
        startMs: localMs(today, at),
        reader: i,
      };
    }),
  );
  await gw.stop();
  mark('gateway stopped');
  // each due visit started two minutes after its planned time (open for its first 25 minutes)
  const due = planned
    .filter((p) => p.startMs + 120_000 <= now)
    .map((p) => ({ reader: p.reader, startMs: p.startMs + 120_000 }));
  fill(join(tmp.dir, 'gateway.db'), readers, visits, now, due);
  mark('rows written');
  gw = await startCareGateway(tmp.dir);
  mark('gateway restarted');
  // the event loop's longest stall while Chromium starts (the gateway shares this process)
  let last = performance.now();
  let stall = 0;
  const probe = setInterval(() => {
    const t = performance.now();
    stall = Math.max(stall, t - last - 100);
    last = t;
  }, 100);
  const browser = await launch();
  clearInterval(probe);
  mark(`chromium launched (longest event-loop stall ${Math.round(stall)} ms)`);
  try {
    await adminApi(gw, 'POST', '/api/plan/import', {
      areaId: 'north',
      fromDate: today,
      toDate: today,
      visits: planned.map(({ startMs: _s, reader: _r, ...v }) => v),
    });
    const seedMs = performance.now() - t0;
    mark('plan imported');

    const tech = await newPage(browser);
    await logIn(tech, gw.adminUrl, 'tekniker');
    const readersRenderMs = await timeRender(tech, `${gw.adminUrl}/#/readers`, 'main table tbody tr');
    // the page's own query (100 readers a page); the whole list (scripts, the CLI) measured beside it
    const readersApiMs = await timeApi(tech, `${gw.adminUrl}/api/readers?limit=100&offset=0`);
    const readersAllApiMs = await timeApi(tech, `${gw.adminUrl}/api/readers`, 10);
    await tech.context().close();

    const coord = await newPage(browser);
    await logIn(coord, gw.adminUrl, 'samordnare');
    const dayRenderMs = await timeRender(coord, `${gw.adminUrl}/#/live`, 'main table tbody tr');
    const dayApiMs = await timeApi(coord, `${gw.adminUrl}/api/day`);
    await coord.context().close();
    return {
      readers,
      visits,
      dbBytes: statSync(join(tmp.dir, 'gateway.db')).size,
      readersRenderMs,
      readersApiMs,
      readersAllApiMs,
      dayRenderMs,
      dayApiMs,
      dayPlanned: planned.length,
      dayStarted: due.length,
      seedMs,
    };
  } finally {
    await browser.close();
    await gw.stop();
    tmp.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [readers = 200, visits = 20_000] = process.argv.slice(2).map(Number);
  benchWeb(readers, visits).then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
