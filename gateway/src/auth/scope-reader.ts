import type { AnomalyListRow as ScopedAnomaly, ScopedUnknownCard, VisitRow } from '../store/ports.js';
import type { DataScope } from './scope.js';

type Awaitable<T> = T | Promise<T>;

/**
 * The scoped reads of care data that auth/scoped-routes.ts puts in front of other modules' routes, on
 * either engine: the SQLite file's (store/sqlite/scope.ts, synchronous, the embedded gateway) or
 * PostgreSQL's (store/postgres/care.ts `PgCareScopeReader`, `store.engine: "postgres"`, read per request so
 * a client moved to another area, or a period locked on another instance, counts from the next request
 * on). Every read filters by the caller's areas (and provider) inside the query.
 */
export interface ScopeReader {
  clients(s: DataScope): Awaitable<Set<string>>;
  clientInScope(s: DataScope, clientRef: string | null): Awaitable<boolean>;
  /** Clients of the area outside the scope's provider (none when the scope has no provider). */
  foreignClientsOfArea(s: DataScope, areaId: string): Awaitable<number>;
  staffInScope(s: DataScope, staffRef: string): Awaitable<boolean>;
  visits(
    s: DataScope,
    q: { state: 'open' | 'recent'; readerId?: string | undefined; limit: number },
  ): Awaitable<VisitRow[]>;
  /** Which of these visits were withdrawn as a mistake (`readerId/visitId` keys). */
  withdrawnOf(visits: readonly { readerId: string; visitId: string }[]): Awaitable<Set<string>>;
  /** The stored rows of a visit id that are in scope (null: every one). */
  visitById(s: DataScope | null, visitId: string): Awaitable<VisitRow[]>;
  anomalies(
    s: DataScope,
    q: { kind?: string | undefined; readerId?: string | undefined; limit: number },
  ): Awaitable<ScopedAnomaly[]>;
  unknownCards(s: DataScope, limit: number): Awaitable<ScopedUnknownCard[]>;
  plannedVisitInScope(s: DataScope, plannedVisitId: string): Awaitable<boolean>;
  cardSeenInScope(s: DataScope, cardRef: string): Awaitable<boolean>;
}

/** A reader that forwards every call to whichever reader `current` returns at the time of the call. */
export function delegateScopes(current: () => ScopeReader): ScopeReader {
  return {
    clients: (s) => current().clients(s),
    clientInScope: (s, c) => current().clientInScope(s, c),
    foreignClientsOfArea: (s, a) => current().foreignClientsOfArea(s, a),
    staffInScope: (s, r) => current().staffInScope(s, r),
    visits: (s, q) => current().visits(s, q),
    withdrawnOf: (v) => current().withdrawnOf(v),
    visitById: (s, id) => current().visitById(s, id),
    anomalies: (s, q) => current().anomalies(s, q),
    unknownCards: (s, l) => current().unknownCards(s, l),
    plannedVisitInScope: (s, id) => current().plannedVisitInScope(s, id),
    cardSeenInScope: (s, c) => current().cardSeenInScope(s, c),
  };
}
