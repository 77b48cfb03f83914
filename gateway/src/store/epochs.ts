import type { Awaitable } from './awaitable.js';

/**
 * The port for recorded journal epochs (how ingest uses them: gateway/src/ingest/epochs.ts). SQLite answers
 * synchronously (sqlite/epochs.ts), PostgreSQL with a Promise (postgres/epochs.ts).
 */

/** One recorded epoch of a reader. */
export interface EpochRow {
  epoch: string;
  /** Gateway seq = offset + device seq. */
  offset: number;
  openedAtMs: number;
}

export interface EpochLog {
  /** The reader's recorded epochs, by offset ascending. */
  epochs(readerId: string): Awaitable<EpochRow[]>;
  /**
   * Records `row` for the reader unless that epoch is recorded already (another gateway instance may have
   * done it): durable when the answer comes. Answers the reader's recorded epochs after it.
   */
  open(readerId: string, row: EpochRow): Awaitable<EpochRow[]>;
  /** The stored event JSON at one gateway seq (undefined: none, or deleted by retention). */
  storedEvent(readerId: string, seq: number): Awaitable<string | undefined>;
}
