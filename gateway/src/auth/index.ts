import type { AdminRoute } from '../admin/types.js';
import { AuditLog } from '../audit/log.js';
import { auditRoutes } from '../audit/routes.js';
import { SqliteAuditStore } from '../audit/sqlite.js';
import type { Db } from '../store/sqlite/db.js';
import { OidcLogin, type OidcSettings } from './oidc.js';
import { authorize } from './roles.js';
import { AUTH_PUBLIC_PATHS, authRoutes } from './routes.js';
import { AuthService, type AuthServiceOptions } from './service.js';
import { SqliteAuthStore } from './sqlite.js';

export { authorize, rolesFor, ROLES, Role, ROUTE_POLICY } from './roles.js';
export { AuthService, AuthError, SESSION_COOKIE, CSRF_HEADER } from './service.js';
export { OidcSettings } from './oidc.js';
export { AUTH_PUBLIC_PATHS } from './routes.js';

export interface AccessOptions {
  db: Db;
  now: () => number;
  secureCookies?: boolean;
  oidc?: OidcSettings | null;
  session?: Pick<AuthServiceOptions, 'sessionIdleMs' | 'sessionMaxMs' | 'hashCost'>;
}

/** Accounts, sessions, tokens, SSO and the audit log on the gateway's SQLite file, ready for AdminServer. */
export function createAccess(opts: AccessOptions) {
  const auditStore = new SqliteAuditStore(opts.db);
  const audit = new AuditLog(auditStore, opts.now);
  const service = new AuthService({
    store: new SqliteAuthStore(opts.db),
    audit,
    now: opts.now,
    secureCookies: opts.secureCookies ?? false,
    ...opts.session,
  });
  const oidc = opts.oidc ? new OidcLogin(opts.oidc, opts.now) : null;
  const routes: AdminRoute[] = [...authRoutes(service, oidc), ...auditRoutes(auditStore)];
  return {
    service,
    audit,
    auditStore,
    routes,
    publicPaths: AUTH_PUBLIC_PATHS,
    authenticate: service.authenticate,
    authorize,
  };
}
export type Access = ReturnType<typeof createAccess>;
