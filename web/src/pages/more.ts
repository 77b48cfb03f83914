/**
 * The corrections a coordinator still needed and the pages around them: add a missing visit, mark a tap
 * as a mistake (withdraw), care staff's flags (coordinator), care staff's own registrations, and period
 * locks (unit manager). Backend: gateway/src/corrections (docs/webapp.md "Corrections").
 */
import { api, ApiError } from '../api.js';
import { el, hhmm, localDate, table, today, when } from '../dom.js';
import { field, input, notice, select, showErrors, value, type FieldError } from '../form.js';
import { lang, t, type Key } from '../i18n.js';
import type { Page, PageCtx } from './types.js';

interface Reason {
  code: string;
  sv: string;
  en: string;
  kinds: string[];
}
interface Lock {
  areaId: string;
  month: string;
  lockedBy: string;
  lockedAtMs: number;
  note: string | null;
}

function newRequestId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join(
    '',
  );
}

/**
 * The server's refusal in words: a locked period names who locked it and that a unit manager of the area
 * makes the change (or unlocks it); a unit manager outside a locked period is told it is the coordinator's.
 */
export function refusal(err: unknown): HTMLElement {
  const body =
    err instanceof ApiError ? (err.body as { detail?: string; lock?: Lock } | undefined) : undefined;
  const l = body?.lock;
  const en = lang() === 'en';
  const text =
    err instanceof ApiError && err.status === 423 && l
      ? en
        ? `The period ${l.month} of area ${l.areaId} is locked (attested) by ${l.lockedBy} on ${when(l.lockedAtMs)}. ` +
          `A unit manager of area ${l.areaId} must make this change, or unlock the period under "Periods" (with a reason).`
        : `Perioden ${l.month} för område ${l.areaId} är låst (attesterad) av ${l.lockedBy} ${when(l.lockedAtMs)}. ` +
          `Ändringen måste göras av en enhetschef för område ${l.areaId}, eller så låser en enhetschef upp perioden under "Perioder" (med en orsak).`
      : err instanceof ApiError && err.status === 403 && /only inside a locked/.test(body?.detail ?? '')
        ? en
          ? 'As a unit manager you change visits only inside a locked (attested) period of your areas; outside one, the coordinator makes the change.'
          : 'Som enhetschef ändrar du besök bara i en låst (attesterad) period i dina områden; utanför den gör samordnaren ändringen.'
        : `${t('serverRefused')} ${body?.detail ?? (err instanceof ApiError ? err.message : String(err))}`;
  return el('p', { class: 'error server-error', role: 'alert' }, text);
}

const reasons = async (kind: string): Promise<[string, string][]> => {
  const { reasons: all } = await api<{ reasons: Reason[] }>('GET', '/api/corrections/reasons');
  return all.filter((r) => r.kinds.includes(kind)).map((r) => [r.code, lang() === 'en' ? r.en : r.sv]);
};

/** Sends a form once per request id (a double click records one change); shows the result or the refusal. */
function submitter(
  form: HTMLFormElement,
  check: () => FieldError[],
  send: (requestId: string) => Promise<unknown>,
  done: string,
): void {
  let requestId = newRequestId();
  const result = el('div', {});
  form.append(result);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!showErrors(form, check())) return;
    form.querySelector('.server-error')?.remove();
    send(requestId)
      .then(() => {
        requestId = newRequestId();
        const ok = notice(done);
        ok.tabIndex = -1;
        result.replaceChildren(ok);
        ok.focus();
      })
      .catch((err: unknown) => form.append(refusal(err)));
  });
}

const required = (form: HTMLElement, ids: string[]): FieldError[] =>
  ids.filter((id) => !value(form, id)).map((id) => ({ id, message: t('required') }));

