import { existsSync, renameSync, writeFileSync } from 'node:fs';
import type { GatewayCardKeys } from '../../../protocol/index.js';
import { sealCardUid } from '../../../protocol/index.js';
import { VAULT } from '../cards/uid-vault.js';
import type { KeyRotationStore, RotationResult } from '../store/keys.js';

export type { KeyRotationStore, RotationResult } from '../store/keys.js';

/**
 * Fleet-key (pseudonym) rotation on SQLite (issue 16, docs/security.md "Fleet-key rotation"). Every card whose UID
 * the sealed vault holds gets its fleet pseudonym under the new key; one transaction records the mapping old → new
 * (`card_ref_map`), rewrites the card registry (`cards`, replacement links, secure-card counters), moves the
 * visits and open unknown-card anomalies that have no staff member (their card is their only identity) to the new
 * reference, and records the rotation (`fleet_key_rotations`, with key ids only) and an audit entry. Visits with a
 * staff member keep their old `c1_` (the care record is not rewritten): reports count them by staff_ref.
 *
 * Its tables (`card_ref_map`, `fleet_key_rotations`) are steps of the SQLite migration list (`keys-001`); the
 * statements are the store's (store/sqlite/keys.ts, port store/keys.ts `KeyRotationStore`).
 */
export interface RotationPlan {
  oldKeyId: string;
  newKeyId: string;
  /** old fleet pseudonym → new, for every UID the vault holds (registered or not). */
  mapped: Map<string, string>;
  /** Registered cards whose UID the vault lacks: they cannot be mapped. */
  unmapped: Array<{ cardRef: string; staffRef: string; revoked: boolean }>;
  /** The vault's UIDs (never print them). */
  uids: string[];
}

/** What a rotation from `oldKeys` to `newKeys` would do, given the vault's cards (fleet pseudonym → UID). */
export function planRotation(
  store: Pick<KeyRotationStore, 'cards'>,
  vault: ReadonlyMap<string, string>,
  oldKeys: GatewayCardKeys,
  newKeys: GatewayCardKeys,
): RotationPlan {
  const mapped = new Map<string, string>();
  for (const [oldRef, uid] of vault) {
    if (oldKeys.fleetRef(uid) !== oldRef) continue; // not of the current key: never mapped
    mapped.set(oldRef, newKeys.fleetRef(uid));
  }
  const cards = store.cards();
  return {
    oldKeyId: oldKeys.keyId,
    newKeyId: newKeys.keyId,
    mapped,
    unmapped: cards.filter((c) => !mapped.has(c.cardRef)),
    uids: [...vault.values()],
  };
}

/**
 * Applies `plan` in one transaction (see the module comment). `dropUnmapped`: registered cards without a UID are
 * revoked now (kept for their history; import their UID and reinstate them to use them again); without it a
 * plan with such cards throws. `audit` is called inside the transaction (an SQLite audit store appends
 * synchronously, so the entry commits with the rotation).
 */
export function applyRotation(
  store: Pick<KeyRotationStore, 'apply'>,
  plan: RotationPlan,
  o: {
    nowMs: number;
    actor: string;
    dropUnmapped: boolean;
    audit: (details: Record<string, unknown>) => void;
  },
): RotationResult {
  if (plan.unmapped.length && !o.dropUnmapped) {
    throw new Error(`${plan.unmapped.length} card(s) have no UID in the vault: not rotated`);
  }
  return store.apply(plan, o);
}

/** The vault file's lines for `uids`, sealed to `keys` and keyed by their fleet pseudonym under it. */
export function vaultLines(keys: GatewayCardKeys, uids: readonly string[]): string {
  return uids
    .map(
      (uid) => `${JSON.stringify({ c: keys.fleetRef(uid), s: sealCardUid(uid, keys.publicKey, VAULT) })}\n`,
    )
    .join('');
}

/**
 * The vault re-sealed to the new key: written beside the vault as `FILE.rotating` before the database
 * transaction, moved over the vault after it commits (`finishVault`). A crash in between leaves the
 * `.rotating` file: running the same rotation again finds the rotation recorded and finishes the move.
 */
export function stageVault(file: string, keys: GatewayCardKeys, uids: readonly string[]): string {
  const staged = `${file}.rotating`;
  writeFileSync(staged, vaultLines(keys, uids), { mode: 0o600 });
  return staged;
}

export function finishVault(file: string): boolean {
  const staged = `${file}.rotating`;
  if (!existsSync(staged)) return false;
  renameSync(staged, file);
  return true;
}
