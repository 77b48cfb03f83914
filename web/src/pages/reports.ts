/**
 * Report pages (unit managers, coordinators, admins; the server limits each to its areas): executed vs
 * planned per area, and continuity (staff per client) per area against a target line. Every figure is
 * also in a table (the charts are pictures of the table); CSV and XLSX downloads of the same report.
 */
import { api } from '../api.js';
import { el, table, today } from '../dom.js';
import { field, input, isDate, select, showErrors, value, type FieldError } from '../form.js';
import { lang, t } from '../i18n.js';
import { REPORT_ROLES, type Page, type PageCtx } from './types.js';

interface ExecutedJson {
  total: ExecutedRowJson;
  rows: ExecutedRowJson[];
}
interface ExecutedRowJson {
  areaId: string | null;
  plannedVisits: number;
  executedVisits: number;
  plannedMinutes: number;
  executedMinutes: number;
  ratio: number | null;
  late: number;
  missed: number;
}
interface ContinuityJson {
  clients: number;
  mean: number | null;
  median: number | null;
  byArea: { areaId: string; clients: number; mean: number | null; median: number | null }[];
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}
const num = (n: number | null, digits = 1): string =>
  n === null ? '–' : n.toLocaleString(lang() === 'en' ? 'en-GB' : 'sv-SE', { maximumFractionDigits: digits });

/** Horizontal bars, one group per label; values written next to each bar; an optional target line. */
function barChart(
  title: string,
  groups: { label: string; bars: { name: string; value: number; cls: string }[] }[],
  target?: { value: number; label: string },
): SVGElement {
  const max = Math.max(1, target?.value ?? 0, ...groups.flatMap((g) => g.bars.map((b) => b.value))) * 1.15;
  const rowH = 22;
  const left = 120;
  const width = 640;
  const plot = width - left - 70;
  const height = groups.reduce((h, g) => h + g.bars.length * rowH + 10, 30);
  const root = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': title,
  });
  root.append(svg('title', {}, title));
  let y = 10;
  for (const g of groups) {
    root.append(svg('text', { x: 0, y: y + 15, 'font-size': 13 }, g.label));
    for (const b of g.bars) {
      const w = Math.max(1, (b.value / max) * plot);
      root.append(svg('rect', { x: left, y, width: w, height: rowH - 6, class: b.cls }));
      root.append(svg('text', { x: left + w + 6, y: y + 12, 'font-size': 12 }, `${b.name} ${num(b.value)}`));
      y += rowH;
    }
    y += 10;
  }
  if (target) {
    const x = left + (target.value / max) * plot;
    root.append(svg('line', { x1: x, x2: x, y1: 0, y2: height - 16, class: 'threshold' }));
    root.append(svg('text', { x: x + 4, y: height - 4, 'font-size': 12 }, target.label));
  }
  return root;
}

function downloads(path: string, q: URLSearchParams): HTMLElement {
  const link = (format: string, label: string): HTMLElement => {
    const p = new URLSearchParams(q);
    p.set('format', format);
    p.set('lang', lang());
    return el('a', { href: `${path}?${p.toString()}`, download: '' }, `${t('download')} ${label}`);
  };
  return el('p', { class: 'downloads' }, link('csv', 'CSV'), ' · ', link('xlsx', 'XLSX (Excel)'));
}

async function executed(from: string, to: string): Promise<Node> {
  const q = new URLSearchParams({ from, to, period: 'range', by: 'area' });
  const r = await api<ExecutedJson>('GET', `/api/reports/executed?${q.toString()}`);
  const caption = `${t('executed')} ${from} – ${to}`;
  return el(
    'section',
    { 'aria-labelledby': 'rep-h' },
    el('h2', { id: 'rep-h' }, caption),
    el(
      'p',
      {},
      `${t('plannedMin')}: ${num(r.total.plannedMinutes, 0)} · ${t('executedMin')}: ${num(r.total.executedMinutes, 0)} · ${t('ratio')}: ${num(r.total.ratio === null ? null : r.total.ratio * 100, 0)} %`,
    ),
    barChart(
      caption,
      r.rows.map((x) => ({
        label: x.areaId ?? '–',
        bars: [
          { name: t('plannedShort'), value: x.plannedMinutes, cls: 'bar-planned' },
          { name: t('executedShort'), value: x.executedMinutes, cls: 'bar' },
        ],
      })),
    ),
    table(
      caption,
      [
        t('area'),
        t('plannedVisitsCol'),
        t('executedVisitsCol'),
        t('plannedMin'),
        t('executedMin'),
        t('ratio'),
        tLate(),
        tMissed(),
      ],
      r.rows.map((x) => [
        x.areaId ?? '–',
        String(x.plannedVisits),
        String(x.executedVisits),
        num(x.plannedMinutes, 0),
        num(x.executedMinutes, 0),
        x.ratio === null ? '–' : `${num(x.ratio * 100, 0)} %`,
        String(x.late),
        String(x.missed),
      ]),
    ),
    downloads('/api/reports/executed', q),
  );
}
const tLate = (): string => t('st.late');
const tMissed = (): string => t('st.missed');

