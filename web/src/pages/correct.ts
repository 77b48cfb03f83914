/**
 * Correction form on one visit (coordinator): new start and/or end time, a reason code, a note. Each form
 * carries a request id, so sending it twice (a double click, a retry after a lost answer) records one
 * correction. Backend: POST /api/visits/:visitId/corrections (docs/webapp.md "Corrections").
 */
import { api, ApiError } from '../api.js';
import { el, table, when } from '../dom.js';
import { field, input, notice, select, showErrors, value, type FieldError } from '../form.js';
import { lang, t } from '../i18n.js';
import { refusal } from './more.js';
import { serverError } from './plan.js';
import type { Page, PageCtx } from './types.js';

interface Reason {
  code: string;
  sv: string;
  en: string;
  kinds?: string[];
}
interface Correction {
  correctionId: string;
  reasonCode: string;
  note: string;
  actor: string;
  atMs: number;
  before: { startedAtMs?: number | null; endedAtMs?: number | null } | null;
  after: { startedAtMs?: number | null; endedAtMs?: number | null } | null;
}

const pad = (n: number): string => String(n).padStart(2, '0');
/** ms → the value of <input type="datetime-local"> in the browser's time zone. */
export const toLocalInput = (ms: number): string => {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};

function newRequestId(): string {
  return typeof crypto.randomUUID === 'function'
    ? crypto.randomUUID()
    : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function correctPage(ctx: PageCtx): Promise<Node> {
  const readerId = ctx.params.get('reader') ?? '';
  const visitId = ctx.params.get('visit') ?? '';
  if (!visitId) return el('p', { role: 'alert', class: 'error' }, t('noVisit'));
  const base = `/api/visits/${encodeURIComponent(visitId)}/corrections`;
  const [reasons, history] = await Promise.all([
    api<{ reasons: Reason[] }>('GET', '/api/corrections/reasons').then((r) => r.reasons),
    api<{ corrections: Correction[] }>(
      'GET',
      `${base}${readerId ? `?readerId=${encodeURIComponent(readerId)}` : ''}`,
    ).then((r) => r.corrections),
  ]);
  const startMs = Number(ctx.params.get('start')) || null;
  const endMs = Number(ctx.params.get('end')) || null;
  let requestId = newRequestId();
  const result = el('div', {});
  const form = el(
    'form',
    { novalidate: '', 'aria-labelledby': 'corr-h' },
    el('h2', { id: 'corr-h' }, `${t('correction')} ${visitId}`),
    el(
      'p',
      { class: 'muted' },
      `${t('reader')} ${readerId || '–'} · ${t('started')} ${when(startMs)} · ${t('ended')} ${when(endMs)}`,
    ),
    field(
      'corr-start',
      t('newStart'),
      input({ type: 'datetime-local', value: startMs ? toLocalInput(startMs) : '' }),
    ),
    field(
      'corr-end',
      t('newEnd'),
      input({ type: 'datetime-local', value: endMs ? toLocalInput(endMs) : '' }),
    ),
    field(
      'corr-reason',
      t('reasonCode'),
      select([
        ['', t('chooseReason')],
        ...reasons
          .filter((r) => !r.kinds || r.kinds.includes('times'))
          .map((r): [string, string] => [r.code, lang() === 'en' ? r.en : r.sv]),
      ]),
    ),
    field('corr-note', t('note'), input({ maxlength: '500' })),
    el('p', {}, el('button', { type: 'submit' }, t('send'))),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const s = value(form, 'corr-start');
    const e = value(form, 'corr-end');
    const reason = value(form, 'corr-reason');
    const errors: FieldError[] = [];
    const sMs = s ? Date.parse(s) : null;
    const eMs = e ? Date.parse(e) : null;
    if (s && Number.isNaN(sMs)) errors.push({ id: 'corr-start', message: t('badTime') });
    if (e && Number.isNaN(eMs)) errors.push({ id: 'corr-end', message: t('badTime') });
    if (sMs !== null && eMs !== null && eMs <= sMs)
      errors.push({ id: 'corr-end', message: t('endBeforeStart') });
    const changed =
      (sMs !== null && (startMs === null || Math.abs(sMs - startMs) >= 60_000)) ||
      (eMs !== null && (endMs === null || Math.abs(eMs - endMs) >= 60_000));
    if (!changed && errors.length === 0) errors.push({ id: 'corr-start', message: t('nothingChanged') });
    if (!reason) errors.push({ id: 'corr-reason', message: t('chooseOne') });
    if (!showErrors(form, errors)) return;
    form.querySelector('.server-error')?.remove();
    api<{ correction: Correction }>('POST', base, {
      ...(readerId ? { readerId } : {}),
      ...(sMs !== null && (startMs === null || Math.abs(sMs - startMs) >= 60_000)
        ? { startedAt: new Date(sMs).toISOString() }
        : {}),
      ...(eMs !== null && (endMs === null || Math.abs(eMs - endMs) >= 60_000)
        ? { endedAt: new Date(eMs).toISOString() }
        : {}),
      reasonCode: reason,
      note: value(form, 'corr-note'),
      requestId,
    })
      .then(() => {
        requestId = newRequestId();
        const done = notice(t('corrected'));
        done.tabIndex = -1;
        result.replaceChildren(done, el('p', {}, el('a', { href: '#/visits?state=closed' }, t('visits'))));
        done.focus();
      })
      .catch((err: unknown) => {
        const box =
          err instanceof ApiError && err.status === 404
            ? el('p', { class: 'error server-error', role: 'alert' }, `${t('serverRefused')} ${err.message}`)
            : err instanceof ApiError && (err.status === 423 || err.status === 403)
              ? refusal(err)
              : serverError(err);
        form.append(box);
      });
  });
  return el(
    'div',
    {},
    form,
    result,
    history.length === 0
      ? null
      : table(
          t('earlierCorrections'),
          [t('time'), t('actor'), t('reasonCode'), t('started'), t('ended'), t('note')],
          history.map((c) => [
            when(c.atMs),
            c.actor,
            reasons.find((r) => r.code === c.reasonCode)?.[lang()] ?? c.reasonCode,
            when(c.after?.startedAtMs ?? null),
            when(c.after?.endedAtMs ?? null),
            c.note,
          ]),
        ),
  );
}

export const CORRECT_PAGE: Page = {
  key: 'correct',
  roles: ['admin', 'coordinator', 'unit-manager'], // a unit manager: inside locked periods only
  hidden: true,
  render: correctPage,
};
