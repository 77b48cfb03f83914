/**
 * The secure-card port (issue 18; on PostgreSQL since issue 14): per card, the last SUN counter accepted
 * and since when it is known to be secure; per tap, its assurance and verdict (tables secure_cards,
 * secure_taps). Card references are pseudonyms (c1_...), never raw UIDs.
 *
 * Adapters: SQLite `store/sqlite/secure-cards.ts` (its own `secure-` steps, applied when the gateway is
 * configured with secure cards), PostgreSQL `postgres/secure-cards.ts` (the same steps in the ordered
 * PostgreSQL list). The contract suite: test/contracts/store-secure-cards.contract.ts.
 *
 * The verifier's rules (secure-cards/verifier.ts) are ONE synchronous implementation; `screen` runs them
 * as one unit of work over a `SecureCardTx`, like the visits turn (./README.md):
 * - SQLite: the tx is the live prepared statements (each `record` its own transaction, as before);
 *   `screen` answers synchronously and never calls `keys`.
 * - PostgreSQL: one transaction that takes a transaction-level advisory lock per card of the batch (in
 *   sorted order), preloads the rows `keys` names, runs the rules over an in-memory view that records
 *   writes, writes them, commits. Two instances screening the same card serialise on its lock, so the
 *   second one sees the first one's counter and verdicts: a SUN counter is accepted at most once.
 */
import type { Awaitable } from './awaitable.js';

export type Assurance = 'secure' | 'uid-only';
export type Verdict = 'accepted' | 'flagged' | 'refused';

export interface TapAssurance {
  readerId: string;
  eventId: string;
  seq: number;
  cardRef: string;
  assurance: Assurance;
  verdict: Verdict;
  /** Why (e.g. 'secure', 'uid-only', 'clone-suspect', 'replayed', 'bad-mac'). */
  code: string;
  /** SUN counter of a secure tap, else null. */
  counter: number | null;
  detail: string;
  atMs: number;
  /** What the card proved: 'ntag424-sun', 'desfire-ev2', or null (UID only). */
  proofKind?: string | null;
  /** A DESFire authentication's nonce (TI || RndB, hex): unique per authentication; null otherwise. */
  nonce?: string | null;
}

/** A secure_taps row as both engines return it (the same columns and names on SQLite and PostgreSQL). */
export interface TapRow {
  reader_id: string;
  event_id: string;
  seq: number;
  card_ref: string;
  assurance: Assurance;
  verdict: Verdict;
  code: string;
  counter: number | null;
  detail: string;
  at_ms: number;
  proof_kind: string | null;
  nonce: string | null;
}

/** A secure_taps row as the port's TapAssurance (both adapters). */
export const toTap = (r: TapRow): TapAssurance => ({
  readerId: r.reader_id,
  eventId: r.event_id,
  seq: r.seq,
  cardRef: r.card_ref,
  assurance: r.assurance,
  verdict: r.verdict,
  code: r.code,
  counter: r.counter,
  detail: r.detail,
  atMs: r.at_ms,
  proofKind: r.proof_kind,
  nonce: r.nonce,
});

export interface SecureCardState {
  cardRef: string;
  lastCounter: number;
  secureSinceMs: number;
  lastSecureTapMs: number;
}

/** What the verifier reads and writes while it screens (synchronous). */
export interface SecureCardTx {
  card(cardRef: string): SecureCardState | undefined;
  /** Whether this card's DESFire authentication nonce was recorded before (a replayed transcript). */
  nonceSeen(cardRef: string, nonce: string): boolean;
  /** The verdict already recorded for this event (a resend gets the same answer). */
  tap(readerId: string, eventId: string): TapAssurance | undefined;
  /** Records a tap's verdict (first one wins) and, for a secure tap not refused, the card's new counter. */
  record(t: TapAssurance): void;
}

/** The rows one screening reads: an adapter that preloads (PostgreSQL) loads these and locks `cardRefs`. */
export interface SecureScreenKeys {
  /** (reader, event) pairs whose recorded verdict is read. */
  taps: ReadonlyArray<{ readerId: string; eventId: string }>;
  /** Cards read (and, on PostgreSQL, locked for the unit of work). */
  cardRefs: readonly string[];
  /** DESFire nonces asked about. */
  nonces: ReadonlyArray<{ cardRef: string; nonce: string }>;
}

export type AssuranceCount = { assurance: Assurance; verdict: Verdict; count: number };

export interface SecureCardStore {
  /**
   * One screening: `work` runs over a synchronous tx and what it records is durable when the answer is.
   * `work` reads only what `keys()` names (an adapter may call `keys` before `work`, or never).
   */
  screen<T>(keys: () => SecureScreenKeys, work: (tx: SecureCardTx) => T): Awaitable<T>;
  /** Taps of a reader (newest first), for reports and the admin API. */
  taps(readerId: string, limit: number): Awaitable<TapAssurance[]>;
  /** Taps by assurance and verdict, optionally for taps received in [fromMs, toMs). */
  countByAssurance(range?: { fromMs: number; toMs: number }): Awaitable<AssuranceCount[]>;
}
