import type { PgMigration } from './db.js';
import { inTransaction, type PgClient, type PgPool } from './db.js';
import {
  toTap,
  type AssuranceCount,
  type SecureCardState,
  type SecureCardStore,
  type SecureCardTx,
  type SecureScreenKeys,
  type TapAssurance,
  type TapRow,
} from '../secure-cards.js';

/**
 * The secure-card tables on PostgreSQL (issue 14): the same steps, ids and columns as SQLite's
 * (store/sqlite/secure-cards.ts `secureCardMigrations`), in the one ordered PostgreSQL list
 * (./migrations.ts). Created whether or not an instance checks secure cards (empty tables cost nothing;
 * an instance configured later finds them).
 */
export const pgSecureCardMigrations: readonly PgMigration[] = [
  {
    id: 'secure-001',
    sql: `
      CREATE TABLE secure_cards (
        card_ref TEXT PRIMARY KEY,
        last_counter BIGINT NOT NULL,
        secure_since_ms BIGINT NOT NULL,
        last_secure_tap_ms BIGINT NOT NULL
      );
      CREATE TABLE secure_taps (
        reader_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        card_ref TEXT NOT NULL,
        assurance TEXT NOT NULL CHECK (assurance IN ('secure', 'uid-only')),
        verdict TEXT NOT NULL CHECK (verdict IN ('accepted', 'flagged', 'refused')),
        code TEXT NOT NULL,
        counter BIGINT,
        detail TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (reader_id, event_id)
      );
      CREATE INDEX secure_taps_by_reader ON secure_taps (reader_id, at_ms);
    `,
  },
  {
    id: 'secure-002',
    sql: `
      ALTER TABLE secure_taps ADD COLUMN proof_kind TEXT;
      ALTER TABLE secure_taps ADD COLUMN nonce TEXT;
      UPDATE secure_taps SET proof_kind = 'ntag424-sun' WHERE assurance = 'secure';
      CREATE INDEX secure_taps_by_nonce ON secure_taps (card_ref, nonce) WHERE nonce IS NOT NULL;
      CREATE INDEX secure_taps_by_time ON secure_taps (at_ms);
    `,
  },
];

/** Advisory-lock namespace of a screening's per-card locks (two-int form: namespace, hashtext(card_ref)). */
export const SECURE_CARD_LOCK_NS = 74_730;

const TAP_COLS =
  'reader_id, event_id, seq, card_ref, assurance, verdict, code, counter, detail, at_ms, proof_kind, nonce';
const pair = (a: string, b: string): string => `${a}\n${b}`;

/**
 * The secure-card store on PostgreSQL, shared by every instance (port: ../secure-cards.ts).
 *
 * `screen` is one transaction: a transaction-level advisory lock per card of the batch
 * (`pg_advisory_xact_lock(74730, hashtext(card_ref))`, taken in sorted order in one statement, so two
 * screenings never deadlock; nothing else takes these locks), then the batch's recorded verdicts, the
 * cards' rows and the nonces asked about are read, the verifier's rules run over that view in memory, and
 * what they recorded is written before COMMIT. The lock is held from before the card's counter is read
 * until the new counter is committed: an instance given the same SUN counter at the same time waits, then
 * reads the committed counter and refuses the tap as replayed, so a counter is accepted at most once.
 * The lock is per card, not per row, because a card's first secure tap has no row yet to lock FOR
 * UPDATE. The same (reader, event) screened on two instances (a redelivered batch) names the same card,
 * so the second instance finds the first one's verdict: a resend gets the same answer. Within an
 * instance, the batches of many readers screened at the same moment share one transaction (`screen`).
 */
interface Waiting {
  keys: SecureScreenKeys;
  work: (tx: SecureCardTx) => unknown;
  resolve: (v: unknown) => void;
  reject: (err: unknown) => void;
}

export interface PgSecureCardStoreOptions {
  /** Screening transactions of this instance at once (default 2). */
  maxInFlight?: number;
  /** Batches screened together in one transaction at most (default 200). */
  maxGroup?: number;
}

export class PgSecureCardStore implements SecureCardStore {
  /** Screenings waiting for a transaction: the next one takes them all (up to maxGroup), in order. */
  private readonly waiting: Waiting[] = [];
  private inFlight = 0;

  constructor(
    private readonly pool: PgPool,
    private readonly o: PgSecureCardStoreOptions = {},
  ) {}

