import { CardRef, SafeId } from '../../../protocol/index.js';
import type { Clock } from '../../../protocol/index.js';
import type { CardAssignResult, CardInfo, CardStatus } from '../store/ports.js';
import type { Db } from '../store/sqlite/db.js';
import type { SqliteOutbox } from '../store/sqlite/outbox.js';
import { SqliteCardStore } from '../store/sqlite/cards.js';

export type { CardAssignResult, CardInfo, CardStatus } from '../store/ports.js';

/**
 * Card registry: card → staff member, with revocation (storage: the CardStore port, table `cards`).
 * Assigning a card also resolves its earlier taps made while it was unknown (store/sqlite/attribution.ts).
 * This layer validates references and reads the clock.
 */
export class CardRegistry {
  readonly store: SqliteCardStore;
  private readonly clock: Clock;
  /** Old fleet pseudonym → current (keys/rotate.ts); null on a gateway that never rotated its fleet key. */
  private readonly current: ((cardRef: string) => string) | null;
  constructor(opts: { db: Db; clock: Clock; outbox?: Pick<SqliteOutbox, 'enqueue'> }) {
    this.store = new SqliteCardStore(opts);
    this.clock = opts.clock;
    // The map changes only while the gateway is stopped (`keys rotate` refuses a running gateway).
    const mapped = opts.db.prepare('SELECT 1 FROM card_ref_map LIMIT 1').get() !== undefined; // keys-001
    if (mapped) {
      const q = opts.db.prepare('SELECT new_ref AS n FROM card_ref_map WHERE old_ref = ?');
      this.current = (cardRef) => (q.get(cardRef) as { n: string } | undefined)?.n ?? cardRef;
    } else this.current = null;
  }

  /**
   * Adds a card or re-assigns it (and un-revokes it) and, in the same transaction, attributes the
   * card's earlier unattributed visits and refused taps to the staff member (`visit.attributed`
   * events). Idempotent. Visits already attributed (to anyone) are never rewritten: a re-assignment
   * changes who holds the card from now on only. Throws on malformed references.
   */
  addCard(c: { cardRef: string; staffRef: string; actor?: string }): CardAssignResult {
    return this.store.assign({
      cardRef: CardRef.parse(this.current ? this.current(c.cardRef) : c.cardRef), // an old pseudonym: its card
      staffRef: SafeId.parse(c.staffRef),
      actor: c.actor ?? 'system',
      nowMs: this.clock.now(),
    });
  }

  /** Several cards in ONE transaction (CSV import): all or none. Throws on malformed references. */
  addCards(cs: ReadonlyArray<{ cardRef: string; staffRef: string; actor: string }>): CardAssignResult[] {
    const nowMs = this.clock.now();
    return this.store.assignMany(
      cs.map((c) => ({
        cardRef: CardRef.parse(this.current ? this.current(c.cardRef) : c.cardRef),
        staffRef: SafeId.parse(c.staffRef),
        actor: c.actor,
        nowMs,
      })),
    );
  }

  /** Revokes a card from now on; returns false when the card is unknown. */
  revokeCard(cardRef: string): boolean {
    return this.store.revoke(cardRef, this.clock.now());
  }

  get(cardRef: string): CardInfo | null {
    return this.store.get(cardRef);
  }

  /**
   * The card's status at `atMs` (a tap before the revocation time still counts as valid). A pseudonym under a fleet
   * key a rotation retired (a tap journalled before it, or made by a reader not yet provisioned again) is the card
   * it was mapped to: the same staff member.
   */
  statusAt(cardRef: string, atMs: number): CardStatus {
    return this.store.statusAt(this.current ? this.current(cardRef) : cardRef, atMs);
  }
}