async function addVisitPage(ctx: PageCtx): Promise<Node> {
  const [reg, rs] = await Promise.all([
    api<{ clients: { clientRef: string }[]; staff: { staffRef: string }[] }>('GET', '/api/plan/registry'),
    reasons('added'),
  ]);
  const day = ctx.params.get('date') ?? today();
  const form = el(
    'form',
    { novalidate: '', 'aria-labelledby': 'add-h' },
    el('h2', { id: 'add-h' }, t('addVisit')),
    el('p', { class: 'hint' }, t('addVisitHint')),
    ctx.role === 'unit-manager' ? el('p', { class: 'hint' }, t('managerAddHint')) : null,
    field(
      'add-client',
      t('client'),
      select([['', t('chooseOne')], ...reg.clients.map((c): [string, string] => [c.clientRef, c.clientRef])]),
    ),
    field(
      'add-staff',
      t('staff'),
      select(
        [['', t('chooseOne')], ...reg.staff.map((s): [string, string] => [s.staffRef, s.staffRef])],
        ctx.params.get('staff') ?? '',
      ),
    ),
    field('add-start', t('newStart'), input({ type: 'datetime-local', value: `${day}T08:00` })),
    field('add-end', t('newEnd'), input({ type: 'datetime-local', value: `${day}T08:30` })),
    field('add-reason', t('reasonCode'), select([['', t('chooseReason')], ...rs])),
    field('add-note', t('note'), input({ maxlength: '500' })),
    el('p', {}, el('button', { type: 'submit' }, t('send'))),
  ) as HTMLFormElement;
  submitter(
    form,
    () => {
      const errors = required(form, ['add-client', 'add-staff', 'add-start', 'add-end', 'add-reason']);
      const s = Date.parse(value(form, 'add-start'));
      const e = Date.parse(value(form, 'add-end'));
      if (!Number.isNaN(s) && !Number.isNaN(e) && e <= s)
        errors.push({ id: 'add-end', message: t('endBeforeStart') });
      if (value(form, 'add-reason') === 'other' && !value(form, 'add-note'))
        errors.push({ id: 'add-note', message: t('noteForOther') });
      return errors;
    },
    (requestId) =>
      api('POST', '/api/visits/manual', {
        clientRef: value(form, 'add-client'),
        staffRef: value(form, 'add-staff'),
        startedAt: new Date(Date.parse(value(form, 'add-start'))).toISOString(),
        endedAt: new Date(Date.parse(value(form, 'add-end'))).toISOString(),
        reasonCode: value(form, 'add-reason'),
        note: value(form, 'add-note'),
        requestId,
      }),
    t('visitAdded'),
  );
  return el('div', {}, form);
}

async function withdrawPage(ctx: PageCtx): Promise<Node> {
  const readerId = ctx.params.get('reader') ?? '';
  const visitId = ctx.params.get('visit') ?? '';
  if (!visitId) return el('p', { role: 'alert', class: 'error' }, t('noVisit'));
  const rs = await reasons('withdrawn');
  const start = Number(ctx.params.get('start')) || null;
  const form = el(
    'form',
    { novalidate: '', 'aria-labelledby': 'wd-h' },
    el('h2', { id: 'wd-h' }, `${t('withdraw')}: ${visitId}`),
    el('p', { class: 'muted' }, `${t('reader')} ${readerId || '–'} · ${t('started')} ${when(start)}`),
    el('p', { class: 'hint' }, t('withdrawHint')),
    field('wd-reason', t('reasonCode'), select([['', t('chooseReason')], ...rs], 'tap-by-mistake')),
    field('wd-note', t('whatHappened'), input({ maxlength: '500' })),
    el('p', {}, el('button', { type: 'submit' }, t('withdraw'))),
  ) as HTMLFormElement;
  submitter(
    form,
    () => required(form, ['wd-reason', 'wd-note']),
    (requestId) =>
      api('POST', `/api/visits/${encodeURIComponent(visitId)}/withdraw`, {
        ...(readerId ? { readerId } : {}),
        reasonCode: value(form, 'wd-reason'),
        note: value(form, 'wd-note'),
        requestId,
      }),
    t('withdrawn'),
  );
  return el('div', {}, form);
}

interface Flag {
  flagId: number;
  staffRef: string;
  readerId: string | null;
  visitId: string | null;
  clientRef: string | null;
  date: string | null;
  message: string;
  createdAtMs: number;
  resolvedBy: string | null;
  resolution: string | null;
  resolutionNote: string | null;
}
const RESOLUTIONS = ['corrected', 'added', 'withdrawn', 'no-change'] as const;
const resLabel = (r: string | null): string => (r ? t(`res.${r}` as Key) : t('flagOpen'));