  /**
   * Screenings are grouped like a group commit: at most `maxInFlight` transactions at once, and the
   * screenings that arrive meanwhile go together in the next one (their keys merged, their works run in
   * arrival order over one view, so a later one sees what an earlier one recorded, as if run one after the
   * other). A failure fails the whole group (each caller's batch is then neither stored nor acked).
   */
  screen<T>(keys: () => SecureScreenKeys, work: (tx: SecureCardTx) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const k = keys(); // a throw rejects
      if (k.taps.length === 0 && k.cardRefs.length === 0 && k.nonces.length === 0) {
        resolve(work(new View(k, [], [], [])));
        return;
      }
      this.waiting.push({ keys: k, work, resolve: resolve as (v: unknown) => void, reject });
      this.next();
    });
  }

  private next(): void {
    while (this.inFlight < (this.o.maxInFlight ?? 2) && this.waiting.length > 0) {
      const group = this.waiting.splice(0, this.o.maxGroup ?? 200);
      this.inFlight++;
      this.screenGroup(group)
        .then(
          (outs) => group.forEach((g, i) => g.resolve(outs[i])),
          (err: unknown) => group.forEach((g) => g.reject(err)),
        )
        .finally(() => {
          this.inFlight--;
          this.next();
        });
    }
  }

  private screenGroup(group: readonly Waiting[]): Promise<unknown[]> {
    const k: SecureScreenKeys = {
      taps: group.flatMap((g) => g.keys.taps),
      cardRefs: group.flatMap((g) => g.keys.cardRefs),
      nonces: group.flatMap((g) => g.keys.nonces),
    };
    return inTransaction(this.pool, async (c) => {
      const cardRefs = [...new Set(k.cardRefs)].sort();
      if (cardRefs.length)
        await c.query(
          `SELECT pg_advisory_xact_lock(${SECURE_CARD_LOCK_NS}, hashtext(k))
             FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) s`,
          [cardRefs],
        );
      const taps = k.taps.length
        ? (
            await c.query<TapRow>(
              `SELECT ${TAP_COLS} FROM secure_taps
                WHERE (reader_id, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
              [k.taps.map((t) => t.readerId), k.taps.map((t) => t.eventId)],
            )
          ).rows
        : [];
      const cards = cardRefs.length
        ? (
            await c.query<{
              card_ref: string;
              last_counter: number;
              secure_since_ms: number;
              last_secure_tap_ms: number;
            }>(
              `SELECT card_ref, last_counter, secure_since_ms, last_secure_tap_ms FROM secure_cards
                WHERE card_ref = ANY($1::text[])`,
              [cardRefs],
            )
          ).rows.map((r) => ({
            cardRef: r.card_ref,
            lastCounter: r.last_counter,
            secureSinceMs: r.secure_since_ms,
            lastSecureTapMs: r.last_secure_tap_ms,
          }))
        : [];
      const nonces = k.nonces.length
        ? (
            await c.query<{ card_ref: string; nonce: string }>(
              `SELECT DISTINCT card_ref, nonce FROM secure_taps
                WHERE nonce IS NOT NULL AND (card_ref, nonce) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
              [k.nonces.map((n) => n.cardRef), k.nonces.map((n) => n.nonce)],
            )
          ).rows.map((r) => pair(r.card_ref, r.nonce))
        : [];
      const view = new View(k, taps.map(toTap), cards, nonces);
      const outs = group.map((g) => g.work(view));
      await view.write(c);
      return outs;
    });
  }

  async taps(readerId: string, limit: number): Promise<TapAssurance[]> {
    const r = await this.pool.query<TapRow>(
      `SELECT ${TAP_COLS} FROM secure_taps WHERE reader_id = $1 ORDER BY at_ms DESC, seq DESC LIMIT $2`,
      [readerId, limit],
    );
    return r.rows.map(toTap);
  }

  async countByAssurance(range?: { fromMs: number; toMs: number }): Promise<AssuranceCount[]> {
    const r = await this.pool.query<AssuranceCount>(
      `SELECT assurance, verdict, count(*) AS count FROM secure_taps
        ${range ? 'WHERE at_ms >= $1 AND at_ms < $2' : ''}
        GROUP BY assurance, verdict ORDER BY assurance COLLATE "C", verdict COLLATE "C"`,
      range ? [range.fromMs, range.toMs] : [],
    );
    return r.rows;
  }
}

/**
 * One screening's rows in memory: what was read under the locks, plus what the rules record (in the
 * order SQLite would apply it: a verdict once per tap, the card's counter only ever up). Reading a row
 * the keys did not name throws: it would answer from outside the locks.
 */
