/** The one table the bench prints, and the JSON file it writes. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Row } from './types.js';

function fmt(n: number | null, unit = ''): string {
  if (n === null || !Number.isFinite(n)) return 'n/a';
  const abs = Math.abs(n);
  const s = abs >= 100 ? Math.round(n).toLocaleString('en-US') : abs >= 10 ? n.toFixed(1) : n.toFixed(2);
  return unit ? `${s} ${unit}` : s;
}

export function formatValue(r: Row): string {
  if (r.value === null) return r.note.startsWith('n/a') ? (r.note.split(';')[0] ?? 'n/a') : 'n/a';
  if (r.display) return r.display;
  return fmt(r.value, r.unit);
}

export function renderTable(rows: readonly Row[]): string {
  const header = ['figure', 'load generator', 'value', 'baseline', 'ratio', 'target', 'met?'];
  const body = rows.map((r) => [
    r.figure,
    r.generator,
    formatValue(r),
    r.baseline === null ? '—' : `${fmt(r.baseline, r.unit)} (${r.baselineLabel ?? ''})`,
    r.ratio === null ? '—' : `${r.ratio < 0.1 ? r.ratio.toPrecision(2) : r.ratio.toFixed(2)}×`,
    r.target,
    r.met === null ? (r.target.startsWith('—') ? '—' : 'n/a') : r.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const sep = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  const notes = rows.filter((r) => r.note).map((r) => `- ${r.id}: ${r.note}`);
  return [line(header), sep, ...body.map(line), '', 'notes:', ...notes].join('\n');
}

export function writeResults(
  dir: string,
  meta: Record<string, unknown>,
  rows: readonly Row[],
): { file: string; latest: string } {
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = join(dir, `bench-${String(meta.profile)}-${stamp}.json`);
  const body = JSON.stringify({ ...meta, rows }, null, 2);
  writeFileSync(file, body);
  const latest = join(dir, `latest-${String(meta.profile)}.json`);
  writeFileSync(latest, body);
  return { file, latest };
}
