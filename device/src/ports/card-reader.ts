/**
 * Card-reader port (CONTRIBUTING.md, "Ports and drivers"). Every driver (nfc-pcsc, simulated) implements this, and one
 * contract suite runs over all of them.
 */
import type { CardProof } from '../../../protocol/index.js';

export interface CardReaderEvents {
  /**
   * A card arrived. `uid` is already normalised by protocol's normalizeUid (uppercase hex, MSB first).
   * `proof`: what a secure card proved at this tap (an NTAG 424 DNA SUN message); absent for UID-only
   * cards. `readMs`: how long the card's own read took (UID and, for secure cards, the SUN message).
   * `authFailed`: a card that claimed to be secure failed the reader's check (a DESFire card of the
   * fleet's application that did not authenticate with the provisioned key): the device refuses it.
   */
  card: [
    {
      uid: string;
      atMonoMs: number;
      proof?: CardProof;
      readMs?: number;
      authFailed?: { code: 'card-auth-failed'; reason: string };
    },
  ];
  /** The card left the field. */
  'card-removed': [{ uid: string; atMonoMs: number }];
  /** A reader is connected and ready. */
  attached: [{ name: string }];
  /** The reader went away (unplugged, pcscd died). The driver keeps trying to get it back. */
  detached: [{ name: string; reason: string }];
  /** A read failed (bad UID, transmit error). Never fatal; the driver keeps running. */
  error: [{ message: string; code: string }];
}

export type CardReaderEvent = keyof CardReaderEvents;

export interface CardReader {
  /** Starts watching for readers and cards. Resolves once watching, even when no reader is attached yet. */
  start(): Promise<void>;
  /** Stops watching and frees the hardware. Idempotent. */
  stop(): Promise<void>;
  /** Whether a reader is attached right now. */
  readonly attached: boolean;
  on<E extends CardReaderEvent>(event: E, listener: (...args: CardReaderEvents[E]) => void): this;
  off<E extends CardReaderEvent>(event: E, listener: (...args: CardReaderEvents[E]) => void): this;
}
