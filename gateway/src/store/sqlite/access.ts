import { SqliteAuditStore } from './audit.js';
import { SqliteAuthStore } from './auth.js';
import type { Db } from './db.js';
import { SqliteScopeReader } from './scope.js';

/**
 * The SQLite adapters behind the access module (gateway/src/auth `createAccess`) on the gateway's file:
 * accounts, sessions and tokens (`parseRole` checks a stored role against the module's roles), the audit
 * log, and the scoped reads of care data. The composition root builds them; a PostgreSQL instance swaps
 * `auth` and `audit` for the shared adapters and keeps `scopes` on its own file.
 */
export function sqliteAccessStores<R extends string>(
  db: Db,
  parseRole: (s: string) => R,
): { auth: SqliteAuthStore<R>; audit: SqliteAuditStore; scopes: SqliteScopeReader } {
  return {
    auth: new SqliteAuthStore(db, parseRole),
    audit: new SqliteAuditStore(db),
    scopes: new SqliteScopeReader(db),
  };
}
