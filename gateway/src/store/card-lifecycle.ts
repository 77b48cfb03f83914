import type { Awaitable } from './awaitable.js';
import type { CardAssignResult, CardInfo } from './ports.js';

/**
 * The card lifecycle's port (issue 16; served on PostgreSQL since issue 14): revoke, reinstate, validity
 * windows, withdrawal of the cards missing from a full list, lost-card replacement, and the card lists a
 * config push carries. Adapters: `sqlite/cards.ts` (synchronous, prepared) and `postgres/cards.ts`. Every
 * method is one unit of work (one statement or one transaction); references are validated by the caller
 * (cards/lifecycle.ts).
 */
export interface CardLifecycleStore {
  get(cardRef: string): Awaitable<CardInfo | null>;
  /** Revokes from `atMs` on; false when unknown or already revoked. */
  revoke(cardRef: string, atMs: number): Awaitable<boolean>;
  /** Makes a revoked card valid again from now on (its staff member unchanged); false when not revoked. */
  reinstate(cardRef: string): Awaitable<boolean>;
  /** Sets (or clears, with null) the card's validity window; false when the card is unknown. */
  setValidity(cardRef: string, fromMs: number | null, toMs: number | null): Awaitable<boolean>;
  /** Revokes, at `atMs`, every active card NOT in `keep` (full-list import); the refs withdrawn, sorted. */
  withdrawMissing(keep: ReadonlySet<string>, atMs: number): Awaitable<string[]>;
  /**
   * Lost-card replacement in ONE transaction: the old card revoked at `nowMs` and linked to the new one, the new
   * one assigned to the same staff member with the same validity window (attributing its earlier unknown taps).
   */
  replace(req: { oldRef: string; newRef: string; actor: string; nowMs: number }): Awaitable<CardAssignResult>;
  /** Cards valid at `nowMs` (allow-list) and known but not valid then (revoked list), each sorted bytewise. */
  cardLists(nowMs: number): Awaitable<{ valid: string[]; invalid: string[] }>;
}
