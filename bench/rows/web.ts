/**
 * Web app rows (issue 13): the technician's readers page and a coordinator's live day view on a real gateway
 * whose SQLite file holds N readers and M visits, in real headless Chromium (bench/lib/web-bench.ts, in its own
 * process). The value is the median time from navigation to the first table rows on screen over 5 fresh
 * loads; the page's API query (p50/p99 of 50 calls with the same session) is in the note and the target.
 */
import type { WebBenchResult } from '../lib/web-bench.js';
import type { RowContext } from '../lib/ctx.js';
import type { ProfileName, Row } from '../lib/types.js';

export const WEB_SIZES: Record<ProfileName, { readers: number; visits: number }> = {
  smoke: { readers: 200, visits: 20_000 },
  quick: { readers: 1_000, visits: 100_000 },
  full: { readers: 10_000, visits: 1_000_000 },
};

export const WEB_TARGET = 'first rows ≤ 2,000 ms, API p99 ≤ 500 ms';
export const webFigure = (page: string, p: ProfileName): string =>
  `${page}: first rows in Chromium, ${WEB_SIZES[p].readers.toLocaleString('en')} readers, ${WEB_SIZES[p].visits.toLocaleString('en')} visits stored`;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const ms = (x: number) => Math.round(x);

export async function webRows(ctx: RowContext): Promise<Row[]> {
  const size = WEB_SIZES[ctx.profile.name];
  const w = await ctx.worker('web', 'web-host', ['--max-old-space-size=4096']);
  const r = await w.call<WebBenchResult>('web', size, 1_200_000);
  const mib = `${(r.dbBytes / 1_048_576).toFixed(0)} MiB`;
  const page = (
    id: string,
    name: string,
    render: number[],
    api: { p50: number; p99: number },
    what: string,
  ): Row => {
    const m = median(render);
    return ctx.done({
      id,
      figure: webFigure(name, ctx.profile.name),
      generator: 'web app in Chromium (worker process)',
      value: ms(m),
      display: `${ms(m)} ms; API p50 ${ms(api.p50)} / p99 ${ms(api.p99)} ms`,
      unit: 'ms',
      baseline: null,
      baselineLabel: null,
      ratio: null,
      target: WEB_TARGET,
      met: m <= 2000 && api.p99 <= 500,
      note:
        `${what}; loads ${render.map(ms).join(' / ')} ms; database ${mib}; ` +
        `set-up (schema, ${r.visits} visits written, plan imported) ${(r.seedMs / 1000).toFixed(1)} s`,
      details: { ...r },
    });
  };
  return [
    page(
      'web-readers-page',
      "technician's readers page",
      r.readersRenderMs,
      r.readersApiMs,
      `${r.readers} readers, 100 a page; API GET /api/readers?limit=100 (the whole list, as scripts read it: p50 ${ms(r.readersAllApiMs.p50)} / p99 ${ms(r.readersAllApiMs.p99)} ms)`,
    ),
    page(
      'web-day-view',
      "coordinator's live day view",
      r.dayRenderMs,
      r.dayApiMs,
      `one area's day: ${r.dayPlanned} planned visits, ${r.dayStarted} started; API GET /api/day`,
    ),
  ];
}
