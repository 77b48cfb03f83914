import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Gateway } from '../../gateway/index.js';
import { buildWeb } from '../../web/build.js';
import { tempDir } from '../gateway/helpers.js';
import {
  adminApi,
  axe,
  importPlan,
  launch,
  logIn,
  newPage,
  seed,
  startCareGateway,
  tabThrough,
} from './pages-helpers.js';

/** The plan, import, live and correction pages in real headless Chromium against a real gateway. */
let gw: Gateway;
let browser: Browser;
let cleanup: () => void;
let range: { from: string; to: string };

async function waitFor<T>(
  fn: () => Promise<T | null | undefined | false>,
  what: string,
  ms = 15_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

vi.setConfig({ testTimeout: 60_000 });

beforeAll(async () => {
  await buildWeb();
  const tmp = tempDir('vt-web-pages-');
  cleanup = tmp.cleanup;
  gw = await startCareGateway(tmp.dir);
  await seed(gw);
  // late (30 min ago, not started), missed (150 min ago: window closed), pending (in an hour)
  range = await importPlan(gw, [-30, -150, 60]);
  await waitFor(async () => {
    const r = (await adminApi(gw, 'GET', '/api/plan/alerts?state=open')) as { alerts: unknown[] };
    return r.alerts.length >= 2;
  }, 'the late and missed alerts');
  browser = await launch();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  cleanup?.();
});

describe('plan pages in headless Chromium', () => {
  it('planned visits show late, missed and pending in words; clients list; no serious axe findings', async () => {
    const page = await newPage(browser);
    await logIn(page, gw.adminUrl, 'samordnare');
    await page.goto(`${gw.adminUrl}/#/plan?from=${range.from}&to=${range.to}`);
    await page.getByRole('cell', { name: 'Sent, ej påbörjat', exact: true }).waitFor();
    expect(await page.getByRole('cell', { name: 'Missat', exact: true }).count()).toBe(1);
    expect(await page.getByRole('cell', { name: 'Väntar', exact: true }).count()).toBe(1);
    expect(await axe(page)).toEqual([]);
    await page.goto(`${gw.adminUrl}/#/clients`);
    await page.getByRole('cell', { name: 'k-north-2' }).waitFor();
    expect(await axe(page)).toEqual([]);
    await page.context().close();
  });

  it('an alert gets a reason code by keyboard alone; a missing choice is named in Swedish', async () => {
    const page = await newPage(browser);
    await logIn(page, gw.adminUrl, 'samordnare');
    await page.goto(`${gw.adminUrl}/#/alerts`);
    const button = page.getByRole('button', { name: /Orsakskod: k-north-\d \(Missat besök\)/ });
    await button.waitFor();
    expect(await axe(page)).toEqual([]);
    // keyboard: focus the row's button, Enter opens the form with focus on the reason select
    await button.focus();
    await page.keyboard.press('Enter');
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('reason-code');
    // save without a choice: the error summary takes focus and names the field
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    const summary = page.getByRole('alert').filter({ hasText: 'Formuläret har fel' });
    await summary.waitFor();
    expect(await summary.textContent()).toContain('Orsakskod: Gör ett val.');
    expect(await page.locator('#reason-code').getAttribute('aria-invalid')).toBe('true');
    expect(await axe(page)).toEqual([]);
    // choose "Brukaren på sjukhus" with the arrow keys and send with Enter
    await page.locator('#reason-code').focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    expect(await page.locator('#reason-code').inputValue()).toBe('client-in-hospital');
    await page.keyboard.press('Tab');
    await page.keyboard.type('inlagd sedan i går');
    await page.keyboard.press('Enter');
    await page.getByRole('status').filter({ hasText: 'Sparat.' }).waitFor();
    // the reason clears that visit's alerts; the other visit's late alert stays
    await waitFor(
      async () => (await page.getByRole('cell', { name: 'Missat besök' }).count()) === 0,
      'cleared',
    );
    expect(await page.getByRole('button', { name: /^Orsakskod: k-north-\d \(Sent besök\)$/ }).count()).toBe(
      1,
    );
    expect(await page.getByRole('button', { name: 'Orsakskod: k-north-1 (Sent besök)' }).count()).toBe(1);
    await page.context().close();
  });

  it('every new page can be walked by Tab alone with a visible focus outline', async () => {
    const page = await newPage(browser);
    await logIn(page, gw.adminUrl, 'samordnare');
    for (const id of ['plan', 'alerts', 'clients']) {
      await page.goto(`${gw.adminUrl}/#/${id}`);
      await page.locator('main h1').waitFor();
      await page.locator('main form').first().waitFor();
      expect(await page.evaluate('document.activeElement.id'), id).toBe('main');
      const walk = await tabThrough(page);
      expect(
        walk.filter((w) => !w.outlined),
        id,
      ).toEqual([]);
      // the page's own controls are reached (filters / form fields and the submit button)
      expect(
        walk.some((w) => w.name.startsWith('button:Visa') || w.name.startsWith('button:Importera')),
        id,
      ).toBe(true);
    }
    await page.context().close();
  });
});

describe('plan import form', () => {
  it('names every missing field in Swedish, then each bad row by its line, then imports a good file', async () => {
    const page = await newPage(browser);
    // the admin imports any area (coordinators their own: test/web/more.test.ts)
    await logIn(page, gw.adminUrl, 'admin');
    await page.goto(`${gw.adminUrl}/#/import`);
    await page.getByRole('button', { name: 'Importera', exact: true }).click();
    const summary = page.locator('.error-summary');
    await summary.waitFor();
    const items = await summary.locator('li').allTextContents();
    expect(items).toEqual([
      'Område: Gör ett val.',
      'Från och med: Fyll i fältet.',
      'Till och med: Fyll i fältet.',
      'Planfil (CSV): Välj en CSV-fil.',
    ]);
    expect(await page.evaluate("document.activeElement.classList.contains('error-summary')")).toBe(true);
    // a link in the summary moves focus to its field (the hash, the router's, is left alone)
    await summary.getByRole('link', { name: /Från och med/ }).click();
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('imp-from');
    expect(await page.evaluate('location.hash')).toBe('#/import');
    expect(await axe(page)).toEqual([]);

    await page.locator('#imp-area').selectOption('north');
    await page.locator('#imp-from').fill('2026-03-29');
    await page.locator('#imp-to').fill('2026-03-28');
    await page.locator('#imp-file').setInputFiles({
      name: 'plan.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from('client_ref;date;start;planned_minutes\n'),
    });
    await page.getByRole('button', { name: 'Importera', exact: true }).click();
    // the summary from the first try is still on screen until the file has been read: wait for the new one
    await page.locator('.error-summary li', { hasText: 'får inte vara före' }).waitFor();
    expect(await page.locator('.error-summary li').allTextContents()).toEqual([
      'Till och med: "Till och med" får inte vara före "Från och med".',
      'Planfil (CSV): Filen har inga rader under rubrikraden.',
    ]);

    // a file the server refuses: the rows are named by their line in the file (comment line counted)
    await page.locator('#imp-to').fill('2026-03-29');
    const bad =
      '# export\nBrukare;Datum;Starttid;Planerad tid\nk-north-1;2026-03-29;07:30;20\nk-north-2;2026-03-29;25:00;20\n';
    await page
      .locator('#imp-file')
      .setInputFiles({ name: 'bad.csv', mimeType: 'text/csv', buffer: Buffer.from(bad) });
    await page.getByRole('button', { name: 'Importera', exact: true }).click();
    const rows = page.getByRole('alert').filter({ hasText: 'Inget importerades' });
    await rows.waitFor();
    expect(await rows.locator('li').allTextContents()).toEqual([
      expect.stringMatching(/^Rad 4: start 25:00/),
    ]);

    // Windows-1252 (Excel's Swedish CSV), decimal comma, checked for real this time
    const good = Buffer.from(
      'Brukare;Datum;Starttid;Planerad tid\nk-north-1;2026-03-29;07:30;22,5\nk-north-2;2026-03-29;08:00;30\n',
      'latin1',
    );
    await page.locator('#imp-file').setInputFiles({ name: 'good.csv', mimeType: 'text/csv', buffer: good });
    await page.getByLabel('Provkör bara (inget sparas)').uncheck();
    await page.getByRole('button', { name: 'Importera', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Importerat: 2 planerade besök.' }).waitFor();
    const versions = (await adminApi(gw, 'GET', '/api/plan/versions?area=north')) as {
      versions: { fromDate: string; visitCount: number; importedBy: string }[];
    };
    expect(versions.versions.find((v) => v.fromDate === '2026-03-29')).toMatchObject({
      visitCount: 2,
      importedBy: 'user:admin',
    });
    // English is available for the same messages
    await page.getByRole('button', { name: 'English' }).click();
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    await page.locator('.error-summary').waitFor();
    expect(await page.locator('.error-summary h2').textContent()).toBe(
      'The form has errors. Correct them and try again:',
    );
    await page.context().close();
  });
});

describe('live day view', () => {
  it('a visit turning late appears without a reload (Server-Sent Events), announced; axe clean', async () => {
    const page = await newPage(browser);
    await logIn(page, gw.adminUrl, 'samordnare');
    const day = range.to;
    await page.goto(`${gw.adminUrl}/#/live?date=${day}`);
    await page.getByText('Uppdateras direkt').waitFor();
    await page.getByRole('cell', { name: 'Missat', exact: true }).waitFor();
    expect(await axe(page)).toEqual([]);
    // a marker that a reload would lose
    await page.evaluate('window.__noReload = 1');
    const before = await page.locator('#day tbody tr').count();
    // the plan gains a visit 20 minutes ago, not started: it turns late at the gateway's next tick
    await importPlan(gw, [-30, -150, 60, -20]);
    await page.getByText(/1 nya larm: k-north-2 Sent besök/).waitFor({ state: 'attached' });
    expect(await page.getByRole('cell', { name: 'Nytt', exact: true }).count()).toBe(1);
    expect(await page.locator('#day tbody tr').count()).toBeGreaterThan(before);
    expect(await page.evaluate('window.__noReload')).toBe(1);
    // it came over the stream: the page never fell back to polling
    expect(await page.locator('#live-state').textContent()).toContain('Uppdateras direkt');
    expect(await axe(page)).toEqual([]);
    await page.context().close();
  });
});

describe('report pages', () => {
  it('a unit manager reads executed vs planned and continuity with charts and tables, and downloads CSV and XLSX', async () => {
    const page = await newPage(browser);
    await logIn(page, gw.adminUrl, 'chef');
    expect(await page.locator('nav a').allTextContents()).toEqual([
      'Översikt',
      'Besök',
      'Rapporter',
      'Perioder',
    ]);
    await page.goto(`${gw.adminUrl}/#/reports?kind=executed&from=${range.from}&to=${range.to}`);
    await page.getByRole('cell', { name: 'north', exact: true }).waitFor();
    expect(await page.getByRole('img', { name: /Utfört mot planerat/ }).count()).toBe(1);
    expect(await axe(page)).toEqual([]);
    // the downloads are the same report, with the session cookie
    const csvHref = await page.getByRole('link', { name: 'Ladda ner CSV' }).getAttribute('href');
    const xlsxHref = await page.getByRole('link', { name: 'Ladda ner XLSX (Excel)' }).getAttribute('href');
    const got = await page.evaluate(
      `Promise.all([${JSON.stringify(csvHref)}, ${JSON.stringify(xlsxHref)}].map(async (u) => {
        const r = await fetch(u);
        const b = new Uint8Array(await r.arrayBuffer());
        return { status: r.status, type: r.headers.get('content-type'), head: String.fromCharCode(...b.slice(0, 2)), text: new TextDecoder().decode(b.slice(0, 4000)) };
      }))`,
    );
    const [csv, xlsx] = got as { status: number; type: string; head: string; text: string }[];
    expect(csv?.status).toBe(200);
    expect(csv?.type).toContain('text/csv');
    expect(csv?.text).toContain('north');
    expect(csv?.text).not.toContain('south');
    expect(xlsx?.status).toBe(200);
    expect(xlsx?.head).toBe('PK'); // a zip: the XLSX container
    // continuity: a Monday is required (said in Swedish), the target line is drawn
    await page.locator('#rep-kind').selectOption('continuity');
    await page.locator('#rep-from').fill('2026-03-31');
    await page.getByRole('button', { name: 'Visa' }).click();
    expect(await page.locator('.error-summary li').allTextContents()).toEqual([
      'Från och med: Kontinuitet mäts från en måndag: välj en måndag.',
    ]);
    await page.locator('#rep-from').fill('2026-03-30');
    await page.getByRole('button', { name: 'Visa' }).click();
    await page.getByRole('heading', { name: /Kontinuitet 2026-03-30/ }).waitFor();
    expect(await page.locator('svg line.threshold').count()).toBe(1);
    // no visits in that fortnight here: the empty state says so
    await page.getByText('Inga besök hos dina brukare under de här 14 dagarna').waitFor();
    expect(await axe(page)).toEqual([]);
    await page.context().close();
  });
});
