import { CardRef, SafeId } from '../../../protocol/index.js';
import type { Clock } from '../../../protocol/index.js';
import type { CardAssignResult, CardInfo, CardStatus } from '../store/ports.js';
import type { SqliteCardStore } from '../store/sqlite/cards.js';

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
  /** `store`: the cards table on the gateway's file (store/sqlite/cards.ts), built by the composition root. */
  constructor(opts: { store: SqliteCardStore; clock: Clock }) {
    this.store = opts.store;
    this.clock = opts.clock;
    // The map changes only while the gateway is stopped (`keys rotate` refuses a running gateway).
    this.current = opts.store.currentRefs();
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
