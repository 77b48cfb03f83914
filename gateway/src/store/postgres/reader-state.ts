import type { IngestStore, ReaderSeqState, RejectSummary, SeqRange, StoredStatus } from '../ingest-store.js';
import type { PgPool } from './db.js';
import type { PgIngestStore } from './ingest-store.js';

/** Readers whose gaps are listed per refresh (the rest show the flag without the ranges until a later one). */
const MAX_GAP_READERS = 200;

type ReaderStateReads = Pick<
  IngestStore,
  'seqState' | 'gaps' | 'readersWithGaps' | 'countEvents' | 'rejectSummary' | 'lastStatus'
>;

/**
 * The reader pages' reads (sequence state, gaps, last status, rejects, event count, replacement links) answered
 * synchronously from a copy of PostgreSQL's rows, for the admin reader routes and alerts that call the
 * synchronous `IngestStore` (`store.engine: "postgres"`, gateway/pg-instance.ts). `refresh` reads every
 * reader's sequence state and last status (one statement each) and the gaps of the readers that have
 * some; a reader's rejects and event count are read when first asked for and again on later asks (the
 * answer is the one of the previous read). So the pages are at most one refresh old.
 */
export class PgReaderState implements ReaderStateReads {
  private seq = new Map<string, ReaderSeqState>();
  private gapList = new Map<string, SeqRange[]>();
  private status = new Map<string, StoredStatus>();
  private replaced = new Map<string, { replacedBy: string | null; replaces: string | null }>();
  private readonly rejects = new Map<string, RejectSummary[]>();
  private readonly counts = new Map<string, number>();
  private readonly asked = new Set<string>();
  constructor(
    private readonly pool: PgPool,
    private readonly store: Pick<PgIngestStore, 'gaps' | 'rejectSummary' | 'countEvents'>,
  ) {}

  async refresh(): Promise<void> {
    const seq = await this.pool.query<{ r: string; u: number; m: number }>(
      'SELECT reader_id AS r, contiguous_upto AS u, max_seen AS m FROM reader_seq',
    );
    const nextSeq = new Map(seq.rows.map((x) => [x.r, { contiguousUpto: x.u, maxSeen: x.m }]));
    const gaps = new Map<string, SeqRange[]>();
    const withGaps = seq.rows.filter((x) => x.m > x.u).slice(0, MAX_GAP_READERS);
    for (const x of withGaps) gaps.set(x.r, await this.store.gaps(x.r, 50));
    const st = await this.pool.query<{ r: string; j: string; at: number }>(
      'SELECT reader_id AS r, status_json AS j, received_at_ms AS at FROM reader_status',
    );
    const status = new Map<string, StoredStatus>();
    for (const x of st.rows) {
      try {
        status.set(x.r, { status: JSON.parse(x.j) as unknown, receivedAtMs: x.at });
      } catch {
        // a row that is not JSON: shown as no status
      }
    }
    for (const r of [...this.asked]) {
      this.rejects.set(r, await this.store.rejectSummary(r));
      this.counts.set(r, await this.store.countEvents(r));
    }
    this.asked.clear();
    // reader replacements (few rows, rare): the reader pages' replacedBy / replaces links
    const rr = await this.pool.query<{ o: string; n: string }>(
      'SELECT old_reader_id AS o, new_reader_id AS n FROM reader_replacements',
    );
    const replaced = new Map<string, { replacedBy: string | null; replaces: string | null }>();
    const at = (id: string) => replaced.get(id) ?? { replacedBy: null, replaces: null };
    for (const x of rr.rows) {
      replaced.set(x.o, { ...at(x.o), replacedBy: x.n });
      replaced.set(x.n, { ...at(x.n), replaces: x.o });
    }
    this.seq = nextSeq;
    this.gapList = gaps;
    this.status = status;
    this.replaced = replaced;
  }

  /** The reader's replacement links (fleet/replace.ts), as of the last refresh. */
  links(readerId: string): { replacedBy: string | null; replaces: string | null } {
    return this.replaced.get(readerId) ?? { replacedBy: null, replaces: null };
  }

  seqState(readerId: string): ReaderSeqState {
    return this.seq.get(readerId) ?? { contiguousUpto: 0, maxSeen: 0 };
  }
  gaps(readerId: string, limit: number): SeqRange[] {
    return (this.gapList.get(readerId) ?? []).slice(0, limit);
  }
  readersWithGaps(): Array<{ readerId: string; contiguousUpto: number; maxSeen: number }> {
    return [...this.seq]
      .filter(([, s]) => s.maxSeen > s.contiguousUpto)
      .map(([readerId, s]) => ({ readerId, ...s }))
      .sort((a, b) => (a.readerId < b.readerId ? -1 : a.readerId > b.readerId ? 1 : 0));
  }
  lastStatus(readerId: string): StoredStatus | undefined {
    return this.status.get(readerId);
  }
  rejectSummary(readerId: string): RejectSummary[] {
    this.asked.add(readerId);
    return this.rejects.get(readerId) ?? [];
  }
  countEvents(readerId?: string): number {
    if (readerId === undefined) return [...this.counts.values()].reduce((a, b) => a + b, 0);
    this.asked.add(readerId);
    return this.counts.get(readerId) ?? 0;
  }
}
