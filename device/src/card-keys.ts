import {
  CARD_SCHEME_SEALED,
  pseudonymiseCard,
  readerCardRef,
  sealCardUid,
  type CardScheme,
  type ReaderCardKeys,
} from '../../protocol/index.js';

/** How this reader names a card at a tap: the reference its allow-list uses, and the sealed UID if any. */
export interface CardIdentity {
  /** c1_ (fleet-key readers) or r1_ (sealed-v1 readers): the key of the card's local state and allow-list. */
  card: string;
  /** sealed-v1: the UID sealed to the gateway (journalled with the tap; only the gateway opens it). */
  sealedCard?: string;
}

export interface CardIdentifier {
  readonly scheme: CardScheme;
  /** Throws on an invalid UID (the caller ignores the read). Never logs the UID. */
  readonly identify: (uid: string) => CardIdentity;
}

/**
 * The card half of the device config (docs/security.md "Key exposure"): a reader provisioned on the sealed
 * scheme holds `cardKeys` (its own card key and the gateway's public seal key) and no fleet key; a reader
 * provisioned before holds `fleetKey` and keeps working as it did until it is provisioned again.
 */
export function cardIdentifier(cfg: {
  readerId: string;
  fleetKey?: string | undefined;
  cardKeys?: ReaderCardKeys | undefined;
}): CardIdentifier {
  const keys = cfg.cardKeys;
  if (keys) {
    return {
      scheme: CARD_SCHEME_SEALED,
      identify: (uid) => ({
        card: readerCardRef(uid, keys.readerKey),
        sealedCard: sealCardUid(uid, keys.gatewayKey, cfg.readerId),
      }),
    };
  }
  const fleetKey = cfg.fleetKey;
  if (!fleetKey) throw new Error('the device config has neither cardKeys nor fleetKey');
  return { scheme: 'fleet-key', identify: (uid) => ({ card: pseudonymiseCard(uid, fleetKey) }) };
}

/**
 * Whether a pushed card list is in this reader's form (r1_ for sealed-v1, c1_ for fleet-key). A list in
 * the other form would refuse every card, so such a config is refused and the last good one kept; the
 * gateway learns the scheme from the reader's status and pushes again.
 */
export function cardListProblem(
  scheme: CardScheme,
  lists: { allowList: readonly string[] | null; revoked: readonly string[] },
): string | null {
  const want = scheme === CARD_SCHEME_SEALED ? 'r1_' : 'c1_';
  const all = [...(lists.allowList ?? []), ...lists.revoked];
  const wrong = all.filter((r) => !r.startsWith(want)).length;
  if (wrong === 0) return null;
  return `card lists in the wrong form for this reader (${scheme}): ${wrong} reference(s) not ${want}…`;
}
