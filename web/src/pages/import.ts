/** Plan import form: area, date range, a CSV file, "check only"; every bad row named with its line. */
import { api, ApiError } from '../api.js';
import { el } from '../dom.js';
import { decode, planRows } from '../csv.js';
import { field, input, isDate, isRef, notice, select, showErrors, value, type FieldError } from '../form.js';
import { t } from '../i18n.js';
import { registry } from './care-data.js';
import { serverError } from './plan.js';
import type { Page } from './types.js';

interface ImportAnswer {
  ok: boolean;
  errors?: { line: number; reason: string }[];
  rows?: number;
}

async function importPage(): Promise<Node> {
  const areas = (await registry()).areas;
  const file = input({ type: 'file', accept: '.csv,text/csv,text/plain' });
  const dry = el('input', {
    type: 'checkbox',
    id: 'imp-dry',
    name: 'dryRun',
    checked: '',
  }) as HTMLInputElement;
  const result = el('div', { id: 'import-result' });
  const form = el(
    'form',
    { novalidate: '', 'aria-labelledby': 'imp-h' },
    el('h2', { id: 'imp-h' }, t('planImport')),
    field(
      'imp-area',
      t('area'),
      select([
        ['', t('chooseOne')],
        ...areas.map((a): [string, string] => [a.areaId, `${a.name} (${a.areaId})`]),
      ]),
    ),
    field('imp-from', t('fromDate'), input({ inputmode: 'numeric', autocomplete: 'off' }), 'ÅÅÅÅ-MM-DD'),
    field('imp-to', t('toDate'), input({ inputmode: 'numeric', autocomplete: 'off' }), 'ÅÅÅÅ-MM-DD'),
    field('imp-file', t('file'), file, t('fileHint')),
    el('p', { class: 'check' }, dry, el('label', { for: 'imp-dry' }, t('dryRun'))),
    el('p', {}, el('button', { type: 'submit' }, t('importButton'))),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void submit();
  });

  async function submit(): Promise<void> {
    result.replaceChildren();
    const area = value(form, 'imp-area');
    const from = value(form, 'imp-from');
    const to = value(form, 'imp-to');
    const errors: FieldError[] = [];
    if (!area) errors.push({ id: 'imp-area', message: t('chooseOne') });
    else if (!isRef(area)) errors.push({ id: 'imp-area', message: t('badRef') });
    if (!from) errors.push({ id: 'imp-from', message: t('required') });
    else if (!isDate(from)) errors.push({ id: 'imp-from', message: t('badDate') });
    if (!to) errors.push({ id: 'imp-to', message: t('required') });
    else if (!isDate(to)) errors.push({ id: 'imp-to', message: t('badDate') });
    else if (isDate(from) && to < from) errors.push({ id: 'imp-to', message: t('badRange') });
    const f = file.files?.[0];
    let parsed: ReturnType<typeof planRows> | null = null;
    if (!f) errors.push({ id: 'imp-file', message: t('noFile') });
    else {
      parsed = planRows(decode(new Uint8Array(await f.arrayBuffer())));
      if (parsed.missing) errors.push({ id: 'imp-file', message: t('csvHeader') });
      else if (parsed.rows.length === 0) errors.push({ id: 'imp-file', message: t('csvEmpty') });
    }
    if (!showErrors(form, errors) || !parsed) return;
    const lines = parsed.rows.map((r) => r.line);
    try {
      const r = await api<ImportAnswer>('POST', '/api/plan/import', {
        areaId: area,
        fromDate: from,
        toDate: to,
        dryRun: dry.checked,
        visits: parsed.rows.map((r) => r.row),
      });
      const n = r.rows ?? parsed.rows.length;
      result.replaceChildren(
        notice(`${dry.checked ? t('checked') : t('imported')}: ${n} ${t('plannedVisits')}.`),
      );
    } catch (err) {
      const body = err instanceof ApiError ? (err.body as ImportAnswer | undefined) : undefined;
      if (body?.errors?.length) {
        // the server counts rows from 1 in the order sent; say the line in the file instead
        const box = el(
          'div',
          { role: 'alert', class: 'error-summary', tabindex: '-1' },
          el('h2', {}, t('rowsWithErrors')),
          el(
            'ul',
            {},
            ...body.errors
              .slice(0, 50)
              .map((e) =>
                el(
                  'li',
                  {},
                  e.line > 0 ? `${t('line')} ${lines[e.line - 1] ?? e.line}: ${e.reason}` : e.reason,
                ),
              ),
          ),
        );
        result.replaceChildren(box);
        box.focus();
      } else result.replaceChildren(serverError(err));
    }
  }
  return el('div', {}, form, result);
}

export const IMPORT_PAGE: Page = { key: 'planImport', roles: ['admin', 'coordinator'], render: importPage };
