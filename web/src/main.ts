import { api, ApiError, setCsrf } from './api.js';
import { badge, el, localDate, table, when } from './dom.js';
import { field, input, select, value } from './form.js';
import { t, toggleLang } from './i18n.js';
import { CORRECT_PAGE } from './pages/correct.js';
import { IMPORT_PAGE } from './pages/import.js';
import { LIVE_PAGE } from './pages/live.js';
import { MORE_PAGES } from './pages/more.js';
import { PLAN_PAGES } from './pages/plan.js';
import { READER_PAGE } from './pages/reader.js';
import { REPORT_PAGES } from './pages/reports.js';
import type { Page, PageCtx } from './pages/types.js';

interface Me {
  user: { name: string; displayName: string; role: string };
  csrf: string;
}

let me: Me | null = null;
const main = () => document.getElementById('main') as HTMLElement;

const Status = (ok: boolean, yes: string, no: string): HTMLElement =>
  el('span', { class: ok ? 'status-ok' : 'status-bad' }, ok ? yes : no);

const READERS_PER_PAGE = 100;

/**
 * Readers, a page at a time (a fleet of thousands: the gateway filters and pages, the page shows 100),
 * searchable by id, label or client, filtered by connection; the query lives in the hash so a link or a
 * reload keeps it.
 */
async function readersPage(ctx: PageCtx): Promise<Node> {
  const p = ctx.params;
  const offset = Math.max(0, Number(p.get('offset') ?? '0') || 0);
  const q = new URLSearchParams({ limit: String(READERS_PER_PAGE), offset: String(offset) });
  const search = p.get('q') ?? '';
  const state = p.get('state') ?? '';
  if (search) q.set('q', search);
  if (['online', 'offline', 'revoked'].includes(state)) q.set('state', state);
  const { readers, total } = await api<{
    readers: {
      readerId: string;
      connected: boolean;
      revoked: boolean;
      lastSeenMs: number | null;
      queueDepth: number | null;
      clockSynced: boolean | null;
      clockOffsetMs: number | null;
    }[];
    total: number;
  }>('GET', `/api/readers?${q.toString()}`);
  const form = el(
    'form',
    { class: 'filters', role: 'search', 'aria-label': t('readerSearch') },
    field(
      'readers-q',
      t('readerSearch'),
      input({ value: search, type: 'search', autocomplete: 'off' }),
      t('readerSearchHint'),
    ),
    field(
      'readers-state',
      t('readerState'),
      select(
        [
          ['', t('allReaders')],
          ['offline', t('offline')],
          ['online', t('online')],
          ['revoked', t('revokedReaders')],
        ],
        state,
      ),
    ),
    el('p', {}, el('button', { type: 'submit' }, t('show'))),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    const s = value(form, 'readers-q').trim();
    const st = value(form, 'readers-state');
    if (s) next.set('q', s);
    if (st) next.set('state', st);
    location.hash = `#/readers?${next.toString()}`;
  });
  const at = (o: number) => {
    const n = new URLSearchParams(p);
    n.set('offset', String(o));
    return `#/readers?${n.toString()}`;
  };
  const nav = el(
    'p',
    { class: 'pager' },
    el(
      'span',
      { role: 'status' },
      total === 0
        ? t('noReadersMatch')
        : `${t('showingReaders')} ${offset + 1}–${offset + readers.length} ${t('ofReaders')} ${total}`,
    ),
    offset > 0
      ? el(
          'span',
          {},
          ' · ',
          el('a', { href: at(Math.max(0, offset - READERS_PER_PAGE)) }, t('previousPage')),
        )
      : null,
    offset + readers.length < total
      ? el('span', {}, ' · ', el('a', { href: at(offset + READERS_PER_PAGE) }, t('nextPage')))
      : null,
  );
  return el(
    'div',
    {},
    form,
    nav,
    table(
      t('readers'),
      [t('reader'), t('state'), t('lastSeen'), t('queue'), t('clock')],
      readers.map((r) => [
        el('a', { href: `#/reader?id=${encodeURIComponent(r.readerId)}` }, r.readerId),
        r.revoked ? t('revokedReaders') : Status(r.connected, t('online'), t('offline')),
        when(r.lastSeenMs),
        String(r.queueDepth ?? '–'),
        r.clockSynced === null
          ? '–'
          : `${r.clockSynced ? t('clockSynced') : t('clockNotSynced')}${
              r.clockOffsetMs === null ? '' : `, ${(r.clockOffsetMs / 1000).toFixed(1)} s`
            }`,
      ]),
    ),
  );
}

