import { applyMigrations, type Db, type Migration } from '../store/sqlite/db.js';
import type { AuditEntry, AuditQuery, AuditStore, NewAuditEntry } from './store.js';

/** The audit table's schema steps (ids 'audit-NNN'), applied by the adapter until they join store/sqlite. */
export const auditMigrations: readonly Migration[] = [
  {
    id: 'audit-001',
    up: (db) => {
      db.exec(`
        CREATE TABLE audit_log (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          at_ms INTEGER NOT NULL,
          actor TEXT NOT NULL,
          action TEXT NOT NULL,
          target TEXT NOT NULL,
          before_json TEXT,
          after_json TEXT,
          reason TEXT
        );
        CREATE INDEX audit_log_action ON audit_log (action, seq);
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
          BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
          BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
      `);
    },
  },
];

interface Row {
  seq: number;
  at_ms: number;
  actor: string;
  action: string;
  target: string;
  before_json: string | null;
  after_json: string | null;
  reason: string | null;
}

const parse = (s: string | null): unknown => (s === null ? null : (JSON.parse(s) as unknown));
const toEntry = (r: Row): AuditEntry => ({
  seq: r.seq,
  atMs: r.at_ms,
  actor: r.actor,
  action: r.action,
  target: r.target,
  before: parse(r.before_json),
  after: parse(r.after_json),
  reason: r.reason,
});

export class SqliteAuditStore implements AuditStore {
  constructor(private readonly db: Db) {
    applyMigrations(db, auditMigrations);
  }

  append(e: NewAuditEntry): AuditEntry {
    const info = this.db
      .prepare(
        'INSERT INTO audit_log (at_ms, actor, action, target, before_json, after_json, reason) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        e.atMs,
        e.actor,
        e.action,
        e.target,
        e.before === undefined ? null : JSON.stringify(e.before),
        e.after === undefined ? null : JSON.stringify(e.after),
        e.reason,
      );
    return { ...e, seq: Number(info.lastInsertRowid) };
  }

  list(q: AuditQuery): AuditEntry[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.beforeSeq !== undefined) {
      where.push('seq < ?');
      args.push(q.beforeSeq);
    }
    if (q.action) {
      where.push('action = ?');
      args.push(q.action);
    }
    if (q.actor) {
      where.push('actor = ?');
      args.push(q.actor);
    }
    const sql = `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...args, q.limit) as Row[]).map(toEntry);
  }

  all(): AuditEntry[] {
    return (this.db.prepare('SELECT * FROM audit_log ORDER BY seq').all() as Row[]).map(toEntry);
  }
}
