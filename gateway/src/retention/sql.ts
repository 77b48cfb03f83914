import type { Db } from '../store/sqlite/db.js';

export const hasTable = (db: Db, table: string): boolean =>
  db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(table) !== undefined;

/**
 * Runs `fn` with the table's triggers dropped and puts them back exactly as they were (their stored SQL).
 * Call inside a transaction: the append-only triggers of audit_log / visit_corrections are never missing for
 * another connection. Only retention and erasure use this: they are the documented exceptions to append-only.
 */
export function withoutTriggers<T>(db: Db, table: string, fn: () => T): T {
  if (!db.inTransaction) throw new Error('withoutTriggers must run inside a transaction');
  const triggers = db
    .prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?`)
    .all(table) as Array<{ name: string; sql: string }>;
  for (const t of triggers) db.exec(`DROP TRIGGER "${t.name.replace(/"/g, '""')}"`);
  const out = fn();
  for (const t of triggers) db.exec(t.sql);
  return out;
}
