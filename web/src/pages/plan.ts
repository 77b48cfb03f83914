/** Plan pages: clients, planned visits with their status, plan alerts with reason codes. */
import { api, ApiError } from '../api.js';
import { badge, el, hhmm, table, type Tone, today, when } from '../dom.js';
import { field, input, isDate, notice, select, showErrors, value, type FieldError } from '../form.js';
import { t, tk } from '../i18n.js';
import { alerts, type Area, matches, type PlanMatch, REASON_CODES, registry } from './care-data.js';
import { type Page, PLAN_ROLES, type PageCtx } from './types.js';

const TONE: Record<string, Tone> = {
  matched: 'ok',
  late: 'warn',
  missed: 'bad',
  understaffed: 'warn',
  unplanned: 'warn',
  pending: 'wait',
  'late-open': 'warn',
};
export const statusBadge = (status: string): HTMLElement => badge(TONE[status] ?? 'wait', tk('st', status));

/** A plan still pending past the late threshold (an open late alert) reads "late, not started". */
export function withLateAlerts(
  rows: PlanMatch[],
  open: { plannedVisitId: string; kind: string }[],
): PlanMatch[] {
  const late = new Set(open.filter((a) => a.kind === 'late').map((a) => a.plannedVisitId));
  return rows.map((m) =>
    m.status === 'pending' && late.has(m.plannedVisitId) ? { ...m, status: 'late-open' } : m,
  );
}

export function matchesTable(caption: string, rows: PlanMatch[], withDate: boolean): HTMLElement {
  if (rows.length === 0) return el('p', {}, t('noPlan'));
  return table(
    caption,
    [
      ...(withDate ? [t('date')] : []),
      t('planned'),
      t('client'),
      t('area'),
      t('status'),
      t('lateBy'),
      t('reasonCode'),
    ],
    rows.map((m) => [
      ...(withDate ? [m.localDate] : []),
      hhmm(m.startMs),
      m.clientRef,
      m.areaId,
      statusBadge(m.status),
      m.lateMinutes !== null && m.lateMinutes > 0 ? `${m.lateMinutes} ${t('minutes')}` : '–',
      m.reasonCode ? tk('rc', m.reasonCode) : '–',
    ]),
  );
}

export async function areaOptions(): Promise<Area[]> {
  return (await registry().catch(() => ({ areas: [] as Area[] }))).areas;
}

/**
 * A filter form (area + dates) that navigates to `#/<page>?...` on submit; checks the dates first and
 * names what is wrong in the user's language.
 */
export function filterForm(
  page: string,
  areas: Area[],
  ctx: PageCtx,
  dates: 'none' | 'one' | 'range',
): HTMLElement {
  const p = ctx.params;
  const from = p.get('from') ?? p.get('date') ?? today();
  const areaSel = select(
    [['', t('allAreas')], ...areas.map((a): [string, string] => [a.areaId, a.name])],
    p.get('area') ?? '',
  );
  const form = el(
    'form',
    { class: 'filters', novalidate: '', 'aria-label': t('show') },
    field(`${page}-area`, t('area'), areaSel),
    dates === 'none'
      ? null
      : dates === 'one'
        ? field(
            `${page}-date`,
            t('date'),
            input({ value: from, inputmode: 'numeric', autocomplete: 'off' }),
            'ÅÅÅÅ-MM-DD',
          )
        : el(
            'div',
            { class: 'row' },
            field(
              `${page}-from`,
              t('fromDate'),
              input({ value: from, inputmode: 'numeric', autocomplete: 'off' }),
            ),
            field(
              `${page}-to`,
              t('toDate'),
              input({ value: p.get('to') ?? from, inputmode: 'numeric', autocomplete: 'off' }),
            ),
          ),
    el('p', {}, el('button', { type: 'submit' }, t('show'))),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const errors: FieldError[] = [];
    const q = new URLSearchParams();
    const area = value(form, `${page}-area`);
    if (area) q.set('area', area);
    if (dates === 'one') {
      const d = value(form, `${page}-date`);
      if (!isDate(d)) errors.push({ id: `${page}-date`, message: t('badDate') });
      q.set('date', d);
    } else if (dates === 'range') {
      const f = value(form, `${page}-from`);
      const to = value(form, `${page}-to`);
      if (!isDate(f)) errors.push({ id: `${page}-from`, message: t('badDate') });
      if (!isDate(to)) errors.push({ id: `${page}-to`, message: t('badDate') });
      else if (isDate(f) && to < f) errors.push({ id: `${page}-to`, message: t('badRange') });
      q.set('from', f);
      q.set('to', to);
    }
    if (showErrors(form, errors)) location.hash = `#/${page}?${q.toString()}`;
  });
  return form;
}