interface VisitItem {
  readerId: string;
  visitId: string;
  staffRef: string;
  clientRef: string | null;
  startedAtMs: number;
  endedAtMs: number | null;
  /** Withdrawn as a mistake (the gateway marks each listed visit). */
  withdrawn?: boolean;
}

/** The correct and withdraw links of one visit (a withdrawn visit has none: it no longer counts). */
function visitActions(v: VisitItem): HTMLElement {
  const q = (extra: Record<string, string>) =>
    new URLSearchParams({ reader: v.readerId, visit: v.visitId, start: String(v.startedAtMs), ...extra });
  return el(
    'span',
    {},
    el(
      'a',
      {
        href: `#/correct?${q({ end: String(v.endedAtMs ?? '') }).toString()}`,
        'aria-label': `${t('correct')}: ${v.staffRef} ${when(v.startedAtMs)}`,
      },
      t('correct'),
    ),
    v.endedAtMs
      ? el(
          'span',
          {},
          ' · ',
          el(
            'a',
            {
              href: `#/withdraw?${q({}).toString()}`,
              'aria-label': `${t('withdraw')}: ${v.staffRef} ${when(v.startedAtMs)}`,
            },
            t('withdraw'),
          ),
        )
      : null,
  );
}

async function visitsPage(ctx: PageCtx): Promise<Node> {
  const state = ctx.params.get('state') === 'closed' ? 'closed' : 'open';
  const manager = ctx.role === 'unit-manager';
  const [{ visits }, locks] = await Promise.all([
    api<{ visits: VisitItem[] }>('GET', `/api/visits?state=${state === 'open' ? 'open' : 'recent'}`),
    // a unit manager changes visits only inside the locked (attested) months of their areas
    manager
      ? api<{ locks: { month: string }[] }>('GET', '/api/periods/locks').then((r) => r.locks)
      : Promise.resolve([]),
  ]);
  // 'recent' is every state, newest change first: the closed ones are those with an end
  const shown = state === 'open' ? visits : visits.filter((v) => v.endedAtMs !== null);
  const lockedMonths = new Set(locks.map((l) => l.month));
  const mayChange = (v: VisitItem): boolean =>
    !v.withdrawn &&
    (['admin', 'coordinator'].includes(ctx.role) ||
      (manager && lockedMonths.has(localDate(v.startedAtMs).slice(0, 7))));
  const withActions = ['admin', 'coordinator'].includes(ctx.role) || lockedMonths.size > 0;
  const other = state === 'open' ? 'closed' : 'open';
  return el(
    'div',
    {},
    el(
      'p',
      {},
      el('a', { href: `#/visits?state=${other}` }, other === 'open' ? t('openVisits') : t('closedVisits')),
    ),
    manager && lockedMonths.size > 0
      ? el('p', { class: 'hint' }, t('managerLockedHint'), ' ', el('a', { href: '#/add' }, t('addVisit')))
      : null,
    table(
      state === 'open' ? t('openVisits') : t('closedVisits'),
      [t('started'), t('ended'), t('staff'), t('client'), t('state'), ...(withActions ? [t('actions')] : [])],
      shown.map((v) => [
        when(v.startedAtMs),
        when(v.endedAtMs),
        v.staffRef,
        v.clientRef ?? '–',
        v.withdrawn
          ? badge('wait', t('stWithdrawn'))
          : v.endedAtMs === null
            ? badge('ok', t('stOpen'))
            : t('stOk'),
        ...(withActions ? [mayChange(v) ? visitActions(v) : '–'] : []),
      ]),
    ),
  );
}

/**
 * Unknown cards (tapped, held by no one in the registry): the coordinator names the staff member who carries
 * one, and the visits its taps started are attributed to them (the gateway re-attributes and logs it).
 */
