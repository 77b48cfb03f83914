/**
 * Report rows: executed vs planned over 18 months of a 300-client municipality (≈ 650,000 visits) and the
 * 14-day continuity measure for 10,000 clients, each read from a real gateway SQLite file (the database size
 * is given) including the care plan's tables (registries, plan, matches), plus the pure computation on facts
 * already in memory.
 */
import type { ReportBenchResult } from '../lib/report-bench.js';
import type { RowContext } from '../lib/ctx.js';
import type { ProfileName, Row } from '../lib/types.js';

export const REPORT_SIZES: Record<ProfileName, { clients: number; days: number; contClients: number }> = {
  smoke: { clients: 20, days: 30, contClients: 200 },
  quick: { clients: 300, days: 60, contClients: 2_000 },
  full: { clients: 300, days: 546, contClients: 10_000 },
};

const mb = (b: number) => `${(b / 1_048_576).toFixed(0)} MiB`;

function row(id: string, figure: string, r: ReportBenchResult): Row {
  const s = r.wallMs / 1000;
  return {
    id,
    figure,
    generator: 'report engine (worker process)',
    value: Number(s.toFixed(2)),
    unit: 's',
    baseline: r.oldWallMs === null ? null : Number((r.oldWallMs / 1000).toFixed(2)),
    baselineLabel:
      r.oldWallMs === null ? null : `${r.oldLabel ?? 'the same report computed in memory'} (before)`,
    ratio: r.oldWallMs === null ? null : Number((r.wallMs / r.oldWallMs).toFixed(3)),
    target: '≤ 2 s',
    met: s <= 2,
    note:
      `${r.visits} visits, ${r.planned} planned; database ${mb(r.dbBytes)}` +
      (r.cellBytes === null ? '' : ` (report cells ${mb(r.cellBytes)})`) +
      `; computation alone ${(r.pureMs / 1000).toFixed(2)} s (median of 3); ${r.figure}; everything read from the gateway SQLite file (visits, care tables)` +
      (r.from === null
        ? ''
        : `; from the cells kept at write time (built from scratch in ${(r.buildMs! / 1000).toFixed(1)} s once; one day's visits rewritten, then the report with its refresh: ${(r.afterDayWriteMs! / 1000).toFixed(2)} s)`) +
      (r.oldWallMs === null
        ? ''
        : `; against ${r.oldLabel ?? 'the same report computed in memory'} in the same process, alternately (old runs ${r.oldRunsMs.map((x) => (x / 1000).toFixed(2)).join(' / ')} s, same report digest)`) +
      `; runs ${r.runsMs.map((x) => (x / 1000).toFixed(2)).join(' / ')} s at load ${r.load.map((x) => x.toFixed(1)).join(' -> ')}` +
      (r.scoped === null
        ? ''
        : `; scoped to ${r.scoped.label}: ${(r.scoped.wallMs / 1000).toFixed(2)} s (${r.scoped.from ?? '?'}, median of ${r.scoped.runsMs.length}) vs ${(r.scoped.onTheFlyMs / 1000).toFixed(2)} s on the fly, same digest`),
    details: { ...r },
  };
}

export async function reportRows(ctx: RowContext): Promise<Row[]> {
  const size = REPORT_SIZES[ctx.profile.name];
  const w = await ctx.worker('reports', 'reports-host', ['--max-old-space-size=6144']);
  const e = await w.call<ReportBenchResult>(
    'executed',
    { clients: size.clients, days: size.days },
    2_400_000, // 18 months: generating the file alone took 10 min at load 17
  );
  const rows = [
    ctx.done(
      row(
        'report-executed-vs-planned',
        `executed vs planned, ${size.clients} clients × ${size.days} days, per area and month`,
        e,
      ),
    ),
  ];
  const c = await w.call<ReportBenchResult>('continuity', { clients: size.contClients }, 1_200_000);
  rows.push(ctx.done(row('report-continuity', `continuity (14 days), ${size.contClients} clients`, c)));
  return rows;
}
