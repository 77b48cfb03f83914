import type { AnomalyKind, VisitEvent } from '../../../protocol/index.js';
import type { IngestStore } from './ingest-store.js';

/**
 * The gateway's storage ports, one per table group (the design is in ./README.md). Every feature
 * module depends on these interfaces only; `store/sqlite/` implements them on better-sqlite3 and
 * `store/postgres/` on PostgreSQL. The contract suites in test/contracts/store-*.contract.ts run each
 * port over every adapter.
 *
 * Granularity: one method = one unit of work (one group commit, one visits drain turn, one outbox
 * claim or mark, one admin query), and each is one transaction in the adapter.
 *
 * `Awaitable<T>`: a caller written against the port always `await`s the result (PostgreSQL answers
 * with a Promise). The SQLite adapter answers synchronously (its types say `T`), so code that holds
 * the SQLite adapter itself (the composition root, the CLI on a local file) pays no promise at all,
 * and the hot path pays at most one per unit of work, never one per row.
 */
export type Awaitable<T> = T | Promise<T>;

// ---------------------------------------------------------------------------------------------
// Visits (visit engine, anomalies, time anchors, cursor): tables visits, anomalies, visit_audit,
// visit_cursor, time_anchors, visit_meta; reads events, reader_seq, readers, reader_client_history,
// cards; writes outbox rows in the same transaction.
// ---------------------------------------------------------------------------------------------

export type TimeQuality = 'synced' | 'corrected' | 'uncorrected';

export interface VisitRow {
  readerId: string;
  visitId: string;
  clientRef: string | null;
  cardRef: string;
  staffRef: string | null;
  groupId: string | null;
  state: 'open' | 'closed';
  startedAtMs: number | null;
  startSeq: number | null;
  endedAtMs: number | null;
  endSeq: number | null;
  endReason: string | null;
  timeQuality: TimeQuality;
  anomalies: AnomalyKind[];
  lateEndSeq: number | null;
  updatedAtMs: number;
}

/** A stored tap event as the visit engine reads it (the JSON is parsed by the engine). */
export interface StoredEventRow {
  seq: number;
  event_json: string | null;
  received_at_ms: number;
}

/** A stored event row as the time-anchor scan reads it (global order by row id). */
export interface AnchorScanRow {
  id: number;
  reader_id: string;
  event_json: string | null;
  sent_at_json: string | null;
  received_at_ms: number | null;
}

export interface Anchor {
  offsetMs: number;
  exact: boolean;
}

export interface AnomalyRecord {
  key: string;
  kind: AnomalyKind;
  readerId: string;
  visitId: string | null;
  cardRef: string | null;
  staffRef: string | null;
  clientRef: string | null;
  atMs: number;
  seq: number | null;
  detail: string;
  nowMs: number;
}

export interface VisitAuditRecord {
  readerId: string;
  visitId: string;
  action: string;
  actor: string;
  reason: string;
  atMs: number;
}

/** What the gateway knows about a card at a given time. */
export type CardStatus =
  | { kind: 'unknown' }
  | { kind: 'known'; staffRef: string }
  | { kind: 'revoked'; staffRef: string; revokedAtMs: number };

/**
 * The synchronous view a visits turn works on. SQLite: live prepared statements inside one
 * transaction. PostgreSQL: the readers' state preloaded under a per-reader advisory lock, the work
 * run over an in-memory view, the recorded changes written back in one transaction.
 * Every method is synchronous: the engine's rules stay ONE implementation.
 */