async function clientsPage(ctx: PageCtx): Promise<Node> {
  const reg = await registry();
  const area = ctx.params.get('area') ?? '';
  const areaName = new Map(reg.areas.map((a) => [a.areaId, a.name]));
  const team = new Map(reg.teams.map((x) => [x.teamId, x.name]));
  const prov = new Map(reg.providers.map((x) => [x.providerId, x.name]));
  const clients = reg.clients.filter((c) => !area || c.areaId === area);
  return el(
    'div',
    {},
    filterForm('clients', reg.areas, ctx, 'none'),
    clients.length === 0
      ? el('p', {}, t('none'))
      : table(
          t('clients'),
          [
            t('client'),
            t('area'),
            t('team'),
            t('provider'),
            t('careContact'),
            t('palliative'),
            t('activeFrom'),
          ],
          clients.map((c) => [
            c.clientRef,
            areaName.get(c.areaId) ?? c.areaId,
            c.teamId ? (team.get(c.teamId) ?? c.teamId) : '–',
            prov.get(c.providerId) ?? c.providerId,
            c.careContactStaffRef ?? '–',
            c.palliative ? t('yes') : t('no'),
            c.activeTo ? `${c.activeFrom} – ${c.activeTo}` : c.activeFrom,
          ]),
        ),
  );
}

async function planPage(ctx: PageCtx): Promise<Node> {
  const from = ctx.params.get('from') ?? today();
  const to = ctx.params.get('to') ?? from;
  const area = ctx.params.get('area') ?? '';
  const [areas, rows, open] = await Promise.all([
    areaOptions(),
    matches(from, to, area),
    alerts('open', area),
  ]);
  return el(
    'div',
    {},
    filterForm('plan', areas, ctx, 'range'),
    matchesTable(`${t('plan')} ${from}${to !== from ? ` – ${to}` : ''}`, withLateAlerts(rows, open), true),
  );
}

/** Open plan alerts; a coordinator gives a reason code (which clears a missed alert) by keyboard. */
async function alertsPage(ctx: PageCtx): Promise<Node> {
  const area = ctx.params.get('area') ?? '';
  const listBox = el('div', { class: 'alerts-list' });
  const region = el('div', { id: 'reason-region' });
  const fill = async (): Promise<void> => {
    const list = await alerts('open', area);
    const rows = list.map((a) => {
      const label = `${a.clientRef} (${tk('al', a.kind)})`;
      const b = el(
        'button',
        { type: 'button', 'aria-label': `${t('reasonCode')}: ${label}` },
        t('reasonCode'),
      );
      b.addEventListener('click', () => openForm(a.plannedVisitId, label));
      return [
        badge(a.kind === 'missed' ? 'bad' : 'warn', tk('al', a.kind)),
        a.clientRef,
        a.areaId,
        when(a.raisedAtMs),
        b,
      ];
    });
    listBox.replaceChildren(
      rows.length === 0
        ? el('p', {}, t('none'))
        : table(t('planAlerts'), [t('kind'), t('client'), t('area'), t('raised'), t('actions')], rows),
    );
  };
  const openForm = (plannedVisitId: string, label: string): void => {
    const reasonSel = select([
      ['', t('chooseReason')],
      ...REASON_CODES.map((c): [string, string] => [c, tk('rc', c)]),
    ]);
    const form = el(
      'form',
      { novalidate: '', 'aria-labelledby': 'reason-h' },
      el('h2', { id: 'reason-h' }, `${t('reasonCode')}: ${label}`),
      field('reason-code', t('reasonCode'), reasonSel),
      field('reason-note', t('note'), input({ maxlength: '500' })),
      el('p', {}, el('button', { type: 'submit' }, t('save'))),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const code = value(form, 'reason-code');
      if (!showErrors(form, code ? [] : [{ id: 'reason-code', message: t('chooseOne') }])) return;
      api('POST', `/api/plan/visits/${encodeURIComponent(plannedVisitId)}/reason`, {
        reasonCode: code,
        note: value(form, 'reason-note'),
      })
        .then(async () => {
          const done = notice(`${t('saved')} ${label}: ${tk('rc', code)}`);
          done.tabIndex = -1;
          region.replaceChildren(done);
          await fill();
          done.focus();
        })
        .catch((err: unknown) => {
          form.querySelector('.server-error')?.remove();
          form.append(serverError(err));
        });
    });
    region.replaceChildren(form);
    (form.querySelector('#reason-code') as HTMLElement).focus();
  };
  const [areas] = await Promise.all([areaOptions(), fill()]);
  return el('div', {}, filterForm('alerts', areas, ctx, 'none'), listBox, region);
}

/** The server's refusal, said as such (its message names the field and the fix). */
export const serverError = (err: unknown): HTMLElement =>
  el(
    'p',
    { class: 'error server-error', role: 'alert' },
    `${t('serverRefused')} ${err instanceof ApiError ? err.message : String(err)}`,
  );

export const PLAN_PAGES: Record<string, Page> = {
  plan: { key: 'plan', roles: PLAN_ROLES, render: planPage },
  alerts: { key: 'planAlerts', roles: PLAN_ROLES, render: alertsPage },
  clients: { key: 'clients', roles: PLAN_ROLES, render: clientsPage },
};
