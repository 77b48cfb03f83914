import { CardRef, SafeId } from '../../../protocol/index.js';
import type { Clock } from '../../../protocol/index.js';
import type { Db } from '../store/db.js';
import { statementCache } from '../visits/stmt-cache.js';

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

/**
 * Minimal card registry: card → staff member, with revocation (the provisioning issue builds the
 * full one). Table `cards` (migration visits-001).
 */
export class CardRegistry {
  private readonly db: Db;
  private readonly q: ReturnType<typeof statementCache>;
  private readonly clock: Clock;
  constructor(opts: { db: Db; clock: Clock }) {
    this.db = opts.db;
    this.q = statementCache(opts.db);
    this.clock = opts.clock;
  }

  /** Adds a card or re-assigns it (and un-revokes it). Throws on malformed references. */
  addCard(c: { cardRef: string; staffRef: string }): void {
    const cardRef = CardRef.parse(c.cardRef);
    const staffRef = SafeId.parse(c.staffRef);
    this.q(
      `INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES (?, ?, NULL, ?)
         ON CONFLICT (card_ref) DO UPDATE SET staff_ref = excluded.staff_ref, revoked_at = NULL`,
    ).run(cardRef, staffRef, this.clock.now());
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
