import type { Db, Migration } from './db.js';
import { applyMigrations } from './db.js';
import {
  toTap,
  type Assurance,
  type AssuranceCount,
  type SecureCardState,
  type SecureCardStore,
  type SecureCardTx,
  type TapAssurance,
  type TapRow,
  type Verdict,
} from '../secure-cards.js';

/** The secure-card tables (SQLite). Ids `secure-NNN`; applied by `createSqliteSecureCardStore`. */
export const secureCardMigrations: readonly Migration[] = [
  {
    id: 'secure-001',
    up: (db) => {
      db.exec(`
        CREATE TABLE secure_cards (
          card_ref TEXT PRIMARY KEY,
          last_counter INTEGER NOT NULL,
          secure_since_ms INTEGER NOT NULL,
          last_secure_tap_ms INTEGER NOT NULL
        );
        CREATE TABLE secure_taps (
          reader_id TEXT NOT NULL,
          event_id TEXT NOT NULL,
          seq INTEGER NOT NULL,
          card_ref TEXT NOT NULL,
          assurance TEXT NOT NULL CHECK (assurance IN ('secure', 'uid-only')),
          verdict TEXT NOT NULL CHECK (verdict IN ('accepted', 'flagged', 'refused')),
          code TEXT NOT NULL,
          counter INTEGER,
          detail TEXT NOT NULL,
          at_ms INTEGER NOT NULL,
          PRIMARY KEY (reader_id, event_id)
        );
        CREATE INDEX secure_taps_by_reader ON secure_taps (reader_id, at_ms);
      `);
    },
  },
  {
    // DESFire EV2/EV3 proofs (issue 18): what the card proved, and the authentication's nonce (replay check)
    id: 'secure-002',
    up: (db) => {
      db.exec(`
        ALTER TABLE secure_taps ADD COLUMN proof_kind TEXT;
        ALTER TABLE secure_taps ADD COLUMN nonce TEXT;
        UPDATE secure_taps SET proof_kind = 'ntag424-sun' WHERE assurance = 'secure';
        CREATE INDEX secure_taps_by_nonce ON secure_taps (card_ref, nonce) WHERE nonce IS NOT NULL;
        CREATE INDEX secure_taps_by_time ON secure_taps (at_ms);
      `);
    },
  },
];

/**
 * The SQLite adapter: synchronous answers (the ingest screen stays synchronous on this engine), and the
 * tx's reads and `record` callable directly (each `record` one transaction). `screen` is `work(this)` in
 * one transaction (a batch is one commit, and a throw in `work` records nothing of it, as on PostgreSQL).
 */
export interface SqliteSecureCardStore extends SecureCardStore, SecureCardTx {
  screen<T>(keys: unknown, work: (tx: SecureCardTx) => T): T;
  taps(readerId: string, limit: number): TapAssurance[];
  countByAssurance(range?: { fromMs: number; toMs: number }): AssuranceCount[];
}

/** The SQLite adapter. Applies its own migrations on the given database (idempotent). */
export function createSqliteSecureCardStore(db: Db): SqliteSecureCardStore {
  applyMigrations(db, secureCardMigrations);
  const s = {
    card: db.prepare(
      'SELECT card_ref, last_counter, secure_since_ms, last_secure_tap_ms FROM secure_cards WHERE card_ref = ?',
    ),
    tap: db.prepare('SELECT * FROM secure_taps WHERE reader_id = ? AND event_id = ?'),
    insertTap: db.prepare(
      `INSERT OR IGNORE INTO secure_taps (reader_id, event_id, seq, card_ref, assurance, verdict, code, counter, detail, at_ms, proof_kind, nonce)
       VALUES (@readerId, @eventId, @seq, @cardRef, @assurance, @verdict, @code, @counter, @detail, @atMs, @proofKind, @nonce)`,
    ),
    upsertCard: db.prepare(
      `INSERT INTO secure_cards (card_ref, last_counter, secure_since_ms, last_secure_tap_ms) VALUES (?, ?, ?, ?)
       ON CONFLICT (card_ref) DO UPDATE SET last_counter = MAX(last_counter, excluded.last_counter),
         last_secure_tap_ms = excluded.last_secure_tap_ms`,
    ),
    taps: db.prepare('SELECT * FROM secure_taps WHERE reader_id = ? ORDER BY at_ms DESC, seq DESC LIMIT ?'),
    counts: db.prepare(
      'SELECT assurance, verdict, COUNT(*) AS count FROM secure_taps GROUP BY assurance, verdict ORDER BY 1, 2',
    ),
    countsIn: db.prepare(
      `SELECT assurance, verdict, COUNT(*) AS count FROM secure_taps WHERE at_ms >= ? AND at_ms < ?
       GROUP BY assurance, verdict ORDER BY 1, 2`,
    ),
    nonce: db.prepare('SELECT 1 FROM secure_taps WHERE card_ref = ? AND nonce = ? LIMIT 1'),
  };
  const record = db.transaction((t: TapAssurance) => {
    s.insertTap.run({ ...t, proofKind: t.proofKind ?? null, nonce: t.nonce ?? null });
    // a card that proved itself (SUN counter or DESFire authentication) is known secure from now on
    if (t.assurance === 'secure' && t.verdict !== 'refused')
      s.upsertCard.run(t.cardRef, t.counter ?? 0, t.atMs, t.atMs);
  });
  // a batch's screening is one transaction (each `record` a savepoint in it): one commit per batch, not per tap
  const screenTx = db.transaction((work: (tx: SecureCardTx) => unknown) => work(store));
  const store: SqliteSecureCardStore = {
    // the live statements are the tx; no preloading, so `keys` is never called
    screen: <T>(_keys: unknown, work: (tx: SecureCardTx) => T): T => screenTx(work) as T,
    card(cardRef: string): SecureCardState | undefined {
      const r = s.card.get(cardRef) as
        | { card_ref: string; last_counter: number; secure_since_ms: number; last_secure_tap_ms: number }
        | undefined;
      return r
        ? {
            cardRef: r.card_ref,
            lastCounter: r.last_counter,
            secureSinceMs: r.secure_since_ms,
            lastSecureTapMs: r.last_secure_tap_ms,
          }
        : undefined;
    },
    tap(readerId: string, eventId: string) {
      const r = s.tap.get(readerId, eventId) as TapRow | undefined;
      return r ? toTap(r) : undefined;
    },
    record: (t: TapAssurance) => record(t),
    taps(readerId: string, limit: number) {
      return (s.taps.all(readerId, limit) as TapRow[]).map(toTap);
    },
    nonceSeen(cardRef: string, nonce: string) {
      return s.nonce.get(cardRef, nonce) !== undefined;
    },
    countByAssurance(range?: { fromMs: number; toMs: number }) {
      return (range ? s.countsIn.all(range.fromMs, range.toMs) : s.counts.all()) as Array<{
        assurance: Assurance;
        verdict: Verdict;
        count: number;
      }>;
    },
  };
  return store;
}
