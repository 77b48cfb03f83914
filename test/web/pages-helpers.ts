/** Shared set-up of the page tests: a real gateway with a care plan, users of every role, Chromium, axe. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type Browser, chromium, type Page } from 'playwright-core';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { ADMIN_TOKEN, silent, testConfig, trackDataDir } from '../gateway/helpers.js';
import { browserDaytimeScript, pinDaytime } from '../support/daytime.js';

// the plans these tests import are "today" around the real clock: at night, run them at 09:00 local
pinDaytime();

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
export const PW = 'pages-test-password-12';
const TZ = 'Europe/Stockholm';

export const localDate = (ms: number): string =>
  new Intl.DateTimeFormat('sv-SE', {
    timeZone: TZ,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(ms);
export const localTime = (ms: number): string =>
  new Intl.DateTimeFormat('sv-SE', { timeZone: TZ, hour: '2-digit', minute: '2-digit' }).format(ms);

/** Refs a technician must never see: clients, staff and their cards. */
export const PERSONAL_REFS = ['k-north-1', 'k-north-2', 'k-south-1', 'p-anna', 'p-bo'];

export async function startCareGateway(dataDir: string): Promise<Gateway> {
  const gw = createGateway({
    config: testConfig(dataDir),
    logger: silent,
    care: { tickMs: 250 },
  });
  trackDataDir(gw, dataDir);
  await gw.start();
  return gw;
}

export async function adminApi(gw: Gateway, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${gw.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const data: unknown = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

/** Two areas, three clients (one with a reader), two staff; users of each role; coordinator in "north". */
export async function seed(gw: Gateway): Promise<void> {
  await adminApi(gw, 'PUT', '/api/plan/registry', {
    providers: [{ providerId: 'kommunen', name: 'Kommunen', kind: 'municipal' }],
    areas: [
      { areaId: 'north', name: 'Norr' },
      { areaId: 'south', name: 'Söder' },
    ],
    teams: [{ teamId: 'north-a', areaId: 'north', name: 'Norr A' }],
    clients: ['k-north-1', 'k-north-2', 'k-south-1'].map((clientRef) => ({
      clientRef,
      areaId: clientRef.includes('north') ? 'north' : 'south',
      teamId: clientRef.includes('north') ? 'north-a' : null,
      providerId: 'kommunen',
      birthYear: 1940,
      decisionTypes: ['personal-care'],
      careContactStaffRef: 'p-anna',
      activeFrom: '2026-01-01',
    })),
    staff: ['p-anna', 'p-bo'].map((staffRef) => ({
      staffRef,
      teamId: 'north-a',
      areaId: 'north',
      category: 'care',
      activeFrom: '2026-01-01',
    })),
  });
  for (const [name, role, areas] of [
    ['admin', 'admin', []],
    ['tekniker', 'technician', []],
    ['samordnare', 'coordinator', ['north']],
    ['chef', 'unit-manager', ['north']],
  ] as const) {
    await gw.access.service.createUser('test', {
      name,
      displayName: `Test ${name}`,
      role,
      areas: [...areas],
      password: PW,
    });
  }
  await gw.registry.addReader({
    readerId: 'r-hem-1',
    password: 'reader-password-0123456789-abcdef',
    clientRef: 'k-north-1',
  });
}

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
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
}

export async function newPage(browser: Browser): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, timezoneId: TZ });
  const shifted = browserDaytimeScript();
  if (shifted) await ctx.addInitScript(shifted);
  const page = await ctx.newPage();
  page.setDefaultTimeout(10_000);
  return page;
}

export async function logIn(page: Page, base: string, name: string): Promise<void> {
  await page.goto(`${base}/#/login`);
  await page.getByLabel('Användarnamn').fill(name);
  await page.getByLabel('Lösenord').fill(PW);
  await page.getByRole('button', { name: 'Logga in' }).click();
  await page.getByRole('button', { name: 'Logga ut' }).waitFor();
}

/** axe-core's serious and critical findings on the page as it is now. */
export async function axe(page: Page): Promise<string[]> {
  await page.evaluate(AXE_SOURCE);
  const found = await page.evaluate(async () => {
    const w = globalThis as unknown as {
      axe: {
        run: () => Promise<{
          violations: { id: string; impact: string | null; nodes: { target: unknown }[] }[];
        }>;
      };
    };
    return (await w.axe.run()).violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      where: JSON.stringify(v.nodes[0]?.target ?? ''),
    }));
  });
  return found
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}) at ${v.where}`);
}

/** Plans `minutesFromNow` offsets in area "north" (one visit per offset, client by index). */
export async function importPlan(
  gw: Gateway,
  offsets: number[],
  area = 'north',
): Promise<{ from: string; to: string }> {
  const now = Date.now();
  const starts = offsets.map((m) => now + m * 60_000);
  const dates = starts.map(localDate).sort();
  const from = dates[0] ?? localDate(now);
  const to = dates[dates.length - 1] ?? from;
  await adminApi(gw, 'POST', '/api/plan/import', {
    areaId: area,
    fromDate: from,
    toDate: to,
    visits: starts.map((ms, i) => ({
      plannedVisitId: `pv-${area}-${i}-${offsets[i]}`,
      clientRef: area === 'north' ? `k-north-${(i % 2) + 1}` : 'k-south-1',
      date: localDate(ms),
      start: localTime(ms),
      plannedMinutes: 30,
      staffCount: 1,
      staffRefs: ['p-anna'],
    })),
  });
  return { from, to };
}

/**
 * Keyboard only: from where focus is (the app moves it to <main> after each page change), presses Tab
 * up to `max` times while focus stays inside <main>; returns what got focus (tag + accessible name) and
 * whether each focused element showed a focus outline.
 */
export async function tabThrough(page: Page, max = 60): Promise<{ name: string; outlined: boolean }[]> {
  const seen: { name: string; outlined: boolean }[] = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    // evaluated in the page (a string: the test's TypeScript has no DOM types)
    const f = await page.evaluate<{ name: string; outlined: boolean } | null>(`(() => {
      const a = document.activeElement;
      if (!a || a === document.body || !a.closest('main')) return null;
      const cs = getComputedStyle(a);
      const label = a.id ? document.querySelector('label[for="' + a.id + '"]')?.textContent : null;
      return {
        name: a.tagName.toLowerCase() + ':' + (a.getAttribute('aria-label') ?? label ?? a.textContent ?? '').trim().slice(0, 60),
        outlined: cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 2,
      };
    })()`);
    if (!f) break;
    if (seen.some((s) => s.name === f.name) && seen[0]?.name === f.name) break;
    seen.push(f);
  }
  return seen;
}
