/** Text output of a run: the summary table and one-line schedule results. */
import type { RunReport } from './run.js';

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const hm = (ms: number) =>
  `${Math.floor(ms / 3_600_000)} h ${String(Math.round((ms % 3_600_000) / 60_000)).padStart(2, '0')} min`;
const kv = (o: Record<string, number>) =>
  Object.entries(o)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || 'none';

export function summaryTable(r: RunReport, replay: string): string {
  const rows: [string, string][] = [
    ['seed', `${r.seed}   (replay: ${replay})`],
    ['gateway', r.gateway],
    [
      'taps',
      `${r.counts.taps} (${kv(r.counts.feedback)}); retried after a dead reader: ${r.counts.retriedTaps}`,
    ],
    ['backend events', kv(r.counts.backendEvents)],
    [
      'visits',
      `${r.counts.backendEvents['visit.started'] ?? 0} started, ${r.counts.backendEvents['visit.ended'] ?? 0} ended`,
    ],
    ['anomalies', kv(r.counts.anomalies)],
    ['redeliveries', `${r.counts.redeliveries} (deduped by idempotency key)`],
    ['faults injected', kv(r.faults)],
    ['faults skipped', r.skippedFaults.join(', ') || 'none'],
    ['simulated day', hm(r.virtualDayMs)],
    ['drain time', `${hm(r.drainMs)} virtual after the day (until queues, outbox and auto-closes settle)`],
    ['wall time', secs(r.wallMs)],
  ];
  const lines = rows.map(([k, v]) => `  ${pad(k, 16)} ${v}`);
  lines.push('', '  invariant checks:');
  for (const c of r.results) {
    const mark = c.ok ? 'PASS' : c.severity === 'invariant' ? 'FAIL' : 'WARN';
    lines.push(`    ${mark}  ${pad(c.name, 34)} ${c.summary}`);
    for (const f of c.failures.slice(0, 8)) lines.push(`            - ${f}`);
    if (c.failures.length > 8) lines.push(`            … ${c.failures.length - 8} more (see evidence.json)`);
  }
  if (r.artifacts && !r.ok)
    lines.push('', `  artifacts kept in ${r.artifacts} (evidence.json, gateway.db, journals)`);
  return lines.join('\n');
}

export function scheduleLine(r: RunReport): string {
  const failed = r.results.filter((c) => !c.ok && c.severity === 'invariant').map((c) => c.name);
  const warn = r.results.filter((c) => !c.ok && c.severity === 'quality').map((c) => c.name);
  return (
    `seed ${String(r.seed).padStart(6)}  ${r.ok ? 'PASS' : 'FAIL'}  taps ${String(r.counts.taps).padStart(5)}  ` +
    `faults ${
      Object.keys(r.faults)
        .filter((k) => !k.includes(':'))
        .join(',') || '-'
    }  ${secs(r.wallMs)}` +
    (failed.length ? `  breaches: ${failed.join(', ')}` : '') +
    (warn.length ? `  warnings: ${warn.join(', ')}` : '')
  );
}
