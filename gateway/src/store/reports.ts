/**
 * The read port reports compute from (gateway/src/reports/): the facts, never a table. One call per unit of
 * work (a report asks for the registries once, then the plan, the matches and the executed visits of its UTC
 * window), async, so an adapter can page through SQLite (store/sqlite/reports/source.ts, which also
 * aggregates cells in SQL), read PostgreSQL (store/postgres/reports.ts) or serve fixtures
 * (reports/memory-source.ts).
 *
 * The vocabulary is the care plan's (store/care-model.ts); reports add only what data quality needs (when
 * the gateway received a visit's taps). The data types are in report-types.ts.
 */
import type { Match, PlannedVisit } from './care-model.js';
import type { ReportClock } from './report-time.js';
import type {
  ContinuityCellParams,
  ContinuityCells,
  ExecutedCells,
  ExecutedParams,
  QualityCell,
  Registries,
  ReportVisit,
  TapCount,
  UtcWindow,
} from './report-types.js';

export type { Registries, ReportVisit, TapCount, UtcWindow } from './report-types.js';

export interface ReportSource {
  registries(): Promise<Registries>;
  /** Planned visits (the current plan version) whose startMs lies in the window. */
  planned(w: UtcWindow): AsyncIterable<readonly PlannedVisit[]>;
  /** Matches of planned visits in the window and of unplanned executed visits that started in it. */
  matches(w: UtcWindow): AsyncIterable<readonly Match[]>;
  /** Executed visits that started in the window (or, without a start, ended in it), in chunks. */
  executed(w: UtcWindow): AsyncIterable<readonly ReportVisit[]>;
  /**
   * Taps received in the window by reader and assurance level, not counting refused taps; null when the
   * gateway does not check secure cards (nothing recorded: every tap is UID only). Optional.
   */
  tapAssurance?(w: UtcWindow): Promise<TapCount[] | null>;
  /**
   * Executed vs planned's cells aggregated by the source itself (SQL), equal to `executedCellsOf` over
   * `planned`, `matches` and `executed` of the window. Optional: without it reports compute in memory.
   * `clients` limits it to those clients (a scoped report); null: all.
   */
  executedCells?(
    w: UtcWindow,
    params: ExecutedParams,
    clock: ReportClock,
    clients: readonly string[] | null,
  ): Promise<ExecutedCells>;
  /**
   * The continuity measure's cells aggregated by the source itself (SQL), equal to `continuityCellsOf` over
   * `planned`, `matches` and `executed` of the window and the source's registries. Optional, like
   * `executedCells`.
   */
  continuityCells?(
    w: UtcWindow,
    params: ContinuityCellParams,
    clock: ReportClock,
    clients: readonly string[] | null,
  ): Promise<ContinuityCells>;
  /**
   * Quality cells of every executed visit of the window, aggregated by the source (SQL): what
   * `qualityCellsOf` gives over `executed(w)` in its order. Optional.
   */
  qualityCells?(
    w: UtcWindow,
    lateDeliveryHours: number | undefined,
    clients: readonly string[] | null,
  ): Promise<QualityCell[]>;
}
