import type { CommandResult, EventTime, Status, TapEvent } from '../../../protocol/index.js';
import type { Awaitable } from './awaitable.js';

/**
 * The narrow storage interface ingest and the reader registry need. SQLite implements it today
 * (sqlite/ingest-store.ts); a PostgreSQL implementation can serve several gateway instances later
 * (docs/design.md, "Storage"): `commit` must then be one transaction with the same INSERT … ON CONFLICT DO
 * NOTHING dedupe on (reader_id, seq) and a row lock on reader_seq.
 */
export interface ReaderRecord {
  readerId: string;
  passwordHash: string;
  clientRef: string | null;
  label: string | null;
  revokedAt: number | null;
  createdAt: number;
}

export interface SeqRange {
  from: number;
  to: number;
}

export interface ReaderSeqState {
  contiguousUpto: number;
  maxSeen: number;
}

/** One unit of work for a group commit. */
export type IngestItem =
  | {
      kind: 'events';
      readerId: string;
      events: readonly TapEvent[];
      /** Events that can never be valid, by sequence number (held as rejected). */
      invalid?: ReadonlyArray<{ seq: number; detail: string }>;
      sentAt: EventTime;
      receivedAtMs: number;
    }
  | { kind: 'status'; readerId: string; status: Status; receivedAtMs: number }
  | { kind: 'command-result'; readerId: string; result: CommandResult; receivedAtMs: number }
  | { kind: 'reject'; readerId: string | null; reason: string; detail: string; atMs: number };

export interface ReaderCommitOutcome {
  readerId: string;
  upTo: number;
  maxSeen: number;
  /** Missing ranges above upTo (bounded list). */
  gaps: SeqRange[];
  inserted: number;
  duplicates: number;
  /** Sequences that arrived again with different content (first kept). */
  conflicts: number[];
  /** Sequences held as invalid events (recorded now or before). */
  invalidEvents: Array<{ seq: number; detail: string }>;
}

export interface CommitOutcome {
  /** Readers that sent events in this commit. */
  readers: Map<string, ReaderCommitOutcome>;
  inserted: number;
  duplicates: number;
  conflicts: number;
}

/**
 * The events of a commit that are new for the visits engine, per item: above the reader's contiguous mark before
 * the commit (at or below it they were duplicates), with the seqs the commit found held with other content (the
 * engine must not take those from memory). Used by the ingest and by the writer thread (visits/engine-worker.ts).
 */
export function newlyCommitted(
  items: readonly IngestItem[],
  outcome: CommitOutcome,
  markBefore: (readerId: string) => number,
): Array<{ readerId: string; events: TapEvent[]; conflicts: readonly number[] }> {
  const out: Array<{ readerId: string; events: TapEvent[]; conflicts: readonly number[] }> = [];
  for (const item of items) {
    if (item.kind !== 'events' || item.events.length === 0) continue;
    const o = outcome.readers.get(item.readerId);
    if (!o) continue;
    const before = markBefore(item.readerId);
    const events = item.events.filter((e) => e.seq > before);
    if (events.length) out.push({ readerId: item.readerId, events, conflicts: o.conflicts });
  }
  return out;
}

export interface RejectSummary {
  reason: string;
  count: number;
  lastAtMs: number;
  lastDetail: string;
}

export interface StoredStatus {
  status: unknown;
  receivedAtMs: number;
}

/**
 * What the ingest group commit (gateway/src/ingest) needs: each method one unit of work. SQLite's
 * IngestStore answers synchronously (the group commit stays synchronous, no promise on the hot path);
 * PostgreSQL's (postgres/ingest-store.ts) with a Promise, one transaction per commit under per-reader
 * advisory locks. Callers handle both (`settle` in ./awaitable.ts).
 */
export interface IngestLog {
  commit(items: readonly IngestItem[]): Awaitable<CommitOutcome>;
  seqState(readerId: string): Awaitable<ReaderSeqState>;
  gaps(readerId: string, limit: number): Awaitable<SeqRange[]>;
  readersWithGaps(): Awaitable<Array<{ readerId: string; contiguousUpto: number; maxSeen: number }>>;
}

/**
 * The reader registry's table as the registry (gateway/src/registry.ts) uses it: reads answer
 * synchronously (login, admission and the reader pages are on the hot path), writes may answer with a
 * Promise. SQLite's IngestStore is one (its writes are synchronous transactions). On PostgreSQL,
 * `PgReaderDirectory` (postgres/reader-directory.ts) keeps an in-memory snapshot of `readers` that
 * every instance shares: writes go to the snapshot at once and through to PostgreSQL in order, and
 * changes other instances make arrive by LISTEN/NOTIFY (and a periodic pull) as `onRemoteChange`.
 */
export interface ReaderDirectory {
  getReader(readerId: string): ReaderRecord | undefined;
  listReaders(): ReaderRecord[];
  insertReader(r: ReaderRecord): Awaitable<void>;
  setPasswordHash(readerId: string, hash: string): Awaitable<void>;
  setRevoked(readerId: string, atMs: number | null): Awaitable<void>;
  setClientRef(readerId: string, clientRef: string | null, atMs: number): Awaitable<void>;
  authTags: IngestStore['authTags'];
  /** A shared directory: `fn(before, after)` for each reader row another instance added or changed. */
  onRemoteChange?(fn: (before: ReaderRecord | undefined, after: ReaderRecord) => void): void;
}

export interface IngestStore {
  /** Applies every item in ONE durable transaction; returns per-reader sequence state after it. */
  commit(items: readonly IngestItem[]): CommitOutcome;
  seqState(readerId: string): ReaderSeqState;
  gaps(readerId: string, limit: number): SeqRange[];
  /** Readers whose max_seen is above their contiguous high-water mark. */
  readersWithGaps(): Array<{ readerId: string; contiguousUpto: number; maxSeen: number }>;
  countEvents(readerId?: string): number;
  rejectSummary(readerId: string): RejectSummary[];
  lastStatus(readerId: string): StoredStatus | undefined;

  getReader(readerId: string): ReaderRecord | undefined;
  listReaders(): ReaderRecord[];
  insertReader(r: ReaderRecord): void;
  setPasswordHash(readerId: string, hash: string): void;
  setRevoked(readerId: string, atMs: number | null): void;
  setClientRef(readerId: string, clientRef: string | null, atMs: number): void;
  /** Verified-credential tags (see broker/credentials.ts). */
  authTags: {
    get(readerId: string): Buffer | undefined;
    set(readerId: string, tag: Buffer): void;
    delete(readerId: string): void;
    /** Writes buffered tags now (before closing the database). */
    flush(): void;
  };
}