export interface VisitTx {
  cursor(readerId: string): number;
  setCursor(readerId: string, upto: number): void;
  contiguousUpto(readerId: string): number;
  /** Events with seq in (after, upto], in seq order, at most `limit`. */
  events(readerId: string, after: number, upto: number, limit: number): StoredEventRow[];
  /** The client a reader served at `atMs` (history first, then the reader's current assignment). */
  clientAt(readerId: string, atMs: number): string | null;
  visit(readerId: string, visitId: string): VisitRow | null;
  visitsById(visitId: string): VisitRow[];
  openAtReader(readerId: string): VisitRow[];
  /** Same staff member (or card when the staff is unknown) at another reader at `atMs` (latest start). */
  overlappingElsewhere(q: {
    readerId: string;
    staffRef: string | null;
    cardRef: string;
    atMs: number;
  }): VisitRow | null;
  /** Same staff member (or card) started at another reader inside (fromMs, toMs). */
  startedElsewhereDuring(q: {
    readerId: string;
    staffRef: string | null;
    cardRef: string;
    fromMs: number;
    toMs: number;
  }): VisitRow | null;
  /** Whether the reader has a visit that started or ended at or after `ms` (it has reported since). */
  deliveredSince(readerId: string, ms: number): boolean;
  /** Inserts or updates a visit row (card_ref never changes). The ONE writer of visit rows. */
  upsert(v: VisitRow): void;
  /** Records an anomaly once per key; false if already recorded. */
  insertAnomaly(a: AnomalyRecord): boolean;
  audit(a: VisitAuditRecord): void;
  /** Validates and queues a visit event in the same transaction; false when its key exists. */
  enqueue(event: VisitEvent, nowMs: number): boolean;
  cardStatusAt(cardRef: string, atMs: number): CardStatus;
  anchor(readerId: string, bootId: string): Anchor | null;
  putAnchor(readerId: string, bootId: string, a: Anchor): void;
  /**
   * The reader's own anchor scan (several instances: one reader's rows commit in id order under its
   * lock, which the ingest and the turn both hold): stored event rows of the reader past its scan mark,
   * in id order, at most `limit`, also rows above a sequence gap. The engine learns from them
   * (visits/time.ts `learnAnchors`) and moves the mark with `setAnchorScanned`.
   */
  anchorRows(readerId: string, limit: number): AnchorScanRow[];
  setAnchorScanned(readerId: string, id: number): void;
  /** The measured offset of a synced boot's clock (device − gateway, a lower bound), or null. */
  syncedOffset(readerId: string, bootId: string): number | null;
  putSyncedOffset(readerId: string, bootId: string, offsetMs: number): void;
  /** The measured offset of the reader's latest measured synced boot (its clock uncertainty), or null. */
  clockOffset(readerId: string): number | null;
  setClockOffset(readerId: string, offsetMs: number): void;
  /** Runs `fn` so that a throw undoes only its own writes (a savepoint); rethrows. */
  isolated<T>(fn: () => T): T;
}

export interface VisitQuery {
  state: 'open' | 'recent';
  readerId?: string;
  limit: number;
}

export interface AnomalyQuery {
  kind?: AnomalyKind;
  readerId?: string;
  limit: number;
}

export interface AnomalyListRow {
  id: number;
  idempotencyKey: string;
  kind: AnomalyKind;
  readerId: string;
  visitId: string | null;
  cardRef: string | null;
  staffRef: string | null;
  clientRef: string | null;
  atMs: number;
  seq: number | null;
  detail: string;
  createdAtMs: number;
  resolvedAtMs: number | null;
  resolvedBy: string | null;
  resolution: string | null;
  resolvedStaffRef: string | null;
}

/** An unknown card seen at the clients of a caller's scope (the scoped reads on both engines). */
export interface ScopedUnknownCard {
  cardRef: string;
  taps: number;
  firstSeenMs: number;
  lastSeenMs: number;
  seenAt: { readerId: string; clientRef: string | null; taps: number; lastSeenMs: number }[];
}

/**
 * What a turn is about to read, so an adapter that pays a round trip per read (PostgreSQL) can fetch
 * it before the first run, one statement per kind for all readers of the turn. SQLite ignores it.
 */
export interface TurnHint {
  /** The turn reads each reader's cursor, contiguous prefix and up to this many events past the cursor. */
  events?: number;
  /** And each reader's own anchor scan (`VisitTx.anchorRows`) with this limit. */
  anchorRows?: number;
}

export interface VisitStore {
  /**
   * One unit of work of the visits engine: `work` runs over a synchronous transaction view and
   * everything it wrote commits together (or nothing, when it throws). `readerIds` are the readers
   * the turn may write (PostgreSQL locks them); 'all' is for start-up catch-up and tools.
   */
  runTurn<T>(readerIds: readonly string[] | 'all', work: (tx: VisitTx) => T, hint?: TurnHint): Awaitable<T>;
  /** Readers whose contiguous prefix is ahead of the engine's cursor. */
  readersBehind(): Awaitable<string[]>;
  /** Time anchors: stored event rows with id > afterId (global order), and the scan cursor. */
  anchorScan: {
    cursor(): Awaitable<number>;
    rows(afterId: number, limit: number): Awaitable<AnchorScanRow[]>;
  };
  listVisits(q: VisitQuery): Awaitable<VisitRow[]>;
  listAnomalies(q: AnomalyQuery): Awaitable<AnomalyListRow[]>;
  /** The reader ids of a visit id (a visit id is unique per reader). */
  readersOfVisit(visitId: string): Awaitable<string[]>;
  openVisitIds(readerId: string): Awaitable<string[]>;
  /** Gauges: open visits, and committed events not yet processed. */
  gauges(): Awaitable<{ openVisits: number; lagEvents: number }>;
}

