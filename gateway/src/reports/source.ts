/**
 * The read port reports compute from, `ReportSource`: declared in gateway/src/store/reports.ts (its
 * adapters: store/sqlite/reports/source.ts, store/postgres/reports.ts; memory-source.ts serves fixtures) and
 * re-exported here with the data types, so the reports import it from their own folder.
 */
export type { ReportSource } from '../store/reports.js';
export type { Registries, ReportVisit, TapCount, UtcWindow } from '../store/report-types.js';

/** Drains a chunked iterable into one array (fixtures, small reports). */
export async function collect<T>(it: AsyncIterable<readonly T[]>): Promise<T[]> {
  const out: T[] = [];
  for await (const chunk of it) for (const x of chunk) out.push(x);
  return out;
}
