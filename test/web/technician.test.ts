import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Gateway } from '../../gateway/index.js';
import { buildWeb } from '../../web/build.js';
import { tempDir } from '../gateway/helpers.js';
import {
  importPlan,
  launch,
  logIn,
  newPage,
  PERSONAL_REFS,
  seed,
  startCareGateway,
} from './pages-helpers.js';

/** Technicians see readers, never who visited whom: checked in the pages AND in every API answer they fetch. */
let gw: Gateway;
let browser: Browser;
let cleanup: () => void;

vi.setConfig({ testTimeout: 60_000 });

beforeAll(async () => {
  await buildWeb();
  const tmp = tempDir('vt-web-tech-');
  cleanup = tmp.cleanup;
  gw = await startCareGateway(tmp.dir);
  await seed(gw);
  await importPlan(gw, [-30, 60]);
  browser = await launch();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  cleanup?.();
});

describe('a technician', () => {
  it("sees readers, and neither the pages nor any API answer they fetch holds a client's or staff's ref", async () => {
    const page = await newPage(browser);
    const bodies: { url: string; text: string }[] = [];
    page.on('response', (r) => {
      if (r.url().includes('/api/'))
        void r.text().then(
          (text) => bodies.push({ url: r.url(), text }),
          () => undefined,
        );
    });
    await logIn(page, gw.adminUrl, 'tekniker');
    const menu = await page.locator('nav a').allTextContents();
    expect(menu).toEqual(['Översikt', 'Läsare']);
    for (const id of ['overview', 'readers']) {
      await page.goto(`${gw.adminUrl}/#/${id}`);
      await page.locator('main h1').waitFor();
      await page.locator('main table, main p').first().waitFor();
    }
    await page.getByRole('cell', { name: 'r-hem-1' }).waitFor();
    // pages of other roles are refused in the page and at the API
    for (const id of ['live', 'plan', 'alerts', 'clients', 'import', 'visits', 'correct']) {
      await page.goto(`${gw.adminUrl}/#/${id}`);
      await page.getByText('Du har inte behörighet att se den här sidan.').waitFor();
    }
    const statuses = await page.evaluate(async () =>
      Promise.all(
        [
          '/api/plan/registry',
          '/api/plan/matches?from=2026-01-01',
          '/api/plan/alerts',
          '/api/visits',
          '/api/day',
        ].map(async (p) => (await fetch(p)).status),
      ),
    );
    expect(statuses.every((s) => s === 403 || s === 404)).toBe(true);
    await page.waitForTimeout(300);
    const html = await page.content();
    const leaks = [
      ...PERSONAL_REFS.filter((r) => html.includes(r)).map((r) => `page: ${r}`),
      ...bodies.flatMap((b) => PERSONAL_REFS.filter((r) => b.text.includes(r)).map((r) => `${b.url}: ${r}`)),
    ];
    expect(bodies.length).toBeGreaterThan(3);
    expect(leaks).toEqual([]);
    await page.context().close();
  });
});
