/** `T` from SQLite (synchronous), `Promise<T>` from an engine with round trips: callers always await. */
export type Awaitable<T> = T | Promise<T>;

/** One change, as recorded: who, when, what, on what, the state before and after, and why. */
export interface AuditEntry {
  seq: number;
  atMs: number;
  /** 'user:<name>', 'token:<name>', 'admin-token', 'cli:<os user>'. */
  actor: string;
  /** e.g. 'user.create', 'user.update', 'token.create', 'visit.close', 'card.assign'. */
  action: string;
  /** What was changed, e.g. 'user:u_…', 'visit:v_…', 'reader:r-12'. */
  target: string;
  before: unknown;
  after: unknown;
  reason: string | null;
}

export type NewAuditEntry = Omit<AuditEntry, 'seq'>;

export interface AuditQuery {
  /** Entries with seq < beforeSeq (paging backwards); newest first. */
  beforeSeq?: number;
  limit: number;
  action?: string;
  actor?: string;
}

/**
 * The audit log port: append and read, nothing else (no update, no delete: append-only by construction,
 * and the SQLite adapter's triggers refuse UPDATE and DELETE underneath).
 */
export interface AuditStore {
  append(e: NewAuditEntry): Awaitable<AuditEntry>;
  list(q: AuditQuery): Awaitable<AuditEntry[]>;
  /** Every entry, oldest first, for export. */
  all(): Awaitable<AuditEntry[]>;
}
