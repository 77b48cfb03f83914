/**
 * One reader, for the technician in a client's hallway or on the phone with one: is it connected, when was it
 * last heard, its queue and clock, gaps in its sequence, the last command's result; and the actions: identify
 * (it blinks, to find the right box), resync its clock, push its settings and card lists again, issue a
 * replacement's enrollment code, revoke (asks for confirmation). Every action answers in text on the page.
 */
import { api, ApiError } from '../api.js';
import { el, when } from '../dom.js';
import { t, tk, type Key } from '../i18n.js';
import type { Page, PageCtx } from './types.js';

interface ReaderDetail {
  readerId: string;
  label: string | null;
  revoked: boolean;
  connected: boolean;
  reportedState: string;
  lastSeenMs: number | null;
  firmware: string | null;
  queueDepth: number | null;
  clockOffsetMs: number | null;
  clockSynced: boolean | null;
  contiguousUpto: number;
  maxSeen: number;
  hasGaps: boolean;
  events: number;
  lastCommandResult: { kind?: string; ok?: boolean; detail?: string } | null;
  replacedBy: string | null;
}

const clockText = (r: ReaderDetail): string =>
  r.clockSynced === null
    ? '–'
    : `${r.clockSynced ? t('clockSynced') : t('clockNotSynced')}${
        r.clockOffsetMs === null ? '' : `, ${(r.clockOffsetMs / 1000).toFixed(1)} s`
      }`;

async function readerPage(ctx: PageCtx): Promise<Node> {
  const id = ctx.params.get('id') ?? '';
  const path = `/api/readers/${encodeURIComponent(id)}`;
  const r = await api<ReaderDetail>('GET', path);
  const result = el('p', { role: 'status', id: 'reader-result' });
  const say = (text: string, ok: boolean) => {
    result.className = ok ? 'status-ok' : 'status-bad';
    result.textContent = text;
  };
  const action = (key: Key, run: () => Promise<string>, extra: Record<string, string> = {}) => {
    const b = el('button', { type: 'button', ...extra }, t(key)) as HTMLButtonElement;
    b.addEventListener('click', () => {
      b.disabled = true;
      run()
        .then((text) => say(text, true))
        .catch((err: unknown) =>
          say(`${t('actionFailed')}: ${err instanceof ApiError ? err.message : String(err)}`, false),
        )
        .finally(() => (b.disabled = false));
    });
    return b;
  };
  const command = (kind: string, done: Key) => async () => {
    await api('POST', `${path}/commands`, { kind });
    return t(done);
  };
  const confirmRevoke = el('p', { hidden: '' });
  const revoke = action('revokeReader', () => {
    confirmRevoke.hidden = false;
    (confirmRevoke.querySelector('button') as HTMLButtonElement).focus();
    return Promise.resolve(t('revokeAsk'));
  });
  confirmRevoke.append(
    action('revokeConfirm', async () => {
      await api('POST', `${path}/revoke`, {});
      confirmRevoke.hidden = true;
      return t('revokedDone');
    }),
  );
  const row = (label: Key, value: string) => [el('dt', {}, t(label)), el('dd', {}, value)];
  return el(
    'div',
    {},
    el('h2', {}, r.label ? `${r.readerId} (${r.label})` : r.readerId),
    el(
      'dl',
      { class: 'facts' },
      ...row('state', r.revoked ? t('revokedReaders') : r.connected ? t('online') : t('offline')),
      ...row('reportedState', tk('rs', r.reportedState)),
      ...row('lastSeen', when(r.lastSeenMs)),
      ...row('queue', String(r.queueDepth ?? '–')),
      ...row('clock', clockText(r)),
      ...row('firmware', r.firmware ?? '–'),
      ...row('sequence', `${r.contiguousUpto} / ${r.maxSeen}${r.hasGaps ? ` (${t('hasGaps')})` : ''}`),
      ...row('eventsStored', String(r.events)),
      ...row(
        'lastCommand',
        r.lastCommandResult
          ? `${r.lastCommandResult.kind ?? ''} ${r.lastCommandResult.ok === false ? t('failed') : 'ok'}`
          : '–',
      ),
      ...(r.replacedBy ? row('replacedBy', r.replacedBy) : []),
    ),
    r.revoked
      ? null
      : el(
          'div',
          { class: 'actions', role: 'group', 'aria-label': t('actions') },
          action('identify', command('identify', 'identifySent')),
          ' ',
          action('resyncClock', command('resync-clock', 'commandSent')),
          ' ',
          action('pushConfig', async () => {
            await api('POST', `${path}/config`, {});
            return t('configPushed');
          }),
          ' ',
          action('replaceReader', async () => {
            const out = await api<{ code: string; readerId: string; expiresAtMs: number }>(
              'POST',
              `${path}/replace`,
              {},
            );
            return `${t('replaceCode')} ${out.readerId}: ${out.code} (${t('validUntil')} ${when(out.expiresAtMs)})`;
          }),
          ' ',
          revoke,
          confirmRevoke,
        ),
    result,
    el('p', {}, el('a', { href: '#/readers' }, t('backToReaders'))),
  );
}

export const READER_PAGE: Page = {
  key: 'reader',
  roles: ['admin', 'technician'],
  hidden: true,
  render: readerPage,
};
