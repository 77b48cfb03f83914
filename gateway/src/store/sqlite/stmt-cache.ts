import type { Statement } from 'better-sqlite3';
import type { Db } from './db.js';

/** Prepared statements compiled once per SQL text (preparing dominates otherwise). */
export function statementCache(db: Db): (sql: string) => Statement {
  const cache = new Map<string, Statement>();
  return (sql) => {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      cache.set(sql, s);
    }
    return s;
  };
}