async function cardsPage(): Promise<Node> {
  const { cards } = await api<{ cards: { cardRef: string; taps?: number; lastSeenMs?: number }[] }>(
    'GET',
    '/api/cards/unknown',
  );
  const result = el('p', { role: 'status', id: 'cards-result' });
  const assign = (cardRef: string): HTMLElement => {
    const id = `assign-${cardRef}`;
    const box = input({ id, autocomplete: 'off', 'aria-label': `${t('assignTo')} ${cardRef}` });
    const form = el(
      'form',
      { class: 'inline', novalidate: '' },
      box,
      ' ',
      el('button', { type: 'submit', 'aria-label': `${t('assign')} ${cardRef}` }, t('assign')),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const staffRef = box.value.trim();
      if (!staffRef) {
        result.className = 'status-bad';
        result.textContent = t('assignNeedsStaff');
        box.focus();
        return;
      }
      api('POST', `/api/cards/${encodeURIComponent(cardRef)}/assign`, { staffRef })
        .then(() => {
          result.className = 'status-ok';
          result.textContent = `${t('assigned')}: ${cardRef} → ${staffRef}`;
          form.replaceChildren(staffRef);
        })
        .catch((err: unknown) => {
          result.className = 'status-bad';
          const detail =
            err instanceof ApiError
              ? err.status === 404
                ? t('assignUnknownStaff')
                : ((err.body as { detail?: string } | undefined)?.detail ?? err.message)
              : String(err);
          result.textContent = `${t('actionFailed')}: ${detail}`;
          box.focus();
        });
    });
    return form;
  };
  return el(
    'div',
    {},
    el('p', { class: 'hint' }, t('assignHint')),
    result,
    table(
      t('cards'),
      [t('card'), t('taps'), t('seen'), t('assignTo')],
      cards.map((c) => [c.cardRef, String(c.taps ?? ''), when(c.lastSeenMs), assign(c.cardRef)]),
    ),
  );
}

async function auditPage(): Promise<Node> {
  const { entries } = await api<{
    entries: { atMs: number; actor: string; action: string; target: string; reason: string | null }[];
  }>('GET', '/api/audit?limit=200');
  return el(
    'div',
    {},
    el('p', {}, el('a', { href: '/api/audit/export' }, t('export'))),
    table(
      t('audit'),
      [t('time'), t('actor'), t('action'), t('target'), t('reason')],
      entries.map((e) => [when(e.atMs), e.actor, e.action, e.target, e.reason ?? '']),
    ),
  );
}

async function usersPage(): Promise<Node> {
  const { users } = await api<{
    users: { name: string; displayName: string; role: string; disabled: boolean }[];
  }>('GET', '/api/users');
  return table(
    t('users'),
    [t('name'), t('role'), t('state')],
    users.map((u) => [
      `${u.displayName} (${u.name})`,
      u.role,
      Status(!u.disabled, t('active'), t('disabled')),
    ]),
  );
}

async function overviewPage(): Promise<Node> {
  const parts: Node[] = [];
  const role = me?.user.role ?? '';
  if (['admin', 'technician'].includes(role)) {
    // counts only (a fleet of thousands): one reader per answer, the total is what is read
    const count = (state: string) =>
      api<{ total: number }>('GET', `/api/readers?state=${state}&limit=1`).then((r) => r.total);
    const [on, off] = await Promise.all([count('online'), count('offline')]);
    parts.push(
      el(
        'p',
        {},
        `${t('readers')}: ${on} ${t('online').toLowerCase()}, ${off} ${t('offline').toLowerCase()}`,
      ),
    );
    const o = await api<{ pending?: number; dead?: number }>('GET', '/api/outbox');
    parts.push(el('p', {}, `${t('outbox')}: ${t('pending')} ${o.pending ?? 0}, ${t('dead')} ${o.dead ?? 0}`));
  }
  if (['admin', 'coordinator', 'unit-manager'].includes(role)) {
    const { visits } = await api<{ visits: unknown[] }>('GET', '/api/visits?state=open');
    parts.push(el('p', {}, `${t('openVisits')}: ${visits.length}`));
  }
  if (['admin', 'coordinator'].includes(role)) {
    const { alerts } = await api<{ alerts: unknown[] }>('GET', '/api/plan/alerts?state=open').catch(() => ({
      alerts: [] as unknown[],
    }));
    parts.push(el('p', {}, el('a', { href: '#/alerts' }, `${t('planAlerts')}: ${alerts.length}`)));
  }
  return el('div', {}, ...parts);
}

const PAGES: Record<string, Page> = {
  overview: {
    key: 'overview',
    roles: ['admin', 'technician', 'coordinator', 'unit-manager'],
    render: overviewPage,
  },
  live: LIVE_PAGE,
  readers: { key: 'readers', roles: ['admin', 'technician'], render: readersPage },
  reader: READER_PAGE,
  visits: { key: 'visits', roles: ['admin', 'coordinator', 'unit-manager'], render: visitsPage },
  ...PLAN_PAGES,
  import: IMPORT_PAGE,
  ...REPORT_PAGES,
  correct: CORRECT_PAGE,
  ...MORE_PAGES,
  cards: { key: 'cards', roles: ['admin', 'coordinator'], render: cardsPage },
  audit: { key: 'audit', roles: ['admin'], render: auditPage },
  users: { key: 'users', roles: ['admin'], render: usersPage },
};

