import type { KeyRotationStore, RotationChange, RotationResult } from '../keys.js';
import type { Db } from './db.js';

const hasTable = (db: Db, name: string): boolean =>
  db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;

/** Fleet-key rotation on the gateway's SQLite file (port: ../keys.ts; rules: keys/rotate.ts). */
export class SqliteKeyRotationStore implements KeyRotationStore {
  constructor(private readonly db: Db) {}

  retiredKeyIds(): Set<string> {
    return new Set(
      (this.db.prepare('SELECT old_key_id AS k FROM fleet_key_rotations').all() as Array<{ k: string }>).map(
        (r) => r.k,
      ),
    );
  }

  lastRotation(): { oldKeyId: string; newKeyId: string; atMs: number } | null {
    const r = this.db
      .prepare(
        'SELECT old_key_id AS oldKeyId, new_key_id AS newKeyId, at_ms AS atMs FROM fleet_key_rotations ORDER BY id DESC LIMIT 1',
      )
      .get() as { oldKeyId: string; newKeyId: string; atMs: number } | undefined;
    return r ?? null;
  }

  cards(): Array<{ cardRef: string; staffRef: string; revoked: boolean }> {
    const rows = this.db
      .prepare('SELECT card_ref, staff_ref, revoked_at FROM cards ORDER BY card_ref')
      .all() as Array<{ card_ref: string; staff_ref: string; revoked_at: number | null }>;
    return rows.map((c) => ({ cardRef: c.card_ref, staffRef: c.staff_ref, revoked: c.revoked_at !== null }));
  }

  apply(
    plan: RotationChange,
    o: {
      nowMs: number;
      actor: string;
      dropUnmapped: boolean;
      audit: (details: Record<string, unknown>) => void;
    },
  ): RotationResult {
    const { db } = this;
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
}