// ---------------------------------------------------------------------------------------------
// Outbox (forwarder): table outbox.
// ---------------------------------------------------------------------------------------------

export interface OutboxRow {
  id: number;
  idempotencyKey: string;
  visitId: string | null;
  type: string;
  eventJson: string;
  attempts: number;
  createdAtMs: number;
}

export interface DeadLetter {
  id: number;
  idempotencyKey: string;
  visitId: string | null;
  type: string;
  attempts: number;
  createdAtMs: number;
  deadAtMs: number | null;
  lastStatus: number | null;
  lastError: string | null;
  event: unknown;
}

export interface OutboxStats {
  pending: number;
  dead: number;
  oldestPendingCreatedAtMs: number | null;
}

export const BLOCKED_ERROR = 'blocked: an earlier event of this visit is dead-lettered';

/**
 * The outbox: visit events waiting for the planning backend, delivered in id order per visit.
 * Rows are written by the visits turn (VisitTx.enqueue) and by card attribution; the forwarder only
 * changes their state. Several instances (PostgreSQL): `claim` hands each pending row to one
 * instance at a time (FOR UPDATE SKIP LOCKED and a lease until `nowMs + leaseMs`); SQLite has one
 * forwarder and ignores the lease.
 */
export interface OutboxStore {
  /** Up to `limit` pending rows in id order, claimed for this forwarder until nowMs + leaseMs. */
  claim(limit: number, nowMs: number, leaseMs: number): Awaitable<OutboxRow[]>;
  /** Moves pending rows behind a dead row of the same visit to the dead letters too. Returns how many. */
  blockBehindDead(nowMs: number): Awaitable<number>;
  markDelivered(ids: readonly number[], nowMs: number, status: number): Awaitable<void>;
  recordFailure(ids: readonly number[], status: number | null, error: string): Awaitable<void>;
  markDead(id: number, nowMs: number, status: number | null, error: string): Awaitable<void>;
  /** Deletes up to `max` rows delivered before `beforeMs`. Returns how many. */
  pruneDelivered(beforeMs: number, max?: number): Awaitable<number>;
  listDead(limit: number): Awaitable<DeadLetter[]>;
  /** Re-drives one dead letter and the later dead rows of its visit; 0 when `id` is not dead. */
  redrive(id: number): Awaitable<number>;
  redriveAll(): Awaitable<number>;
  stats(): Awaitable<OutboxStats>;
}

// ---------------------------------------------------------------------------------------------
// Cards: table cards; assignment also attributes earlier taps (visits, anomalies, outbox).
// ---------------------------------------------------------------------------------------------

export interface CardInfo {
  cardRef: string;
  staffRef: string;
  revokedAtMs: number | null;
  /** Validity window (issue 16): a tap before `validFromMs` or at/after `validToMs` counts as revoked. */
  validFromMs?: number | null;
  validToMs?: number | null;
  /** The card that replaced this one (lost-card replacement), if any. */
  replacedBy?: string | null;
}

export interface AttributionResult {
  /** Visits that got the staff member (and a visit.attributed event each). */
  visits: number;
  /** Refused taps (no visit) reported with visitId null. */
  refusedTaps: number;
  /** `unknown-card` anomalies marked resolved. */
  anomaliesResolved: number;
  /** visit.attributed events written to the outbox (new keys only). */
  events: number;
}

export interface CardAssignResult {
  cardRef: string;
  staffRef: string;
  /** added: was unknown; unchanged: already this staff member's, active; reassigned: another's, or revoked. */
  registry: 'added' | 'unchanged' | 'reassigned';
  attributed: AttributionResult;
}

