/**
 * Care plan rows (issue 11): a plan of N clients × 4 visits a day × D days imported and matched into a real
 * gateway SQLite file (one import per area of 20 clients), then one area's next two weeks re-imported and
 * re-matched against real executed visits. Measured in its own process (bench/workers/care-host.ts).
 */
import type { CareBenchResult } from './care-bench.js';
import type { RowContext } from '../lib/ctx.js';
import type { ProfileName, Row } from '../lib/types.js';

export const CARE_SIZES: Record<ProfileName, { clients: number; days: number }> = {
  smoke: { clients: 20, days: 30 },
  quick: { clients: 300, days: 60 },
  full: { clients: 300, days: 550 },
};

const mib = (b: number) => `${(b / 1_048_576).toFixed(0)} MiB`;

export const careImportFigure = (p: ProfileName): string =>
  `care plan import + match, ${CARE_SIZES[p].clients} clients × 4 visits × ${CARE_SIZES[p].days} days`;
export const CARE_REIMPORT_FIGURE = "care plan re-import + rematch of one area's next two weeks";

export async function careRows(ctx: RowContext): Promise<Row[]> {
  const size = CARE_SIZES[ctx.profile.name];
  const w = await ctx.worker('care', 'care-host', ['--max-old-space-size=4096']);
  const r = await w.call<CareBenchResult>('plan', size, 1_200_000);
  const importS = r.importMs / 1000;
  const areas = Math.ceil(r.clients / 20);
  const rows: Row[] = [
    ctx.done({
      id: 'care-plan-import',
      figure: careImportFigure(ctx.profile.name),
      generator: 'care plan service (worker process)',
      value: Number(importS.toFixed(2)),
      unit: 's',
      baseline: null,
      baselineLabel: null,
      ratio: null,
      target: '≤ 30 s (550 days)',
      met: importS <= 30,
      note:
        `${r.clients * 4 * r.days} planned visits in ${areas} imports (one per area of 20 clients), each matched; ` +
        `database ${mib(r.dbBytes)} after the import; ${Math.round((r.clients * 4 * r.days) / Math.max(importS, 0.001))} planned visits/s`,
      details: { ...r },
    }),
  ];
  const reS = r.reimportMs / 1000;
  rows.push(
    ctx.done({
      id: 'care-plan-reimport',
      figure: CARE_REIMPORT_FIGURE,
      generator: 'care plan service (worker process)',
      value: Number(reS.toFixed(3)),
      unit: 's',
      baseline: null,
      baselineLabel: null,
      ratio: null,
      target: '≤ 1 s',
      met: reS <= 1,
      note: `${r.reimportRows} planned visits replaced and rematched against ${r.executedVisits} executed visits, on top of the full plan`,
      details: { ...r },
    }),
  );
  return rows;
}
