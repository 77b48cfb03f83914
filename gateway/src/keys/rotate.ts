import { existsSync, renameSync, writeFileSync } from 'node:fs';
import type { GatewayCardKeys } from '../../../protocol/index.js';
import { sealCardUid } from '../../../protocol/index.js';
import type { Db } from '../store/sqlite/db.js';
import { VAULT } from '../cards/uid-vault.js';

/**
 * Fleet-key (pseudonym) rotation on SQLite (issue 16, docs/security.md "Fleet-key rotation"). Every card whose UID
 * the sealed vault holds gets its fleet pseudonym under the new key; one transaction records the mapping old → new
 * (`card_ref_map`), rewrites the card registry (`cards`, replacement links, secure-card counters), moves the
 * visits and open unknown-card anomalies that have no staff member (their card is their only identity) to the new
 * reference, and records the rotation (`fleet_key_rotations`, with key ids only) and an audit entry. Visits with a
 * staff member keep their old `c1_` (the care record is not rewritten): reports count them by staff_ref.
 *
 * Its tables (`card_ref_map`, `fleet_key_rotations`) are steps of the SQLite migration list (`keys-001`).
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

const hasTable = (db: Db, name: string): boolean =>
  db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;

/** The key ids rotations have retired (a config whose key is one of them is stale). */
export function retiredKeyIds(db: Db): Set<string> {
  return new Set(
    (db.prepare('SELECT old_key_id AS k FROM fleet_key_rotations').all() as Array<{ k: string }>).map(
      (r) => r.k,
    ),
  );
}

/** What a rotation from `oldKeys` to `newKeys` would do, given the vault's cards (fleet pseudonym → UID). */
export function planRotation(
  db: Db,
  vault: ReadonlyMap<string, string>,
  oldKeys: GatewayCardKeys,
  newKeys: GatewayCardKeys,
): RotationPlan {
  const mapped = new Map<string, string>();
  for (const [oldRef, uid] of vault) {
    if (oldKeys.fleetRef(uid) !== oldRef) continue; // not of the current key: never mapped
    mapped.set(oldRef, newKeys.fleetRef(uid));
  }
  const cards = db
    .prepare('SELECT card_ref, staff_ref, revoked_at FROM cards ORDER BY card_ref')
    .all() as Array<{
    card_ref: string;
    staff_ref: string;
    revoked_at: number | null;
  }>;
  return {
    oldKeyId: oldKeys.keyId,
    newKeyId: newKeys.keyId,
    mapped,
    unmapped: cards
      .filter((c) => !mapped.has(c.card_ref))
      .map((c) => ({ cardRef: c.card_ref, staffRef: c.staff_ref, revoked: c.revoked_at !== null })),
    uids: [...vault.values()],
  };
}

export interface RotationResult {
  mapped: number;
  cards: number;
  unattributedVisits: number;
  anomalies: number;
  dropped: number;
}

/**
 * Applies `plan` in one transaction (see the module comment). `dropUnmapped`: registered cards without a UID are
 * revoked now (kept for their history; import their UID and reinstate them to use them again); without it a
 * plan with such cards throws. `audit` is called inside the transaction (an SQLite audit store appends
 * synchronously, so the entry commits with the rotation).
 */
export function applyRotation(
  db: Db,
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
  const chain = db.prepare('UPDATE card_ref_map SET new_ref = ? WHERE new_ref = ?');
  const map = db.prepare(
    `INSERT INTO card_ref_map (old_ref, new_ref, rotated_at_ms) VALUES (?, ?, ?)
       ON CONFLICT (old_ref) DO UPDATE SET new_ref = excluded.new_ref, rotated_at_ms = excluded.rotated_at_ms`,
  );
  const card = db.prepare('UPDATE cards SET card_ref = ? WHERE card_ref = ?');
  const replaced = db.prepare('UPDATE cards SET replaced_by = ? WHERE replaced_by = ?');
  const visits = db.prepare('UPDATE visits SET card_ref = ? WHERE card_ref = ? AND staff_ref IS NULL');
  const anomalies = db.prepare(
    `UPDATE anomalies SET card_ref = ? WHERE card_ref = ? AND staff_ref IS NULL AND resolved_at_ms IS NULL`,
  );
  const secure = hasTable(db, 'secure_cards')
    ? db.prepare('UPDATE secure_cards SET card_ref = ? WHERE card_ref = ?')
    : null;
  const hasReplaced = (db.prepare('PRAGMA table_info(cards)').all() as Array<{ name: string }>).some(
    (c) => c.name === 'replaced_by',
  );
  const revoke = db.prepare('UPDATE cards SET revoked_at = ? WHERE card_ref = ? AND revoked_at IS NULL');
  const result: RotationResult = { mapped: 0, cards: 0, unattributedVisits: 0, anomalies: 0, dropped: 0 };
  db.transaction(() => {
    for (const [oldRef, newRef] of plan.mapped) {
      chain.run(newRef, oldRef); // an earlier rotation's old refs now name the newest one: one hop
      map.run(oldRef, newRef, o.nowMs);
      result.mapped++;
      result.cards += card.run(newRef, oldRef).changes;
      if (hasReplaced) replaced.run(newRef, oldRef);
      result.unattributedVisits += visits.run(newRef, oldRef).changes;
      result.anomalies += anomalies.run(newRef, oldRef).changes;
      secure?.run(newRef, oldRef);
    }
    if (o.dropUnmapped)
      for (const c of plan.unmapped) result.dropped += revoke.run(o.nowMs, c.cardRef).changes;
    db.prepare(
      `INSERT INTO fleet_key_rotations (at_ms, old_key_id, new_key_id, mapped, dropped, actor)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ).run(o.nowMs, plan.oldKeyId, plan.newKeyId, result.mapped, result.dropped, o.actor);
    o.audit({ oldKeyId: plan.oldKeyId, newKeyId: plan.newKeyId, ...result });
  })();
  return result;
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

/** The newest rotation recorded, if any. */
export function lastRotation(db: Db): { oldKeyId: string; newKeyId: string; atMs: number } | null {
  const r = db
    .prepare(
      'SELECT old_key_id AS oldKeyId, new_key_id AS newKeyId, at_ms AS atMs FROM fleet_key_rotations ORDER BY id DESC LIMIT 1',
    )
    .get() as { oldKeyId: string; newKeyId: string; atMs: number } | undefined;
  return r ?? null;
}
