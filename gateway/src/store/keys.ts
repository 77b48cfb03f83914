/**
 * Fleet-key (pseudonym) rotation's store port (issue 16; SQLite only: a rotation on PostgreSQL is refused).
 * Tables card_ref_map and fleet_key_rotations (SQLite step `keys-001`); a rotation also rewrites cards,
 * unattributed visits, open unknown-card anomalies and secure-card counters in the same transaction. The rules
 * (which pseudonyms map, the vault) are keys/rotate.ts; the adapter is ./sqlite/keys.ts.
 */

/** What a rotation changes: old fleet pseudonym → new, and the registered cards that cannot be mapped. */
export interface RotationChange {
  oldKeyId: string;
  newKeyId: string;
  /** old fleet pseudonym → new, for every UID the vault holds (registered or not). */
  mapped: ReadonlyMap<string, string>;
  /** Registered cards whose UID the vault lacks: they cannot be mapped. */
  unmapped: ReadonlyArray<{ cardRef: string; staffRef: string; revoked: boolean }>;
}

export interface RotationResult {
  mapped: number;
  cards: number;
  unattributedVisits: number;
  anomalies: number;
  dropped: number;
}

export interface KeyRotationStore {
  /** The key ids rotations have retired. */
  retiredKeyIds(): Set<string>;
  /** The newest rotation recorded, if any. */
  lastRotation(): { oldKeyId: string; newKeyId: string; atMs: number } | null;
  /** The registered cards, by card_ref. */
  cards(): Array<{ cardRef: string; staffRef: string; revoked: boolean }>;
  /**
   * Applies a rotation in one transaction: the mapping recorded (an earlier rotation's old refs now name the
   * newest one), cards, replacement links, unattributed visits, open unknown-card anomalies and secure-card
   * counters rewritten, `unmapped` cards revoked when `dropUnmapped`, the rotation recorded, and `audit` called
   * inside the transaction.
   */
  apply(
    change: RotationChange,
    o: {
      nowMs: number;
      actor: string;
      dropUnmapped: boolean;
      audit: (details: Record<string, unknown>) => void;
    },
  ): RotationResult;
}
