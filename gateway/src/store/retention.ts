/**
 * Retention and erasure's store ports (issue 16, docs/retention.md): the data classes and their periods, the
 * pruner (SQLite: ./sqlite/retention.ts, synchronous; PostgreSQL: ./postgres/retention.ts, promises) and the
 * erasure of one reference in an instance's SQLite file. The rules that are not SQL (the job's timer and
 * lease, the audit entry, the settings' schema) stay in gateway/src/retention/.
 */

export type RetentionClass =
  'rawEvents' | 'rejects' | 'outboxDelivered' | 'unknownCardAnomalies' | 'anomalies' | 'visits' | 'audit';

export const RETENTION_CLASSES: readonly RetentionClass[] = [
  'rawEvents',
  'rejects',
  'outboxDelivered',
  'unknownCardAnomalies',
  'anomalies',
  'visits',
  'audit',
];

/** Days per class ('keep' = never deleted) and rows per transaction (retention/policy.ts `RetentionSettings`). */
export type RetentionPeriods = { [K in `${RetentionClass}Days`]: number | 'keep' } & { batchRows: number };

/** Days configured for a class ('keep' = never). */
export function daysOf(s: RetentionPeriods, c: RetentionClass): number | 'keep' {
  return s[`${c}Days`];
}

/** Rows deleted per class (and table) in one run. */
export type PruneCounts = Record<RetentionClass, number>;

export const zeroCounts = (): PruneCounts =>
  Object.fromEntries(RETENTION_CLASSES.map((c) => [c, 0])) as PruneCounts;

export interface Pruner {
  /**
   * One bounded step: at most `maxBatches` transactions of at most `batchRows` rows each. `more` is true when
   * some class still has rows past retention (call again after yielding).
   */
  step(nowMs: number, maxBatches: number): { deleted: PruneCounts; more: boolean };
  /** Steps until nothing is past retention (bounded by `maxSteps`): the CLI and tests. */
  runAll(nowMs: number, maxSteps?: number): PruneCounts;
  /** False once the database is closed (a job's timer that fires after it skips its turn). */
  isOpen(): boolean;
}

export type SubjectKind = 'client' | 'staff';

export interface EraseRequest {
  kind: SubjectKind;
  ref: string;
  /** Erase even where records-law retention applies (CLI --force-records-law, API "forceRecordsLaw"). */
  force: boolean;
  nowMs: number;
}

export type EraseResult =
  | {
      ok: true;
      /** The random pseudonym that replaced the reference (and `<pseudonym>-card-N` for a staff member's cards). */
      pseudonym: string;
      /** Rows changed per table.column. */
      changed: Record<string, number>;
      cards: number;
    }
  | { ok: false; code: 'not-found' | 'records-law'; reason: string };

/** Erasure in one SQLite file (the embedded gateway's, or an instance's own file in PostgreSQL mode). */
export interface LocalErasure {
  /**
   * Erases one client's or staff member's identity in one transaction (records-law check against
   * `visitsDays`, a staff member's cards revoked and pseudonymised, every reference replaced).
   */
  erase(req: EraseRequest, visitsDays: number | 'keep'): EraseResult;
  /** Where a reference still occurs: table.column -> rows. */
  scanForRef(ref: string): Record<string, number>;
  /** Replaces each reference by the pseudonym chosen elsewhere, in one transaction; rows per table.column. */
  replaceRefs(pairs: ReadonlyArray<readonly [string, string]>): Record<string, number>;
  /** The references in this file whose keyed digest is one of `wanted` (digest -> reference). */
  findByDigest(digest: (ref: string) => string, wanted: ReadonlySet<string>): Map<string, string>;
  /** This file's mark in PostgreSQL's erasure_log (0: none applied). */
  erasureMark(): number;
  /** Replaces `pairs` and moves the mark to `upto`, in one transaction. */
  applyErasures(pairs: ReadonlyArray<readonly [string, string]>, upto: number): void;
  /** False once the file is closed. */
  isOpen(): boolean;
}

/** An instance's own SQLite file in PostgreSQL mode: its access audit log's pruner and its erasure. */
export interface LocalRetention {
  auditPruner: Pruner;
  erasure: LocalErasure;
}

/** The PostgreSQL pruner: as `Pruner`, with promises. */
export interface SharedPruner {
  step(nowMs: number, maxBatches: number): Promise<{ deleted: PruneCounts; more: boolean }>;
  runAll(nowMs: number, maxSteps?: number): Promise<PruneCounts>;
}

/** An erasure on the shared database: as `EraseResult`, with the card pseudonyms chosen (an instance's file gets the same). */
export type SharedEraseResult =
  | {
      ok: true;
      pseudonym: string;
      changed: Record<string, number>;
      cards: number;
      cardPseudonyms: Array<[string, string]>;
    }
  | { ok: false; code: 'not-found' | 'records-law'; reason: string };

/**
 * Retention and erasure on the database every instance shares (PostgreSQL: ./postgres/retention.ts
 * `PgRetentionStore`): the pruner, the job's lease, the erasure, and the erasure log through which every
 * instance applies an erasure to its own SQLite file (keyed digests only, never the reference).
 */
export interface SharedRetention {
  pruner(policy: { days: (c: RetentionClass) => number | 'keep'; batchRows: number }): SharedPruner;
  /** Takes or renews a named lease until nowMs + ttlMs; false while another holder has it. */
  tryLease(name: string, holder: string, nowMs: number, ttlMs: number): Promise<boolean>;
  erase(req: EraseRequest & { visitsDays: number | 'keep' }): Promise<SharedEraseResult>;
  /** Records (digest, pseudonym) pairs of an erasure for the other instances. */
  recordErasures(digested: ReadonlyArray<readonly [string, string]>, nowMs: number): Promise<void>;
  /** The recorded erasures after `mark`, oldest first (at most 1000). */
  erasuresSince(mark: number): Promise<Array<{ id: string; ref_digest: string; pseudonym: string }>>;
  /** Deletes the erasures recorded before `beforeMs`. */
  pruneErasureLog(beforeMs: number): Promise<void>;
}
