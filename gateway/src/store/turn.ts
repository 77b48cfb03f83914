/**
 * Thrown by a visits-turn view (VisitTx) that must fetch data before it can answer (PostgreSQL: the
 * view is synchronous, the database is not). The adapter catches it at the turn's top, fetches, and
 * runs the turn's work again from the start over the fetched data, with none of the failed run's writes
 * kept. Work that catches errors (a faulty event skipped in a savepoint) must rethrow this one; if it
 * swallows it anyway, the adapter still discards that run and runs it again.
 */
export class TurnNeedsData extends Error {
  constructor(readonly key: string) {
    super(`visits turn needs ${key} (the adapter fetches it and runs the turn again)`);
    this.name = 'TurnNeedsData';
  }
}

export const isTurnRetry = (err: unknown): boolean => err instanceof TurnNeedsData;
