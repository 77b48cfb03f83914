/**
 * Live day view per area: today's planned visits with their status, late and missed highlighted in words
 * and symbols, open alerts on top; updated over Server-Sent Events (`GET /api/day/stream`), or every 10 s
 * by polling if the stream cannot be opened. New alerts are announced to screen readers (aria-live).
 */
import { api } from '../api.js';
import { badge, el, hhmm, table } from '../dom.js';
import { t, tk } from '../i18n.js';
import { filterForm, statusBadge } from './plan.js';
import type { Page, PageCtx } from './types.js';

export interface DayView {
  date: string;
  areas: { areaId: string; name: string }[];
  planned: {
    plannedVisitId: string;
    areaId: string;
    clientRef: string;
    plannedStart: string;
    staffCount: number;
    status: string;
    lateMinutes: number | null;
    /** Not started and past the late threshold (late, with or without an open alert). */
    overdue?: boolean;
  }[];
  alerts: { plannedVisitId: string; areaId: string; clientRef: string; kind: string; raisedAt: string }[];
  generatedAt: string;
}

const POLL_MS = 10_000;

function dayQuery(ctx: PageCtx): string {
  const q = new URLSearchParams();
  const date = ctx.params.get('date');
  const area = ctx.params.get('area');
  if (date) q.set('date', date);
  if (area) q.set('area', area);
  const s = q.toString();
  return s ? `?${s}` : '';
}

function summary(day: DayView): HTMLElement {
  const late = new Set(day.alerts.filter((a) => a.kind === 'late').map((a) => a.plannedVisitId));
  const status = (p: DayView['planned'][number]): string =>
    p.status === 'pending' && (p.overdue || late.has(p.plannedVisitId)) ? 'late' : p.status;
  const count = (s: string): number => day.planned.filter((p) => status(p) === s).length;
  const items: [string, number][] = [
    [t('plan'), day.planned.length],
    [tk('st', 'matched'), count('matched')],
    [tk('st', 'late'), count('late')],
    [tk('st', 'missed'), count('missed')],
    [tk('st', 'pending'), count('pending')],
  ];
  return el(
    'dl',
    { class: 'summary', 'aria-label': t('summary') },
    ...items.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]),
  );
}

function body(day: DayView, seen: Set<string>): HTMLElement {
  const startOf = new Map(day.planned.map((p) => [p.plannedVisitId, Date.parse(p.plannedStart)]));
  const late = new Set(day.alerts.filter((a) => a.kind === 'late').map((a) => a.plannedVisitId));
  const alertRows = day.alerts.map((a) => [
    badge(a.kind === 'missed' ? 'bad' : 'warn', tk('al', a.kind)),
    hhmm(startOf.get(a.plannedVisitId) ?? Date.parse(a.raisedAt)),
    a.clientRef,
    a.areaId,
    seen.has(`${a.plannedVisitId}/${a.kind}`) ? '' : el('strong', {}, t('newAlert')),
  ]);
  return el(
    'div',
    {},
    el('h2', {}, `${t('alerts')} (${day.alerts.length})`),
    alertRows.length === 0
      ? el('p', {}, t('none'))
      : table(t('alerts'), [t('kind'), t('planned'), t('client'), t('area'), t('newCol')], alertRows),
    el('h2', {}, `${t('plan')} ${day.date}`),
    summary(day),
    day.planned.length === 0
      ? el('p', {}, t('noPlan'))
      : table(
          `${t('plan')} ${day.date}`,
          [t('planned'), t('client'), t('area'), t('status'), t('lateBy'), t('staff')],
          day.planned.map((p) => [
            hhmm(Date.parse(p.plannedStart)),
            p.clientRef,
            p.areaId,
            statusBadge(
              p.status === 'pending' && (p.overdue || late.has(p.plannedVisitId)) ? 'late-open' : p.status,
            ),
            p.lateMinutes !== null && p.lateMinutes > 0 ? `${p.lateMinutes} ${t('minutes')}` : '–',
            String(p.staffCount),
          ]),
        ),
  );
}

async function livePage(ctx: PageCtx): Promise<Node> {
  const query = dayQuery(ctx);
  const first = await api<DayView>('GET', `/api/day${query}`);
  const box = el('div', { id: 'day' });
  const mode = el('span', {}, t('liveOn'));
  const stamp = el('span', {});
  const announce = el('p', { class: 'sr-only', 'aria-live': 'polite', id: 'live-announce' });
  const seen = new Set<string>();
  let firstRender = true;
  const show = (day: DayView): void => {
    const fresh = day.alerts.filter((a) => !seen.has(`${a.plannedVisitId}/${a.kind}`));
    box.replaceChildren(
      body(day, firstRender ? new Set(day.alerts.map((a) => `${a.plannedVisitId}/${a.kind}`)) : seen),
    );
    if (!firstRender && fresh.length > 0) {
      announce.textContent = `${fresh.length} ${t('newAlerts')}: ${fresh.map((a) => `${a.clientRef} ${tk('al', a.kind)}`).join(', ')}`;
    }
    for (const a of day.alerts) seen.add(`${a.plannedVisitId}/${a.kind}`);
    firstRender = false;
    stamp.textContent = `${t('updatedAt')} ${new Date(day.generatedAt).toLocaleTimeString(document.documentElement.lang)}`;
  };
  show(first);

  let timer: ReturnType<typeof setInterval> | null = null;
  const poll = (): void => {
    mode.textContent = t('livePolling');
    timer = setInterval(() => {
      api<DayView>('GET', `/api/day${query}`).then(show, () => undefined);
    }, POLL_MS);
  };
  let es: EventSource | null = null;
  if (typeof EventSource === 'function') {
    es = new EventSource(`/api/day/stream${query}`);
    es.addEventListener('day', (ev) => show(JSON.parse((ev as MessageEvent<string>).data) as DayView));
    es.addEventListener('error', () => {
      if (es && es.readyState === EventSource.CLOSED && timer === null) poll();
    });
  } else poll();
  ctx.onLeave(() => {
    es?.close();
    if (timer !== null) clearInterval(timer);
  });

  const areas = first.areas;
  return el(
    'div',
    {},
    filterForm('live', areas, ctx, 'one'),
    el('p', { class: 'muted', id: 'live-state' }, mode, ' · ', stamp),
    announce,
    box,
  );
}

export const LIVE_PAGE: Page = { key: 'live', roles: ['admin', 'coordinator'], render: livePage };