async function flagsPage(): Promise<Node> {
  const { flags } = await api<{ flags: Flag[] }>('GET', '/api/flags');
  const rows = flags.map((f) => {
    const q = new URLSearchParams({ reader: f.readerId ?? '', visit: f.visitId ?? '' }).toString();
    const links = f.visitId
      ? [
          el('a', { href: `#/correct?${q}` }, t('correct')),
          ' · ',
          el('a', { href: `#/withdraw?${q}` }, t('withdraw')),
        ]
      : [
          el(
            'a',
            { href: `#/add?${new URLSearchParams({ staff: f.staffRef, date: f.date ?? '' }).toString()}` },
            t('addVisit'),
          ),
        ];
    const sel = select(RESOLUTIONS.map((r): [string, string] => [r, t(`res.${r}` as Key)]));
    sel.setAttribute('aria-label', `${t('resolution')} ${f.flagId}`);
    const btn = el('button', { type: 'button' }, t('markDone'));
    const cell = el('div', {}, ...links, el('br'), sel, ' ', btn);
    btn.addEventListener('click', () => {
      api('POST', `/api/flags/${f.flagId}/resolve`, { resolution: sel.value })
        .then(() => cell.replaceChildren(notice(t('saved'))))
        .catch((err: unknown) => cell.append(refusal(err)));
    });
    return [
      when(f.createdAtMs),
      f.staffRef,
      f.clientRef ?? '–',
      f.visitId ?? `${t('missingVisit')} ${f.date ?? ''}`,
      f.message,
      cell,
    ];
  });
  return flags.length === 0
    ? el('p', {}, t('noFlags'))
    : table(t('flags'), [t('time'), t('staff'), t('client'), t('visit'), t('message'), t('actions')], rows);
}

interface OwnVisit {
  readerId: string;
  visitId: string;
  clientRef: string | null;
  state: string;
  startedAtMs: number | null;
  endedAtMs: number | null;
  manual: boolean;
  withdrawn: boolean;
  corrected: boolean;
}

async function minePage(ctx: PageCtx): Promise<Node> {
  const to = ctx.params.get('to') ?? today();
  const from = ctx.params.get('from') ?? `${to.slice(0, 8)}01`;
  const [{ visits }, { flags }] = await Promise.all([
    api<{ visits: OwnVisit[] }>('GET', `/api/me/visits?from=${from}&to=${to}`),
    api<{ flags: Flag[] }>('GET', '/api/me/flags'),
  ]);
  const period = el(
    'form',
    { novalidate: '', 'aria-labelledby': 'mine-p' },
    el('h2', { id: 'mine-p' }, t('period')),
    field('mine-from', t('fromDate'), input({ type: 'date', value: from })),
    field('mine-to', t('toDate'), input({ type: 'date', value: to })),
    el('p', {}, el('button', { type: 'submit' }, t('show'))),
  );
  period.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = `#/mine?from=${value(period, 'mine-from')}&to=${value(period, 'mine-to')}`;
  });
  const flagBox = el('div', {});
  const flagForm = (v: OwnVisit | null): void => {
    const form = el(
      'form',
      { novalidate: '', 'aria-labelledby': 'flag-h' },
      el(
        'h2',
        { id: 'flag-h' },
        v ? `${t('flagVisit')}: ${v.clientRef ?? ''} ${when(v.startedAtMs)}` : t('flagMissing'),
      ),
      v ? null : field('flag-date', t('date'), input({ type: 'date', value: to })),
      field('flag-msg', t('whatIsWrong'), input({ maxlength: '500' })),
      el('p', {}, el('button', { type: 'submit' }, t('send'))),
    ) as HTMLFormElement;
    flagBox.replaceChildren(form);
    submitter(
      form,
      () => required(form, v ? ['flag-msg'] : ['flag-date', 'flag-msg']),
      (requestId) =>
        api('POST', '/api/me/flags', {
          ...(v ? { visitId: v.visitId, readerId: v.readerId } : { date: value(form, 'flag-date') }),
          message: value(form, 'flag-msg'),
          requestId,
        }),
      t('flagSent'),
    );
    (form.querySelector('input') as HTMLElement).focus();
  };
  const status = (v: OwnVisit): string =>
    [
      v.withdrawn ? t('stWithdrawn') : null,
      v.manual ? t('stManual') : null,
      v.corrected ? t('stCorrected') : null,
      v.state === 'open' ? t('stOpen') : null,
    ]
      .filter(Boolean)
      .join(', ') || t('stOk');
  const missing = el('button', { type: 'button' }, t('flagMissing'));
  missing.addEventListener('click', () => flagForm(null));
  return el(
    'div',
    {},
    el('p', { class: 'hint' }, t('mineHint')),
    period,
    visits.length === 0
      ? el('p', {}, t('noOwnVisits'))
      : table(
          t('mine'),
          [t('date'), t('started'), t('ended'), t('client'), t('status'), t('actions')],
          visits.map((v) => {
            const b = el(
              'button',
              {
                type: 'button',
                'aria-label': `${t('flagVisit')}: ${v.clientRef ?? ''} ${when(v.startedAtMs)}`,
              },
              t('flagVisit'),
            );
            b.addEventListener('click', () => flagForm(v));
            const at = v.startedAtMs ?? v.endedAtMs;
            return [
              at ? localDate(at) : '–',
              v.startedAtMs ? hhmm(v.startedAtMs) : '–',
              v.endedAtMs ? hhmm(v.endedAtMs) : '–',
              v.clientRef ?? '–',
              status(v),
              b,
            ];
          }),
        ),
    el('p', {}, missing),
    flagBox,
    flags.length === 0
      ? null
      : table(
          t('myFlags'),
          [t('time'), t('visit'), t('message'), t('status'), t('note')],
          flags.map((f) => [
            when(f.createdAtMs),
            f.visitId ?? `${t('missingVisit')} ${f.date ?? ''}`,
            f.message,
            resLabel(f.resolution),
            f.resolutionNote ?? '',
          ]),
        ),
  );
}