function nav(): void {
  const n = document.getElementById('nav') as HTMLElement;
  n.replaceChildren();
  const items: Node[] = [];
  if (me) {
    for (const [id, p] of Object.entries(PAGES)) {
      if (!p.hidden && (p.menu ?? p.roles).includes(me.user.role))
        items.push(el('li', {}, el('a', { href: `#/${id}` }, t(p.key))));
    }
    const out = el('button', { type: 'button' }, t('logout'));
    out.addEventListener('click', () => void logout());
    items.push(el('li', {}, out));
  }
  const lang = el(
    'button',
    { type: 'button', lang: t('language') === 'English' ? 'en' : 'sv' },
    t('language'),
  );
  lang.addEventListener('click', () => {
    toggleLang();
    void route();
  });
  items.push(el('li', {}, lang));
  n.append(el('ul', {}, ...items));
}

function loginPage(message?: string): Node {
  const form = el(
    'form',
    { novalidate: '' },
    el('h1', {}, t('login')),
    message ? el('p', { class: 'error', role: 'alert' }, message) : null,
    el('label', { for: 'name' }, t('name')),
    el('input', { id: 'name', name: 'name', autocomplete: 'username', required: '' }),
    el('label', { for: 'password' }, t('password')),
    el('input', {
      id: 'password',
      name: 'password',
      type: 'password',
      autocomplete: 'current-password',
      required: '',
    }),
    el('p', {}, el('button', { type: 'submit' }, t('login'))),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    api<Me>('POST', '/api/auth/login', {
      name: (form.querySelector('#name') as HTMLInputElement).value,
      password: (form.querySelector('#password') as HTMLInputElement).value,
    })
      .then((m) => {
        me = m;
        setCsrf(m.csrf);
        location.hash = m.user.role === 'care-staff' ? '#/mine' : '#/overview';
        return route();
      })
      .catch(() => show(loginPage(t('wrongLogin'))));
  });
  return form;
}

async function logout(): Promise<void> {
  await api('POST', '/api/auth/logout').catch(() => undefined);
  me = null;
  location.hash = '#/login';
  await route();
}

/** Stops what the page left running (live updates). */
let leaving: (() => void)[] = [];
function leave(): void {
  for (const fn of leaving) fn();
  leaving = [];
}

function show(node: Node, title?: string): void {
  nav();
  const m = main();
  m.replaceChildren(...(title ? [el('h1', {}, title)] : []), node);
  document.title = `${title ?? t('login')} – visittag`;
}

/** Each navigation gets a number; a page that finishes loading after the user moved on is dropped. */
let navigation = 0;

async function route(): Promise<void> {
  const mine = ++navigation;
  document.documentElement.lang = localStorage.getItem('lang') === 'en' ? 'en' : 'sv';
  if (!me) {
    try {
      me = await api<Me>('GET', '/api/auth/me');
      setCsrf(me.csrf);
    } catch {
      me = null;
    }
  }
  if (mine !== navigation) return;
  leave();
  const [id = '', qs = ''] = location.hash.replace(/^#\/?/, '').split('?');
  if (!me || id === 'login') return show(loginPage());
  const home = me.user.role === 'care-staff' ? 'mine' : 'overview';
  const page = PAGES[id || home] ?? PAGES[home];
  if (!page) return;
  if (!page.roles.includes(me.user.role))
    return show(el('p', { role: 'alert' }, t('forbidden')), t(page.key));
  show(el('p', {}, t('loading')), t(page.key));
  const stops: (() => void)[] = [];
  const ctx: PageCtx = {
    role: me.user.role,
    params: new URLSearchParams(qs),
    onLeave: (fn) => stops.push(fn),
  };
  try {
    const node = await page.render(ctx);
    if (mine !== navigation) {
      for (const fn of stops) fn();
      return;
    }
    leaving.push(...stops);
    show(node, t(page.key));
  } catch (err) {
    if (mine !== navigation) return;
    if (err instanceof ApiError && err.status === 401) {
      me = null;
      return show(loginPage());
    }
    const msg = err instanceof ApiError && err.status === 403 ? t('forbidden') : String(err);
    show(el('p', { class: 'error', role: 'alert' }, msg), t(page.key));
  }
  main().focus();
}

window.addEventListener('hashchange', () => void route());
void route();
