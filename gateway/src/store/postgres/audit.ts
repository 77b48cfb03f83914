import type { AuditEntry, AuditQuery, AuditStore, NewAuditEntry } from '../ports.js';
import { AUDIT_INSERT, auditRows, type AuditRow } from '../sqlite/audit.js';
import { inTransaction, type PgPool } from './db.js';

const numbered = (sql: string): string => {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
};

/**
 * PostgreSQL adapter of the audit log (store.engine postgres): ONE log for every instance. An append
 * locks the table against other appends for its short transaction (SHARE ROW EXCLUSIVE conflicts with
 * itself, not with readers), so `seq` order is commit order: a reader never sees entry n+1 before n,
 * and paging by `beforeSeq` misses nothing. Audit entries are admin changes (a few per minute), so the
 * serialisation costs nothing that matters. UPDATE, DELETE and TRUNCATE are refused by a trigger
 * (migration audit-001) unless the transaction set `visittag.audit_maintenance` (retention, erasure).
 */
export class PgAuditStore implements AuditStore {
  constructor(private readonly pool: PgPool) {}

  append(e: NewAuditEntry): Promise<AuditEntry> {
    return inTransaction(this.pool, async (c) => {
      await c.query('LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE');
      const r = await c.query<{ seq: number }>(
        `${numbered(AUDIT_INSERT)} RETURNING seq`,
        auditRows.values(e),
      );
      return { ...e, before: e.before ?? null, after: e.after ?? null, seq: r.rows[0]!.seq };
    });
  }

  async list(q: AuditQuery): Promise<AuditEntry[]> {
    const w = auditRows.where(q);
    const r = await this.pool.query<AuditRow>(
      numbered(`SELECT * FROM audit_log ${w.sql} ORDER BY seq DESC LIMIT ?`),
      [...w.args, q.limit],
    );
    return r.rows.map(auditRows.entry);
  }

  async all(): Promise<AuditEntry[]> {
    return (await this.pool.query<AuditRow>('SELECT * FROM audit_log ORDER BY seq')).rows.map(
      auditRows.entry,
    );
  }
}
