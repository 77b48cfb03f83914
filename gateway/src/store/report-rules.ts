/**
 * The few constants and pure functions of the reports' rules that both ways of computing a report need: the
 * reports in memory (gateway/src/reports/, which re-export these names) and the SQL aggregation of the
 * SQLite adapter (store/sqlite/reports/). They live here, on the floor, so the adapter does not import a
 * feature module; the rules themselves (what a report counts and how) stay in reports/.
 */
import type { PlannedVisit } from './care-model.js';

/** The bins of the per-visit differences (executed − planned minutes), in order. */
export const DIFF_BINS = ['< -15', '-15 to -5', '-5 to +5', '+5 to +15', '> +15'] as const;

/** Ranks (0-based, in ascending order) the difference summary needs: median (one or two), p10, p90. */
export function diffRanks(n: number): { median: number[]; p10: number; p90: number } {
  const mid = n >> 1;
  const rank = (p: number) => Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1));
  return { median: n % 2 ? [mid] : [mid - 1, mid], p10: rank(10), p90: rank(90) };
}

/** Staff categories of home nursing: their visits are not home-care visits and they are not counted. */
export const EXCLUDED_CATEGORIES: readonly string[] = ['licensed-health', 'rehab'];

/** Kinds of service codes that are not home-care visits in the continuity measure. */
export const NOT_HOME_CARE_KINDS: readonly string[] = ['safety-alarm', 'meal-delivery'];

/**
 * Are the planned service codes only a safety-alarm response or a meal delivery (by their kinds in the
 * registry, `kindOf`)? An empty list is not.
 */
export function alarmOrMealOnly(
  serviceCodes: PlannedVisit['serviceCodes'],
  kindOf: (code: string) => string | undefined,
): boolean {
  if (serviceCodes.length === 0) return false;
  return serviceCodes.every((c) => NOT_HOME_CARE_KINDS.includes(kindOf(c.code) ?? ''));
}
