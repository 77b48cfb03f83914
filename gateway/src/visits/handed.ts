import type { TapEvent } from '../../../protocol/index.js';

/**
 * What one group commit stored, per reader: its events as passed to the store, and the seqs the store
 * found already held with other content (those are not what the store holds, so they are not handed).
 */
export type CommittedEvents = ReadonlyArray<{
  readerId: string;
  events: readonly TapEvent[];
  conflicts: readonly number[];
}>;

/** Events handed over per reader: seq (gateway seq space) → the event as committed. */
type PerReader = Map<number, TapEvent>;

/**
 * Tap events the ingest just committed, handed to the visits engine in memory so it does not read
 * and re-parse (zod) the rows it was told about. Only an optimisation: the engine takes a chunk from
 * here only when every seq of it is present (a seq held as invalid, a duplicate conflict or a row
 * committed before start-up leaves a hole, and the chunk is read from the store as before). What is
 * handed is exactly what the ingest passed to the store for that seq (`JSON.stringify` of the same
 * object is the stored `event_json`), and conflicting copies are never handed.
 *
 * Bounded: beyond `max` events held, further events are not kept (their chunks are read from the store).
 */
export class HandedEvents {
  private readonly byReader = new Map<string, PerReader>();
  private held = 0;
  constructor(private readonly max = 100_000) {}

  get size(): number {
    return this.held;
  }

  /** Events of one reader in one commit, minus the seqs the commit found with other content. */
  add(readerId: string, events: readonly TapEvent[], conflicts: readonly number[]): void {
    let m = this.byReader.get(readerId);
    for (const e of events) {
      if (this.held >= this.max) return;
      if (conflicts.length && conflicts.includes(e.seq)) {
        if (m?.delete(e.seq)) this.held--;
        continue;
      }
      if (!m) {
        m = new Map();
        this.byReader.set(readerId, m);
      }
      if (!m.has(e.seq)) this.held++;
      m.set(e.seq, e);
    }
  }

  /**
   * The events with seq in (after, upto], at most `limit`, when every one of them is held; else null.
   * Entries at or below `after` are dropped on the way.
   */
  take(readerId: string, after: number, upto: number, limit: number): TapEvent[] | null {
    const m = this.byReader.get(readerId);
    if (!m) return null;
    const end = Math.min(upto, after + limit);
    const out: TapEvent[] = [];
    for (let seq = after + 1; seq <= end; seq++) {
      const e = m.get(seq);
      if (!e) return null;
      out.push(e);
    }
    return out;
  }

  /** The engine's cursor moved to `upto`: forget what it has processed. */
  processed(readerId: string, upto: number): void {
    const m = this.byReader.get(readerId);
    if (!m) return;
    for (const seq of m.keys()) {
      if (seq <= upto) {
        m.delete(seq);
        this.held--;
      }
    }
    if (m.size === 0) this.byReader.delete(readerId);
  }

  /** Forget everything (a failed turn: the store is the truth). */
  clear(): void {
    this.byReader.clear();
    this.held = 0;
  }
}
