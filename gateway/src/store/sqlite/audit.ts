import type { AuditEntry, AuditQuery, AuditStore, NewAuditEntry } from '../ports.js';
import type { Db, Migration } from './db.js';
import { statementCache } from './stmt-cache.js';

/**
 * The audit log's schema step (id 'audit-001'), in the one ordered list (./migrations.ts). Before issue
 * 14 the adapter applied it itself: a database from then has it recorded and gets nothing again.
 */
export const auditSqliteMigrations: readonly Migration[] = [
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

/** audit_log as both engines store it. */
export interface AuditRow {
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
const json = (v: unknown): string | null => (v === undefined || v === null ? null : JSON.stringify(v));

export const auditRows = {
  entry: (r: AuditRow): AuditEntry => ({
    seq: r.seq,
    atMs: r.at_ms,
    actor: r.actor,
    action: r.action,
    target: r.target,
    before: parse(r.before_json),
    after: parse(r.after_json),
    reason: r.reason,
  }),
  /** at_ms, actor, action, target, before_json, after_json, reason */
  values: (e: NewAuditEntry): unknown[] => [
    e.atMs,
    e.actor,
    e.action,
    e.target,
    json(e.before),
    json(e.after),
    e.reason,
  ],
  /** The WHERE of a list query, with `?` placeholders, and its arguments (seq, action, actor). */
  where: (q: AuditQuery): { sql: string; args: (string | number)[] } => {
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
    return { sql: where.length ? `WHERE ${where.join(' AND ')}` : '', args };
  },
};

export const AUDIT_INSERT =
  'INSERT INTO audit_log (at_ms, actor, action, target, before_json, after_json, reason) VALUES (?, ?, ?, ?, ?, ?, ?)';

/** SQLite adapter of the audit log: synchronous, statements prepared once. */
export class SqliteAuditStore implements AuditStore {
  private readonly st;
  constructor(db: Db) {
    this.st = statementCache(db);
  }

  append(e: NewAuditEntry): AuditEntry {
    const info = this.st(AUDIT_INSERT).run(...auditRows.values(e));
    // as stored: a missing before/after reads back as null
    return { ...e, before: e.before ?? null, after: e.after ?? null, seq: Number(info.lastInsertRowid) };
  }

  list(q: AuditQuery): AuditEntry[] {
    const w = auditRows.where(q);
    return (
      this.st(`SELECT * FROM audit_log ${w.sql} ORDER BY seq DESC LIMIT ?`).all(
        ...w.args,
        q.limit,
      ) as AuditRow[]
    ).map(auditRows.entry);
  }

  all(): AuditEntry[] {
    return (this.st('SELECT * FROM audit_log ORDER BY seq').all() as AuditRow[]).map(auditRows.entry);
  }
}
