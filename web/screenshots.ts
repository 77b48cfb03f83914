/**
 * Screenshots of the main pages at 1280×800 into docs/screenshots/ (`npm run screenshots`): a real
 * gateway on loopback with demo data (the page tests' seed: two areas, a plan for today with a late, a
 * missed and a pending visit), real headless Chromium. Needs /usr/bin/chromium (scripts/setup-system.sh).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../test/gateway/helpers.js';
import {
  adminApi,
  importPlan,
  launch,
  logIn,
  newPage,
  PW,
  seed,
  startCareGateway,
} from '../test/web/pages-helpers.js';
import { buildWeb, WEB_DIR } from './build.js';

export const SHOTS_DIR = join(WEB_DIR, '..', 'docs', 'screenshots');

/** [file, user, hash route]: each role's main pages. */
const SHOTS: [string, string, string][] = [
  ['login', '', '#/login'],
  ['overview', 'admin', '#/overview'],
  ['live-day-view', 'samordnare', '#/live'],
  ['planned-visits', 'samordnare', '#/plan'],
  ['plan-alerts', 'samordnare', '#/alerts'],
  ['clients', 'samordnare', '#/clients'],
  ['plan-import', 'admin', '#/import'],
  ['report-executed', 'chef', '#/reports?kind=executed'],
  ['report-continuity', 'chef', '#/reports?kind=continuity'],
  // the empty state: a fortnight with no visits
  ['report-continuity-empty', 'chef', '#/reports?kind=continuity&from=2026-01-05'],
  ['add-visit', 'samordnare', '#/add'],
  // a visit added by hand and a tap withdrawn as a mistake: its state in words, no actions
  ['visits-withdrawn', 'samordnare', '#/visits?state=closed'],
  ['staff-flags', 'samordnare', '#/flags'],
  ['period-locks', 'chef', '#/periods'],
  ['my-registrations', 'personal', '#/mine'],
  ['readers', 'tekniker', '#/readers'],
  ['reader', 'tekniker', '#/reader?id=r-hem-1'],
  ['audit-log', 'admin', '#/audit'],
];

export async function takeScreenshots(outDir = SHOTS_DIR): Promise<string[]> {
  mkdirSync(outDir, { recursive: true });
  await buildWeb();
  const tmp = tempDir('vt-shots-');
  const gw = await startCareGateway(tmp.dir);
  const browser = await launch();
  const written: string[] = [];
  try {
    await seed(gw);
    // a care staff member (their own registrations page)
    await gw.access.service.createUser('screenshots', {
      name: 'personal',
      displayName: 'Anna (personal)',
      role: 'care-staff',
      staffRef: 'p-anna',
      password: PW,
    });
    await importPlan(gw, [-150, -30, -20, 15, 60, 90, 120]);
    // two visits added by hand, one of them then withdrawn (the visits list shows both states)
    const H = 3_600_000;
    const ids: string[] = [];
    for (const [clientRef, staffRef, ago] of [
      ['k-north-1', 'p-anna', 5 * H],
      ['k-north-2', 'p-bo', 4 * H],
    ] as const) {
      const r = (await adminApi(gw, 'POST', '/api/visits/manual', {
        clientRef,
        staffRef,
        startedAt: new Date(Date.now() - ago).toISOString(),
        endedAt: new Date(Date.now() - ago + 0.5 * H).toISOString(),
        reasonCode: 'forgot-card',
      })) as { visit: { visitId: string } };
      ids.push(r.visit.visitId);
    }
    await adminApi(gw, 'POST', `/api/visits/${ids[1] ?? ''}/withdraw`, {
      reasonCode: 'other',
      note: 'registrerat hos fel brukare',
    });
    await new Promise((r) => setTimeout(r, 1500)); // a few care ticks: alerts raised
    for (const [file, user, hash] of SHOTS) {
      const page = await newPage(browser);
      if (user) await logIn(page, gw.adminUrl, user);
      await page.goto(`${gw.adminUrl}/${hash}`);
      await page.locator('main h1').waitFor();
      await page.locator('main table, main form, main dl, main p:not([hidden])').first().waitFor();
      await page.waitForTimeout(300);
      const path = join(outDir, `${file}.png`);
      await page.screenshot({ path });
      written.push(path);
      await page.context().close();
    }
  } finally {
    await browser.close();
    await gw.stop();
    tmp.cleanup();
  }
  return written;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const p of await takeScreenshots()) console.log(p);
}
