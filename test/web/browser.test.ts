import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/index.js';
import { buildWeb } from '../../web/build.js';
import { topics } from '../../protocol/index.js';
import { connectReader, startGateway, tempDir, waitUntil } from '../gateway/helpers.js';

/** The web app in real headless Chromium (Debian's, installed by scripts/setup-system.sh) against a real gateway. */
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const PW = 'browser-test-password-1';

let gw: Gateway;
let browser: Browser;
let cleanup: () => void;

beforeAll(async () => {
  await buildWeb();
  const tmp = tempDir('vt-web-ui-');
  cleanup = tmp.cleanup;
  gw = await startGateway(tmp.dir);
  for (const role of ['admin', 'technician', 'coordinator'] as const) {
    await gw.access.service.createUser('test', {
      name: role,
      displayName: `Test ${role}`,
      role,
      password: PW,
    });
  }
  await gw.registry.addReader({
    readerId: 'r-ui-1',
    password: 'reader-password-0123456789-abcdef',
    clientRef: null,
  });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    // playwright-core gives each launch a fresh temporary profile (--user-data-dir)
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  cleanup?.();
});

async function newPage(): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  return ctx.newPage();
}

async function logIn(page: Page, name: string): Promise<void> {
  await page.goto(`${gw.adminUrl}/#/login`);
  await page.getByLabel('Användarnamn').fill(name);
  await page.getByLabel('Lösenord').fill(PW);
  await page.getByRole('button', { name: 'Logga in' }).click();
  await page.getByRole('button', { name: 'Logga ut' }).waitFor();
}

