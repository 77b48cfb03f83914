import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startFakeBackend, type FakeBackend } from '../../simulator/fake-backend.js';
import { buildWeb } from '../../web/build.js';
import { ADMIN_TOKEN, waitUntil } from '../gateway/helpers.js';
import { BACKEND_SECRET, type Fixture, startFixture, UNKNOWN_A, UNKNOWN_B } from '../web-api/fixture.js';
import { axe, launch, logIn, newPage, PW } from './pages-helpers.js';

/** The correction form on a visit, in Chromium, against web13a's two-area fixture (real MQTT taps). */
let f: Fixture;
let browser: Browser;
// the simulator's fake planning backend (checks signatures, counts duplicates by idempotency key)
let backend: FakeBackend;

vi.setConfig({ testTimeout: 60_000 });

beforeAll(async () => {
  await buildWeb();
  backend = await startFakeBackend({ secret: BACKEND_SECRET });
  f = await startFixture({ backendUrl: backend.url });
  await f.gw.access.service.createUser('test', {
    name: 'samordnare',
    displayName: 'Samordnare A',
    role: 'coordinator',
    areas: ['area-a'],
    password: PW,
  });
  browser = await launch();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await f?.stop();
  await backend?.close();
});

describe('correcting a visit in the browser', () => {
  it('checks the form in Swedish, sends one correction with a reason, and it is in the audit log', async () => {
    const page = await newPage(browser);
    await logIn(page, f.gw.adminUrl, 'samordnare');
    await page.goto(`${f.gw.adminUrl}/#/visits`);
    // only the coordinator's own area: visit A, never area B's
    const link = page.getByRole('link', { name: /^Korrigera: / });
    await link.first().waitFor();
    const href = await page.locator(`a[href*="visit=${f.visitA}"]`).getAttribute('href');
    expect(href).toContain('reader=');
    expect(await page.locator(`a[href*="visit=${f.visitB}"]`).count()).toBe(0);
    await page.locator(`a[href*="visit=${f.visitA}"]`).focus();
    await page.keyboard.press('Enter');
    await page.locator('#corr-start').waitFor();
    expect(await axe(page)).toEqual([]);

    // sending unchanged and without a reason: both named, focus on the summary
    await page.getByRole('button', { name: 'Skicka' }).click();
    const summary = page.locator('.error-summary');
    await summary.waitFor();
    expect(await summary.locator('li').allTextContents()).toEqual([
      'Rätt starttid: Ändra starttid eller sluttid (inget är ändrat).',
      'Orsakskod: Gör ett val.',
    ]);
    expect(await axe(page)).toEqual([]);

    // move the start 7 minutes earlier, choose "wrong time", send twice (a double click)
    const old = await page.locator('#corr-start').inputValue();
    const d = new Date(`${old}:00`);
    d.setMinutes(d.getMinutes() - 7);
    const pad = (n: number): string => String(n).padStart(2, '0');
    const next = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
    await page.locator('#corr-start').fill(next);
    await page.locator('#corr-reason').selectOption('wrong-time');
    await page.locator('#corr-note').fill('kortet lästes sent');
    await page.getByRole('button', { name: 'Skicka' }).dblclick();
    await page.getByRole('status').filter({ hasText: 'Korrigeringen är sparad och loggad.' }).waitFor();

    const hist = (await f.call('GET', `/api/visits/${f.visitA}/corrections`, ADMIN_TOKEN)).body as {
      corrections: { actor: string; reasonCode: string; note: string }[];
    };
    expect(hist.corrections).toHaveLength(1);
    expect(hist.corrections[0]).toMatchObject({
      actor: 'user:samordnare',
      reasonCode: 'wrong-time',
      note: 'kortet lästes sent',
    });
    const audit = (await f.call('GET', '/api/audit?limit=200', ADMIN_TOKEN)).body as {
      entries: { actor: string; action: string; reason: string | null }[];
    };
    const mine = audit.entries.filter((e) => e.actor === 'user:samordnare' && /correct/i.test(e.action));
    expect(mine).toHaveLength(1);
    // the planning backend gets the correction once (a double click sent one), signed, with the person
    const corrected = () =>
      backend
        .received()
        .filter((e) => e.type === 'visit.corrected' && (e as { visitId?: string }).visitId === f.visitA);
    await waitUntil(() => corrected().length > 0, 15_000);
    await new Promise((r) => setTimeout(r, 500)); // a second delivery would land by now
    expect(corrected()).toHaveLength(1);
    expect(corrected()[0]).toMatchObject({ correctedBy: 'user:samordnare', reasonCode: 'wrong-time' });
    expect(backend.rejectedSignatures).toBe(0);
    expect(backend.duplicates).toBe(0);
    await page.context().close();
  });

  it('assigns an unknown card to a staff member of the area; another area is refused in words; logged', async () => {
    const page = await newPage(browser);
    await logIn(page, f.gw.adminUrl, 'samordnare');
    await page.goto(`${f.gw.adminUrl}/#/cards`);
    await page.getByRole('cell', { name: UNKNOWN_A, exact: true }).waitFor();
    // only cards tapped at the coordinator's clients
    expect(await page.getByRole('cell', { name: UNKNOWN_B, exact: true }).count()).toBe(0);
    expect(await axe(page)).toEqual([]);
    const box = page.getByRole('textbox', { name: `Bärs av (personal-id) ${UNKNOWN_A}` });
    const go = page.getByRole('button', { name: `Koppla ${UNKNOWN_A}` });
    await go.click();
    await page.getByRole('status').filter({ hasText: 'Skriv personal-id' }).waitFor();
    // a staff member of another area: refused, nothing stored
    await box.fill('st-b');
    await box.press('Enter');
    await page
      .getByRole('status')
      .filter({ hasText: 'ingen personal med det id:t i dina områden' })
      .waitFor();
    expect((await f.call('GET', `/api/cards/${UNKNOWN_A}`, ADMIN_TOKEN)).status).toBe(404);
    await box.fill('st-a');
    await box.press('Enter');
    await page
      .getByRole('status')
      .filter({ hasText: `Kopplat: ${UNKNOWN_A} → st-a` })
      .waitFor();
    const held = (await f.call('GET', `/api/cards/${UNKNOWN_A}`, ADMIN_TOKEN)).body as { staffRef: string };
    expect(held.staffRef).toBe('st-a');
    const audit = (await f.call('GET', '/api/audit?limit=200', ADMIN_TOKEN)).body as {
      entries: { actor: string; action: string; target: string }[];
    };
    expect(audit.entries.filter((e) => e.target.includes(UNKNOWN_A)).map((e) => [e.actor, e.action])).toEqual(
      [['user:samordnare', expect.stringMatching(/card/)]],
    );
    expect(await axe(page)).toEqual([]);
    await page.context().close();
  });
});