export interface UnknownCard {
  cardRef: string;
  taps: number;
  firstSeenMs: number;
  lastSeenMs: number;
  seenAt: { readerId: string; clientRef: string | null; lastSeenMs: number; taps: number }[];
}

export interface CardStore {
  /**
   * Adds or re-assigns (and un-revokes) a card and, in the SAME transaction, attributes its earlier
   * unattributed visits and refused taps (visit.attributed events in the outbox). Idempotent.
   */
  assign(req: {
    cardRef: string;
    staffRef: string;
    actor: string;
    nowMs: number;
  }): Awaitable<CardAssignResult>;
  /** Several assignments in ONE transaction (CSV import); all or nothing. */
  assignMany(
    reqs: ReadonlyArray<{ cardRef: string; staffRef: string; actor: string; nowMs: number }>,
  ): Awaitable<CardAssignResult[]>;
  /** Revokes from `atMs` on; false when unknown or already revoked. */
  revoke(cardRef: string, atMs: number): Awaitable<boolean>;
  get(cardRef: string): Awaitable<CardInfo | null>;
  /** Card refs, sorted: the active ones, or the revoked ones (config push). */
  refs(which: 'active' | 'revoked'): Awaitable<string[]>;
  /** Cards tapped but not in the registry (from unknown-card anomalies), most recent first. */
  unknown(limit: number): Awaitable<UnknownCard[]>;
}

// ---------------------------------------------------------------------------------------------
// Enrollment: table enrollments (codes stored as keyed hashes only).
// ---------------------------------------------------------------------------------------------

export interface EnrollmentRow {
  id: number;
  codeHash: string;
  readerId: string;
  clientRef: string | null;
  label: string | null;
  createdAtMs: number;
  expiresAtMs: number;
  usedAtMs: number | null;
  usedFrom: string | null;
  replacesReaderId: string | null;
}

export interface EnrollmentStore {
  /**
   * Issues a code in one transaction: withdraws the codes still pending for the same reader (and,
   * for a replacement, for the same old reader), then inserts the new one.
   */
  issue(r: Omit<EnrollmentRow, 'id' | 'usedAtMs' | 'usedFrom'>): Awaitable<void>;
  /** Newest first, at most `limit`. */
  list(limit: number): Awaitable<EnrollmentRow[]>;
  byCodeHash(codeHash: string): Awaitable<EnrollmentRow | undefined>;
  /** Marks the code used if it is not yet; false when someone else claimed it first. */
  claim(id: number, atMs: number, from: string): Awaitable<boolean>;
  /** Undoes a claim (credentials could not be created). */
  unclaim(id: number): Awaitable<void>;
  /** Whether any code (used or not) names this reader id. */
  readerIdTaken(readerId: string): Awaitable<boolean>;
}

// ---------------------------------------------------------------------------------------------
// Readers / fleet: tables reader_config (config push) and reader_replacements. Reader rows, status,
// command results and rejects are in the ingest port (ingest-store.ts).
// ---------------------------------------------------------------------------------------------

export interface PushedConfig {
  version: number;
  configJson: string;
  pushedAtMs: number;
}

export interface ReplacementRecord {
  oldReaderId: string;
  newReaderId: string;
  clientRef: string | null;
  replacedAtMs: number;
  closedVisits: number;
}

export interface ReplacementLinks {
  replacedBy: string | null;
  replaces: string | null;
  replacedAtMs: number | null;
}

export interface FleetStore {
  lastConfig(readerId: string): Awaitable<PushedConfig | undefined>;
  saveConfig(readerId: string, c: PushedConfig): Awaitable<void>;
  links(readerId: string): Awaitable<ReplacementLinks>;
  recordReplacement(r: ReplacementRecord): Awaitable<void>;
}

/** Everything the composition root hands out: one adapter per engine implements all ports. */
export interface GatewayStore {
  readonly engine: 'sqlite' | 'postgres';
  readonly ingest: IngestStore;
  readonly visits: VisitStore;
  readonly outbox: OutboxStore;
  readonly cards: CardStore;
  readonly enrollment: EnrollmentStore;
  readonly fleet: FleetStore;
  /** False once closed (readiness probes, late metric scrapes). */
  isOpen(): boolean;
  close(): Awaitable<void>;
}

