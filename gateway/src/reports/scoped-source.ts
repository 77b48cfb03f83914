/**
 * A ReportSource limited to some areas: the registries keep the clients (and areas, teams) of those areas,
 * and the plan, matches and executed visits keep only those clients' rows. Visits with no known client
 * belong to no area and are left out. Used for callers whose role is scoped to areas (coordinators, unit
 * managers): they see figures for their areas (and provider) only.
 */
import type { Registries, ReportSource } from './source.js';

async function* filtered<T>(
  it: AsyncIterable<readonly T[]>,
  keep: (x: T) => boolean,
): AsyncIterable<readonly T[]> {
  for await (const chunk of it) {
    const out = chunk.filter(keep);
    if (out.length) yield out;
  }
}

export interface ReportScope {
  areas: readonly string[];
  /** When set, only that provider's clients. */
  provider: string | null;
}

export function scopedSource(source: ReportSource, scope: ReportScope): ReportSource {
  const allowed = new Set(scope.areas);
  let clients: Promise<Set<string>> | undefined;
  const registries = async (): Promise<Registries> => {
    const r = await source.registries();
    return {
      ...r,
      areas: r.areas.filter((a) => allowed.has(a.areaId)),
      teams: r.teams.filter((t) => allowed.has(t.areaId)),
      providers: r.providers.filter((p) => scope.provider === null || p.providerId === scope.provider),
      clients: r.clients.filter(
        (c) => allowed.has(c.areaId) && (scope.provider === null || c.providerId === scope.provider),
      ),
    };
  };
  const clientSet = () => (clients ??= registries().then((r) => new Set(r.clients.map((c) => c.clientRef))));
  const lazy = <T>(make: (cs: Set<string>) => AsyncIterable<readonly T[]>): AsyncIterable<readonly T[]> => ({
    async *[Symbol.asyncIterator]() {
      yield* make(await clientSet());
    },
  });
  return {
    registries,
    planned: (w) => lazy((cs) => filtered(source.planned(w), (p) => cs.has(p.clientRef))),
    matches: (w) => lazy((cs) => filtered(source.matches(w), (m) => cs.has(m.clientRef))),
    // Taps of other readers are dropped by the report itself (only readers with visits in it count).
    ...(source.tapAssurance
      ? {
          tapAssurance: (w: Parameters<NonNullable<ReportSource['tapAssurance']>>[0]) =>
            source.tapAssurance!(w),
        }
      : {}),
    // Aggregated by the source, limited to the scope's clients.
    ...(source.executedCells
      ? {
          executedCells: async (
            w: Parameters<NonNullable<ReportSource['executedCells']>>[0],
            params: Parameters<NonNullable<ReportSource['executedCells']>>[1],
            clock: Parameters<NonNullable<ReportSource['executedCells']>>[2],
            clients: readonly string[] | null,
          ) => {
            const cs = await clientSet();
            return source.executedCells!(
              w,
              params,
              clock,
              (clients ?? [...cs]).filter((c) => cs.has(c)),
            );
          },
        }
      : {}),
    ...(source.continuityCells
      ? {
          continuityCells: async (
            w: Parameters<NonNullable<ReportSource['continuityCells']>>[0],
            params: Parameters<NonNullable<ReportSource['continuityCells']>>[1],
            clock: Parameters<NonNullable<ReportSource['continuityCells']>>[2],
            clients: readonly string[] | null,
          ) => {
            const cs = await clientSet();
            return source.continuityCells!(
              w,
              params,
              clock,
              (clients ?? [...cs]).filter((c) => cs.has(c)),
            );
          },
        }
      : {}),
    ...(source.qualityCells
      ? {
          qualityCells: async (
            w: Parameters<NonNullable<ReportSource['qualityCells']>>[0],
            lateDeliveryHours: number | undefined,
            clients: readonly string[] | null,
          ) => {
            const cs = await clientSet();
            return source.qualityCells!(
              w,
              lateDeliveryHours,
              (clients ?? [...cs]).filter((c) => cs.has(c)),
            );
          },
        }
      : {}),
    executed: (w) =>
      lazy((cs) => filtered(source.executed(w), (v) => v.clientRef !== null && cs.has(v.clientRef))),
  };
}
