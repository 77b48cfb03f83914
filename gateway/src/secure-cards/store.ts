/**
 * The secure-card tables behind ONE port (issue 18): per card, the last SUN counter accepted and
 * since when it is known to be secure; per tap, its assurance and verdict. SQLite adapter:
 * sqlite-store.ts (own migrations, `secure-` ids), so the whole group can move under store/ in one step.
 * Card references are pseudonyms (c1_...), never raw UIDs.
 */
export type Assurance = 'secure' | 'uid-only';
export type Verdict = 'accepted' | 'flagged' | 'refused';

export interface TapAssurance {
  readerId: string;
  eventId: string;
  seq: number;
  cardRef: string;
  assurance: Assurance;
  verdict: Verdict;
  /** Why (e.g. 'secure', 'uid-only', 'clone-suspect', 'replayed', 'bad-mac'). */
  code: string;
  /** SUN counter of a secure tap, else null. */
  counter: number | null;
  detail: string;
  atMs: number;
  /** What the card proved: 'ntag424-sun', 'desfire-ev2', or null (UID only). */
  proofKind?: string | null;
  /** A DESFire authentication's nonce (TI || RndB, hex): unique per authentication; null otherwise. */
  nonce?: string | null;
}

export interface SecureCardState {
  cardRef: string;
  lastCounter: number;
  secureSinceMs: number;
  lastSecureTapMs: number;
}

export interface SecureCardStore {
  card(cardRef: string): SecureCardState | undefined;
  /** Whether this card's DESFire authentication nonce was recorded before (a replayed transcript). */
  nonceSeen(cardRef: string, nonce: string): boolean;
  /** The verdict already recorded for this event (a resend gets the same answer). */
  tap(readerId: string, eventId: string): TapAssurance | undefined;
  /** Records a tap's verdict and, for an accepted secure tap, the card's new counter; one transaction. */
  record(t: TapAssurance): void;
  /** Taps of a reader (newest first), for reports and the admin API. */
  taps(readerId: string, limit: number): TapAssurance[];
  /** Taps by assurance and verdict, optionally for taps received in [fromMs, toMs). */
  countByAssurance(range?: {
    fromMs: number;
    toMs: number;
  }): Array<{ assurance: Assurance; verdict: Verdict; count: number }>;
}