class View implements SecureCardTx {
  private readonly tapsByKey = new Map<string, TapAssurance>();
  private readonly loadedTaps: Set<string>;
  private readonly cards = new Map<string, SecureCardState>();
  private readonly loadedCards: Set<string>;
  private readonly nonces: Set<string>;
  private readonly askedNonces: Set<string>;
  private readonly inserted: TapAssurance[] = [];
  private readonly changedCards = new Set<string>();

  constructor(keys: SecureScreenKeys, taps: TapAssurance[], cards: SecureCardState[], nonces: string[]) {
    this.loadedTaps = new Set(keys.taps.map((t) => pair(t.readerId, t.eventId)));
    this.loadedCards = new Set(keys.cardRefs);
    this.askedNonces = new Set(keys.nonces.map((n) => pair(n.cardRef, n.nonce)));
    for (const t of taps) this.tapsByKey.set(pair(t.readerId, t.eventId), t);
    for (const c of cards) this.cards.set(c.cardRef, c);
    this.nonces = new Set(nonces);
  }

  card(cardRef: string): SecureCardState | undefined {
    if (!this.loadedCards.has(cardRef)) throw new Error('secure-card screen read a card outside its keys');
    return this.cards.get(cardRef);
  }

  nonceSeen(cardRef: string, nonce: string): boolean {
    const k = pair(cardRef, nonce);
    if (this.nonces.has(k)) return true;
    if (!this.askedNonces.has(k)) throw new Error('secure-card screen read a nonce outside its keys');
    return false;
  }

  tap(readerId: string, eventId: string): TapAssurance | undefined {
    const k = pair(readerId, eventId);
    const t = this.tapsByKey.get(k);
    if (t || this.loadedTaps.has(k)) return t;
    throw new Error('secure-card screen read a tap outside its keys');
  }

  record(t: TapAssurance): void {
    const k = pair(t.readerId, t.eventId);
    if (!this.tapsByKey.has(k)) {
      const row = { ...t, proofKind: t.proofKind ?? null, nonce: t.nonce ?? null };
      this.tapsByKey.set(k, row);
      this.inserted.push(row);
      if (row.nonce !== null) this.nonces.add(pair(t.cardRef, row.nonce));
    }
    // a card that proved itself (SUN counter or DESFire authentication) is known secure from now on
    if (t.assurance === 'secure' && t.verdict !== 'refused') {
      const was = this.cards.get(t.cardRef);
      this.cards.set(t.cardRef, {
        cardRef: t.cardRef,
        lastCounter: Math.max(was?.lastCounter ?? 0, t.counter ?? 0),
        secureSinceMs: was?.secureSinceMs ?? t.atMs,
        lastSecureTapMs: t.atMs,
      });
      this.loadedCards.add(t.cardRef);
      this.changedCards.add(t.cardRef);
    }
  }

  /** Writes what was recorded (inside the screening's transaction, under its locks). */
  async write(c: PgClient): Promise<void> {
    if (this.inserted.length) {
      const col = <K extends keyof TapAssurance>(key: K) => this.inserted.map((t) => t[key] ?? null);
      await c.query(
        `INSERT INTO secure_taps (${TAP_COLS})
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::bigint[], $9::text[], $10::bigint[], $11::text[], $12::text[])
         ON CONFLICT (reader_id, event_id) DO NOTHING`,
        [
          col('readerId'),
          col('eventId'),
          col('seq'),
          col('cardRef'),
          col('assurance'),
          col('verdict'),
          col('code'),
          col('counter'),
          col('detail'),
          col('atMs'),
          col('proofKind'),
          col('nonce'),
        ],
      );
    }
    if (this.changedCards.size) {
      const rows = [...this.changedCards].map((ref) => this.cards.get(ref) as SecureCardState);
      await c.query(
        `INSERT INTO secure_cards (card_ref, last_counter, secure_since_ms, last_secure_tap_ms)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
         ON CONFLICT (card_ref) DO UPDATE SET
           last_counter = GREATEST(secure_cards.last_counter, excluded.last_counter),
           last_secure_tap_ms = excluded.last_secure_tap_ms`,
        [
          rows.map((r) => r.cardRef),
          rows.map((r) => r.lastCounter),
          rows.map((r) => r.secureSinceMs),
          rows.map((r) => r.lastSecureTapMs),
        ],
      );
    }
  }
}