async function axe(page: Page): Promise<{ id: string; impact: string | null }[]> {
  // injected through the DevTools protocol: the app's CSP (script-src 'self') rightly refuses inline scripts
  await page.evaluate(AXE_SOURCE);
  const found = await page.evaluate(async () => {
    const w = globalThis as unknown as {
      axe: { run: () => Promise<{ violations: { id: string; impact: string | null }[] }> };
    };
    return (await w.axe.run()).violations.map((v) => ({ id: v.id, impact: v.impact }));
  });
  return found.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

describe('web app in headless Chromium', () => {
  it('logs in by keyboard (Swedish by default), shows the readers page, no serious axe findings', async () => {
    const page = await newPage();
    await page.goto(`${gw.adminUrl}/`);
    await page.getByLabel('Användarnamn').waitFor();
    expect(await page.evaluate('document.documentElement.lang')).toBe('sv');
    expect(await axe(page)).toEqual([]);
    // keyboard only: focus the name field by Tab, type, Tab to the password, Enter submits
    await page.getByLabel('Användarnamn').focus();
    await page.keyboard.type('technician');
    await page.keyboard.press('Tab');
    await page.keyboard.type(PW);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Logga ut' }).waitFor();
    await page.goto(`${gw.adminUrl}/#/readers`);
    await page.getByRole('cell', { name: 'r-ui-1' }).waitFor();
    // status in text, not colour alone
    expect(await page.getByRole('cell', { name: 'Frånkopplad' }).count()).toBe(1);
    expect(await axe(page)).toEqual([]);
    await page.context().close();
  });

  it('pages a fleet of readers 100 at a time, searches and filters at the gateway, by keyboard; axe clean', async () => {
    // 120 more readers (r-fleet-000…119), placed at clients a technician must not see
    for (let i = 0; i < 120; i++)
      await gw.registry.addReader({
        readerId: `r-fleet-${String(i).padStart(3, '0')}`,
        password: 'reader-password-0123456789-abcdef',
        clientRef: `kund-hemlig-${i}`,
      });
    const page = await newPage();
    await logIn(page, 'technician');
    await page.goto(`${gw.adminUrl}/#/readers`);
    await page.getByText('Visar 1–100 av 121').waitFor();
    expect(await page.locator('main table tbody tr').count()).toBe(100);
    expect(await axe(page)).toEqual([]);
    await page.getByRole('link', { name: 'Nästa sida' }).click();
    await page.getByText('Visar 101–121 av 121').waitFor();
    expect(await page.locator('main table tbody tr').count()).toBe(21);
    expect(await page.getByRole('link', { name: 'Nästa sida' }).count()).toBe(0);
    // search by keyboard: type, Enter; the query is in the address (a reload or a link keeps it)
    await page.getByRole('searchbox', { name: 'Sök läsare' }).focus();
    await page.keyboard.type('fleet-07');
    await page.keyboard.press('Enter');
    await page.getByText('Visar 1–10 av 10').waitFor();
    expect(await page.evaluate('location.hash')).toBe('#/readers?q=fleet-07');
    // a technician cannot find readers by the client they sit at
    await page.goto(`${gw.adminUrl}/#/readers?q=hemlig`);
    await page.getByText('Inga läsare matchar sökningen.').waitFor();
    await page.goto(`${gw.adminUrl}/#/readers?state=online`);
    await page.getByText('Inga läsare matchar sökningen.').waitFor();
    await page.goto(`${gw.adminUrl}/#/readers?state=offline&q=r-ui`);
    await page.getByRole('cell', { name: 'r-ui-1' }).waitFor();
    expect(await axe(page)).toEqual([]);
    // the API: paging and filters checked, unknown values refused with the field named
    const api = async (q: string) =>
      page.evaluate(async (u) => {
        const r = await fetch(u);
        return { status: r.status, body: (await r.json()) as { total?: number; error?: string } };
      }, `/api/readers${q}`);
    expect((await api('?limit=1')).body.total).toBe(121);
    const badState = await api('?state=sleeping');
    expect(badState.status).toBe(400);
    expect(JSON.stringify(badState.body)).toContain('state');
    expect((await api('?limit=0')).status).toBe(400);
    // no paging asked for: the whole list, as scripts read it
    const all = (
      await page.evaluate(async () => (await (await fetch('/api/readers')).json()) as { readers: unknown[] })
    ).readers;
    expect(all.length).toBe(121);
    await page.context().close();
  });

  it("a reader's page: its state and clock in text, identify reaches the reader, replace gives a code, revoke asks first; axe clean", async () => {
    await gw.registry.addReader({
      readerId: 'r-act-1',
      password: 'reader-password-0123456789-abcdef',
      clientRef: null,
    });
    const reader = await connectReader(gw.mqttPort ?? 0, 'r-act-1');
    const commands: string[] = [];
    let closed = false;
    reader.on('message', (topic, payload) => {
      if (topic === topics.commands('r-act-1')) commands.push(payload.toString('utf8'));
    });
    reader.on('close', () => (closed = true));
    await reader.subscribeAsync(topics.commands('r-act-1'), { qos: 1 });
    try {
      const page = await newPage();
      await logIn(page, 'technician');
      await page.goto(`${gw.adminUrl}/#/readers?q=r-act`);
      await page.getByRole('link', { name: 'r-act-1' }).click();
      await page.getByRole('heading', { name: 'r-act-1' }).waitFor();
      expect(await page.locator('dd', { hasText: 'Ansluten' }).count()).toBe(1);
      expect(await axe(page)).toEqual([]);
      // identify: the command reaches the reader over MQTT
      await page.getByRole('button', { name: 'Identifiera (blinka)' }).click();
      await page.getByRole('status').filter({ hasText: 'läsaren blinkar' }).waitFor();
      await waitUntil(() => commands.some((c) => c.includes('"identify"')), 10_000);
      // a replacement's one-time code, shown once on the page
      await page.getByRole('button', { name: 'Ersätt läsaren' }).click();
      await page.getByRole('status').filter({ hasText: 'Engångskod för den nya läsaren' }).waitFor();
      // revoke asks first; the confirmation button gets focus (Enter confirms by keyboard)
      await page.getByRole('button', { name: 'Återkalla läsaren' }).click();
      await page.getByRole('button', { name: 'Bekräfta återkallning' }).waitFor();
      expect(await page.evaluate('document.activeElement && document.activeElement.textContent')).toBe(
        'Bekräfta återkallning',
      );
      expect(closed).toBe(false);
      await page.keyboard.press('Enter');
      await page.getByRole('status').filter({ hasText: 'återkallad och bortkopplad' }).waitFor();
      await waitUntil(() => closed, 10_000);
      const after = await page.evaluate(
        async () => (await (await fetch('/api/readers/r-act-1')).json()) as { revoked: boolean },
      );
      expect(after.revoked).toBe(true);
      expect(await axe(page)).toEqual([]);
      await page.context().close();
    } finally {
      await reader.endAsync(true).catch(() => undefined);
    }
  });

  it('a technician cannot open visit data: not in the menu, refused on the page and at the API', async () => {
    const page = await newPage();
    await logIn(page, 'technician');
    expect(await page.getByRole('link', { name: 'Besök' }).count()).toBe(0);
    await page.goto(`${gw.adminUrl}/#/visits`);
    await page.getByText('Du har inte behörighet att se den här sidan.').waitFor();
    const status = await page.evaluate(async () => (await fetch('/api/visits')).status);
    expect(status).toBe(403);
    await page.context().close();
  });

  it('refuses a cross-site style request without the CSRF token; logout ends the session', async () => {
    const page = await newPage();
    await logIn(page, 'admin');
    const noCsrf = await page.evaluate(async () => {
      const r = await fetch('/api/tokens', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'evil', role: 'admin' }),
      });
      return r.status;
    });
    expect(noCsrf).toBe(403);
    await page.getByRole('button', { name: 'Logga ut' }).click();
    await page.getByLabel('Användarnamn').waitFor();
    expect(await page.evaluate(async () => (await fetch('/api/users')).status)).toBe(401);
    await page.context().close();
  });

  it('every page of each role passes axe with no serious or critical findings; English is available', async () => {
    const page = await newPage();
    await logIn(page, 'admin');
    const problems: string[] = [];
    for (const id of ['overview', 'readers', 'visits', 'cards', 'audit', 'users']) {
      await page.goto(`${gw.adminUrl}/#/${id}`);
      await page.locator('main h1').waitFor();
      await page.locator('main table, main p').first().waitFor();
      for (const v of await axe(page)) problems.push(`${id}: ${v.id} (${v.impact})`);
    }
    expect(problems).toEqual([]);
    await page.getByRole('button', { name: 'English' }).click();
    await page.getByRole('button', { name: 'Log out' }).waitFor();
    expect(await page.evaluate('document.documentElement.lang')).toBe('en');
    await page.context().close();
  });
});
