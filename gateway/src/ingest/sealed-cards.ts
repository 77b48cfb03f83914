import type { GatewayCardKeys, TapEvent } from '../../../protocol/index.js';

/** What unsealing made of a batch's events (the shape of ingest's ScreenResult). */
export interface Unsealed {
  keep: TapEvent[];
  refused: Array<{ seq: number; detail: string }>;
}

/** Thrown when a batch is sealed to another gateway key: nothing is stored or acked, the device resends. */
export class UnknownSealKeyError extends Error {
  constructor(readerId: string) {
    super(
      `reader ${readerId} sealed its taps to another gateway key: every gateway instance must have the same fleetKey ` +
        '(the reader keeps its taps and resends them)',
    );
    this.name = 'UnknownSealKeyError';
  }
}

/**
 * Sealed cards at ingest (docs/security.md "Key exposure"): an event of a sealed-v1 reader carries its own
 * reference (`r1_`) and the UID sealed to the gateway. Here, before the store (SQLite or PostgreSQL), the
 * UID is unsealed, checked against the reader's reference, turned into the fleet pseudonym with the fleet
 * key, and dropped: the stored event is the one a fleet-key reader would have sent (same `c1_`, no
 * `sealedCard`), so dedupe, visits, reports and the webhook are unchanged. Events of fleet-key readers
 * pass as they are.
 *
 * A sealed card that does not open, or that names another card than its `r1_` reference, is refused (held
 * as rejected with the reason, never stored as a tap): only a tampered journal or a forged message makes
 * one. A card sealed to a key this gateway does not have throws UnknownSealKeyError (config drift between
 * instances, not the device's fault): the batch is neither stored nor acked. The UID is never logged.
 */
export function unsealEvents(
  keys: GatewayCardKeys,
  readerId: string,
  events: readonly TapEvent[],
  count: (outcome: 'unsealed' | 'refused') => void,
  /** The UIDs opened (for the card UID vault, cards/uid-vault.ts); called once per batch. Never log them. */
  learn?: (uids: string[]) => void,
): Unsealed {
  const out: Unsealed = { keep: [], refused: [] };
  const uids: string[] = [];
  for (const e of events) {
    if (e.sealedCard === undefined) {
      out.keep.push(e);
      continue;
    }
    const { sealedCard, ...rest } = e;
    const opened = keys.unseal(sealedCard, readerId);
    if (!opened.ok) {
      if (opened.reason === 'unknown-key') throw new UnknownSealKeyError(readerId);
      count('refused');
      out.refused.push({ seq: e.seq, detail: `sealed card refused: ${opened.detail}` });
      continue;
    }
    if (!keys.isReaderRef(readerId, opened.uid, e.card)) {
      count('refused');
      out.refused.push({
        seq: e.seq,
        detail: 'sealed card refused: it does not match the reader card reference',
      });
      continue;
    }
    count('unsealed');
    uids.push(opened.uid);
    out.keep.push({ ...rest, card: keys.fleetRef(opened.uid) });
  }
  if (uids.length) learn?.(uids);
  return out;
}
