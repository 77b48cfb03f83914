import type { CardLifecycleStore } from '../card-lifecycle.js';
import type { CardAssignResult, CardInfo, CardStatus, CardStore, UnknownCard } from '../ports.js';
import { attributeCard } from './attribution.js';
import { openDatabase, type Db } from './db.js';
import { SqliteOutbox } from './outbox.js';
import { statementCache } from './stmt-cache.js';

type AssignReq = { cardRef: string; staffRef: string; actor: string; nowMs: number };
type CardRow = {
  card_ref: string;
  staff_ref: string;
  revoked_at: number | null;
  valid_from_ms: number | null;
  valid_to_ms: number | null;
  replaced_by: string | null;
};
const cardInfo = (r: CardRow): CardInfo => ({
  cardRef: r.card_ref,
  staffRef: r.staff_ref,
  revokedAtMs: r.revoked_at,
  validFromMs: r.valid_from_ms,
  validToMs: r.valid_to_ms,
  replacedBy: r.replaced_by,
});

/**
 * The card registry on SQLite (port: CardStore in ../ports.ts): card → staff member, with
 * revocation. Assigning a card also resolves its earlier taps made while it was unknown (attribution,
 * ./attribution.ts) in the same transaction. References are validated by the caller (cards/registry.ts).
 */
export class SqliteCardStore implements CardStore, CardLifecycleStore {
  private readonly db: Db;
  private readonly q: ReturnType<typeof statementCache>;
  private readonly outbox: Pick<SqliteOutbox, 'enqueue'>;
  private readonly now: () => number;
  constructor(opts: { db: Db; outbox?: Pick<SqliteOutbox, 'enqueue'>; clock?: { now(): number } }) {
    this.db = opts.db;
    const clock = opts.clock;
    this.now = clock ? () => clock.now() : () => Date.now();
    this.q = statementCache(opts.db);
    this.outbox = opts.outbox ?? new SqliteOutbox({ db: opts.db });
  }

  /**
   * Old fleet pseudonym → current card reference (table card_ref_map, keys-001, written by `keys rotate`), or
   * null when the map is empty (a gateway that never rotated its fleet key). Read once: the map changes only
   * while the gateway is stopped (`keys rotate` refuses a running gateway).
   */
  currentRefs(): ((cardRef: string) => string) | null {
    if (this.q('SELECT 1 FROM card_ref_map LIMIT 1').get() === undefined) return null;
    const q = this.q('SELECT new_ref AS n FROM card_ref_map WHERE old_ref = ?');
    return (cardRef) => (q.get(cardRef) as { n: string } | undefined)?.n ?? cardRef;
  }

  assign(req: AssignReq): CardAssignResult {
    return this.db.transaction((): CardAssignResult => {
      const before = this.get(req.cardRef);
      this.q(
        `INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES (?, ?, NULL, ?)
           ON CONFLICT (card_ref) DO UPDATE SET staff_ref = excluded.staff_ref, revoked_at = NULL`,
      ).run(req.cardRef, req.staffRef, req.nowMs);
      const registry = !before
        ? 'added'
        : before.staffRef === req.staffRef && before.revokedAtMs === null
          ? 'unchanged'
          : 'reassigned';
      const attributed = attributeCard({ db: this.db, outbox: this.outbox }, req);
      return { cardRef: req.cardRef, staffRef: req.staffRef, registry, attributed };
    })();
  }

  assignMany(reqs: readonly AssignReq[]): CardAssignResult[] {
    return this.db.transaction(() => reqs.map((r) => this.assign(r)))();
  }

  revoke(cardRef: string, atMs: number): boolean {
    return (
      this.q('UPDATE cards SET revoked_at = ? WHERE card_ref = ? AND revoked_at IS NULL').run(atMs, cardRef)
        .changes > 0
    );
  }

  get(cardRef: string): CardInfo | null {
    const row = this.q(
      `SELECT card_ref, staff_ref, revoked_at, valid_from_ms, valid_to_ms, replaced_by
         FROM cards WHERE card_ref = ?`,
    ).get(cardRef) as CardRow | undefined;
    return row ? cardInfo(row) : null;
  }

  /**
   * The card's status at `atMs` (a tap before the revocation time still counts as valid). A tap
   * outside the card's validity window counts as revoked (from the window's edge).
   */
  statusAt(cardRef: string, atMs: number): CardStatus {
    const c = this.get(cardRef);
    if (!c) return { kind: 'unknown' };
    if (c.revokedAtMs !== null && c.revokedAtMs <= atMs) {
      return { kind: 'revoked', staffRef: c.staffRef, revokedAtMs: c.revokedAtMs };
    }
    if (c.validToMs != null && atMs >= c.validToMs) {
      return { kind: 'revoked', staffRef: c.staffRef, revokedAtMs: c.validToMs };
    }
    if (c.validFromMs != null && atMs < c.validFromMs) {
      return { kind: 'revoked', staffRef: c.staffRef, revokedAtMs: atMs };
    }
    return { kind: 'known', staffRef: c.staffRef };
  }

  /** Makes a revoked card valid again from now on (its staff member unchanged); false when not revoked. */
  reinstate(cardRef: string): boolean {
    return (
      this.q(
        'UPDATE cards SET revoked_at = NULL, replaced_by = NULL WHERE card_ref = ? AND revoked_at IS NOT NULL',
      ).run(cardRef).changes > 0
    );
  }