async function periodsPage(ctx: PageCtx): Promise<Node> {
  const [{ locks }, reg] = await Promise.all([
    api<{ locks: Lock[] }>('GET', '/api/periods/locks'),
    api<{ areas: { areaId: string; name?: string }[] }>('GET', '/api/plan/registry'),
  ]);
  const mayLock = ['admin', 'unit-manager'].includes(ctx.role);
  const form = el(
    'form',
    { novalidate: '', 'aria-labelledby': 'lock-h' },
    el('h2', { id: 'lock-h' }, t('lockPeriod')),
    el('p', { class: 'hint' }, t('lockHint')),
    field(
      'lock-area',
      t('area'),
      select([
        ['', t('chooseOne')],
        ...reg.areas.map((a): [string, string] => [a.areaId, a.name ?? a.areaId]),
      ]),
    ),
    field('lock-month', t('month'), input({ value: today().slice(0, 7), inputmode: 'numeric' }), 'ÅÅÅÅ-MM'),
    field('lock-note', t('note'), input({ maxlength: '500' })),
    el('p', {}, el('button', { type: 'submit' }, t('lock'))),
  ) as HTMLFormElement;
  submitter(
    form,
    () => {
      const errors = required(form, ['lock-area', 'lock-month']);
      if (value(form, 'lock-month') && !/^\d{4}-(0[1-9]|1[0-2])$/.test(value(form, 'lock-month')))
        errors.push({ id: 'lock-month', message: t('badMonth') });
      return errors;
    },
    () =>
      api('POST', '/api/periods/locks', {
        areaId: value(form, 'lock-area'),
        month: value(form, 'lock-month'),
        note: value(form, 'lock-note'),
      }),
    t('locked'),
  );
  const rows = locks.map((l) => {
    if (!mayLock) return [l.areaId, l.month, l.lockedBy, when(l.lockedAtMs), l.note ?? ''];
    const reason = input({ maxlength: '500', 'aria-label': `${t('unlockReason')} ${l.areaId} ${l.month}` });
    const b = el('button', { type: 'button' }, t('unlock'));
    const cell = el('div', {}, reason, ' ', b);
    b.addEventListener('click', () => {
      if (!reason.value.trim()) {
        cell.querySelector('.server-error')?.remove();
        cell.append(
          el('p', { class: 'error server-error', role: 'alert' }, `${t('unlockReason')}: ${t('required')}`),
        );
        return;
      }
      api('POST', `/api/periods/locks/${encodeURIComponent(l.areaId)}/${l.month}/unlock`, {
        reason: reason.value,
      })
        .then(() => cell.replaceChildren(notice(t('unlocked'))))
        .catch((err: unknown) => cell.append(refusal(err)));
    });
    return [l.areaId, l.month, l.lockedBy, when(l.lockedAtMs), l.note ?? '', cell];
  });
  return el(
    'div',
    {},
    mayLock ? form : null,
    locks.length === 0
      ? el('p', {}, t('noLocks'))
      : table(
          t('lockedPeriods'),
          [t('area'), t('month'), t('lockedBy'), t('time'), t('note'), ...(mayLock ? [t('actions')] : [])],
          rows,
        ),
  );
}

export const MORE_PAGES: Record<string, Page> = {
  // a unit manager: only inside locked periods of their areas (the server refuses elsewhere, 403)
  add: {
    key: 'addVisit',
    roles: ['admin', 'coordinator', 'unit-manager'],
    menu: ['admin', 'coordinator'], // a unit manager: from the visits page when a month is locked
    render: addVisitPage,
  },
  withdraw: {
    key: 'withdraw',
    roles: ['admin', 'coordinator', 'unit-manager'],
    hidden: true,
    render: withdrawPage,
  },
  flags: { key: 'flags', roles: ['admin', 'coordinator'], render: flagsPage },
  periods: { key: 'periods', roles: ['admin', 'unit-manager', 'coordinator'], render: periodsPage },
  mine: { key: 'mine', roles: ['care-staff'], render: minePage },
};
