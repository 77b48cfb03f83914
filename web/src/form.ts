/**
 * Accessible forms: every field has a label, an optional hint and an error slot tied to it with
 * aria-describedby; on a failed check an error summary (role=alert) lists each problem as a link that
 * moves focus to the field, and the field gets aria-invalid. Works by keyboard alone.
 */
import { el } from './dom.js';
import { t } from './i18n.js';

export interface FieldError {
  id: string;
  message: string;
}

/** A labelled field: label, hint, error slot, control. */
export function field(id: string, label: string, control: HTMLElement, hint?: string): HTMLElement {
  control.id = id;
  if (!control.getAttribute('name')) control.setAttribute('name', id);
  const described = hint ? `${id}-hint` : '';
  if (described) control.setAttribute('aria-describedby', described);
  return el(
    'div',
    { class: 'field' },
    el('label', { for: id }, label),
    hint ? el('p', { id: `${id}-hint`, class: 'hint' }, hint) : null,
    el('p', { id: `${id}-err`, class: 'error field-error', hidden: '' }),
    control,
  );
}

export const input = (attrs: Record<string, string> = {}): HTMLInputElement =>
  el('input', { type: 'text', ...attrs }) as HTMLInputElement;

export function select(options: [string, string][], value = ''): HTMLSelectElement {
  const s = el('select', {}) as HTMLSelectElement;
  for (const [v, label] of options) {
    const o = el('option', { value: v }, label) as HTMLOptionElement;
    if (v === value) o.selected = true;
    s.append(o);
  }
  return s;
}

export const value = (form: HTMLElement, id: string): string =>
  form.querySelector<HTMLInputElement | HTMLSelectElement>(`#${CSS.escape(id)}`)?.value.trim() ?? '';

/** Clears earlier errors, then shows these; true when there are none. Focus goes to the summary. */
export function showErrors(form: HTMLElement, errors: FieldError[], heading = t('formErrors')): boolean {
  form.querySelector('.error-summary')?.remove();
  for (const c of form.querySelectorAll('[aria-invalid]')) {
    c.removeAttribute('aria-invalid');
    const hint = form.querySelector(`#${CSS.escape(c.id)}-hint`) ? `${c.id}-hint` : '';
    if (hint) c.setAttribute('aria-describedby', hint);
    else c.removeAttribute('aria-describedby');
  }
  for (const p of form.querySelectorAll<HTMLElement>('.field-error')) {
    p.textContent = '';
    p.hidden = true;
  }
  if (errors.length === 0) return true;
  const items = errors.map((e) => {
    const control = form.querySelector<HTMLElement>(`#${CSS.escape(e.id)}`);
    const slot = form.querySelector<HTMLElement>(`#${CSS.escape(e.id)}-err`);
    if (control && slot) {
      slot.textContent = e.message;
      slot.hidden = false;
      control.setAttribute('aria-invalid', 'true');
      control.setAttribute(
        'aria-describedby',
        [`${e.id}-err`, control.getAttribute('aria-describedby') ?? ''].join(' ').trim(),
      );
    }
    const label = form.querySelector(`label[for="${CSS.escape(e.id)}"]`)?.textContent ?? '';
    const link = el('a', { href: `#${e.id}` }, label ? `${label}: ${e.message}` : e.message);
    // an in-page link must not change the hash (the hash is the router's)
    link.addEventListener('click', (ev) => {
      ev.preventDefault();
      control?.focus();
    });
    return el('li', {}, link);
  });
  const summary = el(
    'div',
    { class: 'error-summary', role: 'alert', tabindex: '-1' },
    el('h2', {}, heading),
    el('ul', {}, ...items),
  );
  form.prepend(summary);
  summary.focus();
  return false;
}

/** A result line announced politely (role=status). */
export const notice = (text: string, kind: 'ok' | 'error' = 'ok'): HTMLElement =>
  el('p', { role: kind === 'ok' ? 'status' : 'alert', class: kind === 'ok' ? 'notice' : 'error' }, text);

export const isDate = (s: string): boolean =>
  /^\d{4}-\d{2}-\d{2}$/.test(s) &&
  !Number.isNaN(Date.parse(`${s}T00:00:00Z`)) &&
  new Date(`${s}T00:00:00Z`).toISOString().startsWith(s);
export const isRef = (s: string): boolean => /^[A-Za-z0-9._:-]{1,64}$/.test(s);
