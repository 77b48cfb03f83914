import { CardRef, SafeId } from '../../../protocol/index.js';
import type { Clock } from '../../../protocol/index.js';
import { SqliteOutbox } from '../store/sqlite/outbox.js';
import type { Db } from '../store/sqlite/db.js';
import { attributeCard, type AttributionResult } from '../visits/attribution.js';
import { statementCache } from '../store/sqlite/stmt-cache.js';

/** What the gateway knows about a card at a given time. */
export type CardStatus =
  | { kind: 'unknown' }
  | { kind: 'known'; staffRef: string }
  | { kind: 'revoked'; staffRef: string; revokedAtMs: number };

export interface CardInfo {
  cardRef: string;
  staffRef: string;
  revokedAtMs: number | null;
}

export interface CardAssignResult {
  cardRef: string;
  staffRef: string;
  /** added: was unknown; unchanged: already this staff member's, active; reassigned: another's, or revoked. */
  registry: 'added' | 'unchanged' | 'reassigned';
  /** Earlier taps of the card resolved by this assignment (gateway/src/visits/attribution.ts). */
  attributed: AttributionResult;
}

/**
 * Card registry: card → staff member, with revocation. Table `cards` (migration visits-001).
 * Assigning a card also resolves its earlier taps made while it was unknown (attribution-001).
 */
export class CardRegistry {
  private readonly db: Db;
  private readonly q: ReturnType<typeof statementCache>;
  private readonly clock: Clock;
  private readonly outbox: Pick<SqliteOutbox, 'enqueue'>;
  constructor(opts: { db: Db; clock: Clock; outbox?: Pick<SqliteOutbox, 'enqueue'> }) {
    this.db = opts.db;
    this.q = statementCache(opts.db);
    this.clock = opts.clock;
    this.outbox = opts.outbox ?? new SqliteOutbox({ db: opts.db });
  }

  /**
   * Adds a card or re-assigns it (and un-revokes it) and, in the same transaction, attributes the
   * card's earlier unattributed visits and refused taps to the staff member (`visit.attributed`
   * events). Idempotent. Visits already attributed (to anyone) are never rewritten: a re-assignment
   * changes who holds the card from now on only. Throws on malformed references.
   */
  addCard(c: { cardRef: string; staffRef: string; actor?: string }): CardAssignResult {
    const cardRef = CardRef.parse(c.cardRef);
    const staffRef = SafeId.parse(c.staffRef);
    const nowMs = this.clock.now();
    return this.db.transaction((): CardAssignResult => {
      const before = this.get(cardRef);
      this.q(
        `INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES (?, ?, NULL, ?)
           ON CONFLICT (card_ref) DO UPDATE SET staff_ref = excluded.staff_ref, revoked_at = NULL`,
      ).run(cardRef, staffRef, nowMs);
      const registry = !before
        ? 'added'
        : before.staffRef === staffRef && before.revokedAtMs === null
          ? 'unchanged'
          : 'reassigned';
      const attributed = attributeCard(
        { db: this.db, outbox: this.outbox },
        { cardRef, staffRef, actor: c.actor ?? 'system', nowMs },
      );
      return { cardRef, staffRef, registry, attributed };
    })();
  }

  /** Revokes a card from now on; returns false when the card is unknown. */
  revokeCard(cardRef: string): boolean {
    const r = this.q('UPDATE cards SET revoked_at = ? WHERE card_ref = ? AND revoked_at IS NULL').run(
      this.clock.now(),
      cardRef,
    );
    return r.changes > 0;
  }

  get(cardRef: string): CardInfo | null {
    const row = this.q('SELECT card_ref, staff_ref, revoked_at FROM cards WHERE card_ref = ?').get(
      cardRef,
    ) as { card_ref: string; staff_ref: string; revoked_at: number | null } | undefined;
    return row ? { cardRef: row.card_ref, staffRef: row.staff_ref, revokedAtMs: row.revoked_at } : null;
  }

  /** The card's status at `atMs` (a tap before the revocation time still counts as valid). */
  statusAt(cardRef: string, atMs: number): CardStatus {
    const c = this.get(cardRef);
    if (!c) return { kind: 'unknown' };
    if (c.revokedAtMs !== null && c.revokedAtMs <= atMs) {
      return { kind: 'revoked', staffRef: c.staffRef, revokedAtMs: c.revokedAtMs };
    }
    return { kind: 'known', staffRef: c.staffRef };
  }
}
