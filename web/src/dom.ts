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
export const when = (ms: number | null | undefined): string => (ms ? new Date(ms).toLocaleString() : '–');
