import { lang } from './i18n.js';

type Child = Node | string | null | undefined | false;
/** A tiny element builder: el('td', { class: 'x' }, 'text'). Text is always set as text (no HTML injection). */
export function el(tag: string, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}
export function table(caption: string, head: string[], rows: Child[][]): HTMLElement {
  return el(
    'table',
    {},
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, c))))),
  );
}
/** The plan's time zone: every time on the pages is read there. */
const TZ = 'Europe/Stockholm';
/** A date and time in the UI's language and the plan's time zone ("2026-12-06 09:15"), or "–". */
export const when = (ms: number | null | undefined): string =>
  ms
    ? new Intl.DateTimeFormat(lang() === 'en' ? 'en-GB' : 'sv-SE', {
        timeZone: TZ,
        dateStyle: 'short',
        timeStyle: 'short',
      }).format(ms)
    : '–';

export type Tone = 'ok' | 'bad' | 'warn' | 'wait';
/** A status in words with a symbol (CSS ::before), never by colour alone. */
export const badge = (tone: Tone, text: string): HTMLElement => el('span', { class: `status-${tone}` }, text);

/** Time of day (HH:MM) and date (YYYY-MM-DD) in the plan's time zone. */
export const hhmm = (ms: number): string =>
  new Intl.DateTimeFormat('sv-SE', { timeZone: TZ, hour: '2-digit', minute: '2-digit' }).format(ms);
export const localDate = (ms: number): string =>
  new Intl.DateTimeFormat('sv-SE', {
    timeZone: TZ,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(ms);
export const today = (): string => localDate(Date.now());