async function continuity(from: string, target: number): Promise<Node> {
  const q = new URLSearchParams({ from, days: '14' });
  const r = await api<ContinuityJson>('GET', `/api/reports/continuity?${q.toString()}`);
  const caption = `${t('continuity')} ${from} (14 ${t('days')})`;
  // an empty period says so and what to check, above the (empty) chart with its target line
  const empty = r.clients === 0 || r.byArea.length === 0;
  return el(
    'section',
    { 'aria-labelledby': 'rep-h' },
    el('h2', { id: 'rep-h' }, caption),
    empty ? el('p', { class: 'empty-state' }, t('noContinuity')) : null,
    empty ? el('ul', {}, el('li', {}, t('emptyCheckPeriod')), el('li', {}, t('emptyCheckPlan'))) : null,
    el(
      'p',
      {},
      `${t('meanStaff')}: ${num(r.mean)} · ${t('median')}: ${num(r.median)} · ${t('clients')}: ${r.clients}`,
    ),
    barChart(
      `${caption}. ${t('threshold')} ${target}`,
      r.byArea.map((a) => ({
        label: a.areaId,
        bars: [{ name: t('meanShort'), value: a.mean ?? 0, cls: 'bar' }],
      })),
      { value: target, label: `${t('threshold')} ${target}` },
    ),
    table(
      caption,
      [t('area'), t('clients'), t('meanStaff'), t('median'), t('threshold')],
      r.byArea.map((a) => [
        a.areaId,
        String(a.clients),
        num(a.mean),
        num(a.median),
        a.mean === null ? '–' : a.mean <= target ? `${t('withinTarget')}` : `${t('overTarget')}`,
      ]),
    ),
    downloads('/api/reports/continuity', q),
  );
}

/** The Monday on or before a date. */
const mondayOf = (d: string): string => {
  const x = new Date(`${d}T12:00:00Z`);
  x.setUTCDate(x.getUTCDate() - ((x.getUTCDay() + 6) % 7));
  return x.toISOString().slice(0, 10);
};

async function reportsPage(ctx: PageCtx): Promise<Node> {
  const p = ctx.params;
  const kind = p.get('kind') === 'continuity' ? 'continuity' : 'executed';
  const to = p.get('to') ?? today();
  const from = p.get('from') ?? (kind === 'continuity' ? mondayOf(to) : `${to.slice(0, 8)}01`);
  const target = Number(p.get('target') ?? '15') || 15;
  const form = el(
    'form',
    { class: 'filters', novalidate: '', 'aria-label': t('reports') },
    field(
      'rep-kind',
      t('report'),
      select(
        [
          ['executed', t('executed')],
          ['continuity', t('continuity')],
        ],
        kind,
      ),
    ),
    field(
      'rep-from',
      t('fromDate'),
      input({ value: from, inputmode: 'numeric', autocomplete: 'off' }),
      'ÅÅÅÅ-MM-DD',
    ),
    field(
      'rep-to',
      t('toDate'),
      input({ value: to, inputmode: 'numeric', autocomplete: 'off' }),
      t('toHint'),
    ),
    field(
      'rep-target',
      t('threshold'),
      input({ value: String(target), inputmode: 'numeric' }),
      t('targetHint'),
    ),
    el('p', {}, el('button', { type: 'submit' }, t('show'))),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const k = value(form, 'rep-kind');
    const f = value(form, 'rep-from');
    const tt = value(form, 'rep-to');
    const g = value(form, 'rep-target');
    const errors: FieldError[] = [];
    if (!isDate(f)) errors.push({ id: 'rep-from', message: t('badDate') });
    else if (k === 'continuity' && mondayOf(f) !== f)
      errors.push({ id: 'rep-from', message: t('notMonday') });
    if (k === 'executed') {
      if (!isDate(tt)) errors.push({ id: 'rep-to', message: t('badDate') });
      else if (isDate(f) && tt < f) errors.push({ id: 'rep-to', message: t('badRange') });
    }
    if (!/^\d{1,3}$/.test(g)) errors.push({ id: 'rep-target', message: t('badNumber') });
    if (!showErrors(form, errors)) return;
    location.hash = `#/reports?${new URLSearchParams({ kind: k, from: f, to: tt, target: g }).toString()}`;
  });
  const body = kind === 'continuity' ? await continuity(mondayOf(from), target) : await executed(from, to);
  return el('div', {}, form, body);
}

export const REPORT_PAGES: Record<string, Page> = {
  reports: { key: 'reports', roles: REPORT_ROLES, render: reportsPage },
};