// ---------------------------------------------------------------------------------------------
// Access (issue 14): accounts, web sessions and API tokens (auth_users, auth_sessions, auth_tokens),
// and the audit log (audit_log). On PostgreSQL every instance shares them: an account made on one
// instance logs in on all, a session ended on one is refused by all, one audit log in one order.
// ---------------------------------------------------------------------------------------------

/**
 * An account. `R` is the role type: the store keeps it as text and the adapters check it with the
 * `parseRole` they are given (gateway/src/auth passes its zod Role), so a row with an unknown role
 * never reaches the caller.
 */
export interface AuthUser<R extends string = string> {
  userId: string;
  /** Login name (local accounts) or the OIDC preferred_username. */
  name: string;
  displayName: string;
  role: R;
  areas: string[];
  provider: string | null;
  /** The staff member a care-staff account is (sees that staff member's own registrations only). */
  staffRef: string | null;
  /** scrypt hash; null for SSO-only accounts. */
  passwordHash: string | null;
  /** OIDC `iss|sub` bound to this account, when any. */
  oidcSubject: string | null;
  disabledAt: number | null;
  createdAtMs: number;
}

export interface AuthSession {
  /** sha256 of the cookie value (the cookie itself is never stored). */
  idHash: string;
  userId: string;
  csrf: string;
  createdAtMs: number;
  expiresAtMs: number;
  lastSeenMs: number;
}

export interface AuthApiToken<R extends string = string> {
  tokenId: string;
  name: string;
  role: R;
  areas: string[];
  provider: string | null;
  /** sha256 of the secret part. */
  secretHash: string;
  createdBy: string;
  createdAtMs: number;
  expiresAtMs: number | null;
  revokedAtMs: number | null;
}

/**
 * Users, sessions, API tokens. Each method is one unit of work (one statement or transaction).
 * `sessionWithUser` is the per-request look-up: ONE statement (a join) on both engines, a prepared
 * statement on SQLite.
 */
export interface AuthStore<R extends string = string> {
  countUsers(): Awaitable<number>;
  insertUser(u: AuthUser<R>): Awaitable<void>;
  updateUser(u: AuthUser<R>): Awaitable<void>;
  userById(userId: string): Awaitable<AuthUser<R> | null>;
  userByName(name: string): Awaitable<AuthUser<R> | null>;
  userByOidcSubject(subject: string): Awaitable<AuthUser<R> | null>;
  listUsers(): Awaitable<AuthUser<R>[]>;

  insertSession(s: AuthSession): Awaitable<void>;
  /** The session with this hash and its account (null when either is missing). */
  sessionWithUser(idHash: string): Awaitable<{ session: AuthSession; user: AuthUser<R> } | null>;
  touchSession(idHash: string, lastSeenMs: number): Awaitable<void>;
  deleteSession(idHash: string): Awaitable<void>;
  deleteSessionsOf(userId: string): Awaitable<number>;
  deleteExpiredSessions(nowMs: number): Awaitable<number>;

  insertToken(t: AuthApiToken<R>): Awaitable<void>;
  tokenById(tokenId: string): Awaitable<AuthApiToken<R> | null>;
  listTokens(): Awaitable<AuthApiToken<R>[]>;
  revokeToken(tokenId: string, atMs: number): Awaitable<boolean>;

  /**
   * Failed logins under `key` (a hash of the login name: names typed at a login form are not stored)
   * in the window of `windowMs` that began with the first failure; 0 once that window has passed.
   * On PostgreSQL every instance counts together.
   */
  loginFailures(key: string, nowMs: number, windowMs: number): Awaitable<number>;
  /** One more failure (a new window when the last one has passed); windows passed are deleted. */
  noteLoginFailure(key: string, nowMs: number, windowMs: number): Awaitable<void>;
  clearLoginFailures(key: string): Awaitable<void>;
}

/** One change, as recorded: who, when, what, on what, the state before and after, and why. */
export interface AuditEntry {
  /** Position in the one log (on PostgreSQL: in commit order across every instance). */
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
 * The audit log: append and read, nothing else (no update, no delete: append-only by construction, and
 * both adapters' triggers refuse UPDATE and DELETE underneath; retention and erasure are the documented
 * exceptions, see retention/).
 */
export interface AuditStore {
  append(e: NewAuditEntry): Awaitable<AuditEntry>;
  list(q: AuditQuery): Awaitable<AuditEntry[]>;
  /** Every entry, oldest first, for export. */
  all(): Awaitable<AuditEntry[]>;
}