  /** Sets (or clears, with null) the card's validity window; false when the card is unknown. */
  setValidity(cardRef: string, fromMs: number | null, toMs: number | null): boolean {
    return (
      this.q('UPDATE cards SET valid_from_ms = ?, valid_to_ms = ? WHERE card_ref = ?').run(
        fromMs,
        toMs,
        cardRef,
      ).changes > 0
    );
  }

  /** Revokes, at `atMs`, every active card NOT in `keep` (full-list import); the refs withdrawn, sorted. */
  withdrawMissing(keep: ReadonlySet<string>, atMs: number): string[] {
    return this.db.transaction(() => {
      const active = this.q('SELECT card_ref FROM cards WHERE revoked_at IS NULL ORDER BY card_ref')
        .pluck()
        .all() as string[];
      const gone = active.filter((r) => !keep.has(r));
      const stmt = this.q('UPDATE cards SET revoked_at = ? WHERE card_ref = ? AND revoked_at IS NULL');
      for (const r of gone) stmt.run(atMs, r);
      return gone;
    })();
  }

  /**
   * Lost-card replacement in ONE transaction: the old card is revoked at `nowMs` and linked to the new
   * one; the new card is assigned to the same staff member with the same validity window (attributing
   * its earlier unknown taps). The staff member's visits are untouched: history follows the staff ref.
   */
  replace(req: { oldRef: string; newRef: string; actor: string; nowMs: number }): CardAssignResult {
    return this.db.transaction((): CardAssignResult => {
      const old = this.get(req.oldRef);
      if (!old) throw new Error(`card ${req.oldRef} is not registered`);
      this.q('UPDATE cards SET revoked_at = coalesce(revoked_at, ?), replaced_by = ? WHERE card_ref = ?').run(
        req.nowMs,
        req.newRef,
        req.oldRef,
      );
      const r = this.assign({
        cardRef: req.newRef,
        staffRef: old.staffRef,
        actor: req.actor,
        nowMs: req.nowMs,
      });
      this.setValidity(req.newRef, old.validFromMs ?? null, old.validToMs ?? null);
      return r;
    })();
  }

  /**
   * What readers must be told at `nowMs`: cards valid now (allow-list) and cards known but not valid
   * now (revoked, or outside their validity window), each sorted.
   */
  cardLists(nowMs: number): { valid: string[]; invalid: string[] } {
    const rows = this.q(
      `SELECT card_ref,
              (revoked_at IS NULL AND (valid_from_ms IS NULL OR valid_from_ms <= ?)
                AND (valid_to_ms IS NULL OR valid_to_ms > ?)) AS ok
         FROM cards ORDER BY card_ref`,
    ).all(nowMs, nowMs) as { card_ref: string; ok: number }[];
    return {
      valid: rows.filter((r) => r.ok === 1).map((r) => r.card_ref),
      invalid: rows.filter((r) => r.ok !== 1).map((r) => r.card_ref),
    };
  }

  /** The next validity edge after `nowMs` (when the lists above change by themselves), or null. */
  nextValidityEdge(nowMs: number): number | null {
    const v = this.q(
      `SELECT min(t) FROM (
         SELECT valid_from_ms AS t FROM cards WHERE revoked_at IS NULL AND valid_from_ms > ?
         UNION ALL SELECT valid_to_ms FROM cards WHERE revoked_at IS NULL AND valid_to_ms > ?)`,
    )
      .pluck()
      .get(nowMs, nowMs) as number | null;
    return v ?? null;
  }

  /**
   * Card refs, sorted: valid now (active) or known but not valid now (revoked, or outside the validity
   * window): what a pushed config carries as allow-list and revoked list. "Now" is the injected clock.
   */
  refs(which: 'active' | 'revoked'): string[] {
    const lists = this.cardLists(this.now());
    return which === 'active' ? lists.valid : lists.invalid;
  }

  unknown(limit: number): UnknownCard[] {
    const rows = this.q(
      `SELECT a.card_ref AS cardRef, a.reader_id AS readerId, a.client_ref AS clientRef,
              count(*) AS taps, min(a.at_ms) AS firstMs, max(a.at_ms) AS lastMs
         FROM anomalies a LEFT JOIN cards c ON c.card_ref = a.card_ref
        WHERE a.kind = 'unknown-card' AND a.card_ref IS NOT NULL AND c.card_ref IS NULL
        GROUP BY a.card_ref, a.reader_id, a.client_ref
        ORDER BY lastMs DESC`,
    ).all() as {
      cardRef: string;
      readerId: string;
      clientRef: string | null;
      taps: number;
      firstMs: number;
      lastMs: number;
    }[];
    const byCard = new Map<string, UnknownCard>();
    for (const r of rows) {
      let c = byCard.get(r.cardRef);
      if (!c) {
        if (byCard.size >= limit) continue;
        c = { cardRef: r.cardRef, taps: 0, firstSeenMs: r.firstMs, lastSeenMs: r.lastMs, seenAt: [] };
        byCard.set(r.cardRef, c);
      }
      c.taps += r.taps;
      c.firstSeenMs = Math.min(c.firstSeenMs, r.firstMs);
      c.lastSeenMs = Math.max(c.lastSeenMs, r.lastMs);
      c.seenAt.push({ readerId: r.readerId, clientRef: r.clientRef, lastSeenMs: r.lastMs, taps: r.taps });
    }
    return [...byCard.values()];
  }
}

/** The active cards of a gateway's file (the `cards uids` CLI on a stopped or running gateway): opened, read, closed. */
export function activeCardRefsOf(path: string): string[] {
  const db = openDatabase(path, []);
  try {
    return new SqliteCardStore({ db }).refs('active');
  } finally {
    db.close();
  }
}
