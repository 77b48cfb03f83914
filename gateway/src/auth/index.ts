import type { AdminChange } from '../admin/server.js';
import type { AdminRoute, Principal } from '../admin/types.js';
import { AuditLog } from '../audit/log.js';
import { auditRoutes } from '../audit/routes.js';
import type { AuditStore } from '../audit/store.js';
import type { SqliteScopeReader } from '../store/sqlite/scope.js';
import { OidcLogin, type OidcSettings } from './oidc.js';
import { authorize } from './roles.js';
import { AUTH_PUBLIC_PATHS, authRoutes } from './routes.js';
import { delegateScopes, type ScopeReader } from './scope-reader.js';
import { applyScope, type CloseLockLookup } from './scoped-routes.js';
import { scopeOf } from './scope.js';
import { AuthService, type AuthServiceOptions } from './service.js';
import type { AuthStore } from './store.js';

export { authorize, rolesFor, ROLES, Role, ROUTE_POLICY } from './roles.js';
export { AuthService, AuthError, SESSION_COOKIE, CSRF_HEADER } from './service.js';
export { OidcSettings } from './oidc.js';
export { AUTH_PUBLIC_PATHS } from './routes.js';
export { scopeOf, type DataScope } from './scope.js';
export type { ScopeReader } from './scope-reader.js';

export interface AccessOptions {
  now: () => number;
  secureCookies?: boolean;
  oidc?: OidcSettings | null;
  session?: Pick<AuthServiceOptions, 'sessionIdleMs' | 'sessionMaxMs' | 'hashCost'>;
  /**
   * Where accounts, sessions, tokens and the audit log live, and the scoped reads of the instance's own
   * SQLite file (synchronous: `canSeeClient`, the day view). Built by the composition root: the embedded
   * gateway's are all on its file (store/sqlite/access.ts `sqliteAccessStores`); store.engine postgres
   * passes the PostgreSQL adapters of accounts and audit log every instance shares.
   */
  stores: { auth: AuthStore; audit: AuditStore; scopes: SqliteScopeReader };
}

/**
 * Accounts, sessions, tokens, SSO and the audit log (on the stores given), ready for AdminServer. The
 * area scope of care data reads the SQLite file (`stores.scopes`), unless the composition root points it
 * elsewhere (`useScopes`: PostgreSQL's registry on `store.engine: "postgres"`).
 */
export function createAccess(opts: AccessOptions) {
  const stores = opts.stores;
  const auditStore = stores.audit;
  const audit = new AuditLog(auditStore, opts.now);
  const service = new AuthService({
    store: stores.auth,
    audit,
    now: opts.now,
    secureCookies: opts.secureCookies ?? false,
    ...opts.session,
  });
  const oidc = opts.oidc ? new OidcLogin(opts.oidc, opts.now) : null;
  const routes: AdminRoute[] = [...authRoutes(service, oidc), ...auditRoutes(auditStore)];
  const scopeReader = stores.scopes;
  let scopes: ScopeReader = scopeReader;
  const current = delegateScopes(() => scopes);
  let closeLocks: CloseLockLookup = () => null;
  return {
    /** Area/provider scope in front of other modules' routes (auth/scoped-routes.ts): wrap every route list. */
    scope: (all: AdminRoute[]) => applyScope(all, current, (c, t) => closeLocks(c, t)),
    /** Where a manual close finds the period lock covering the visit (set by the composition root). */
    lockCloses: (fn: CloseLockLookup): void => {
      closeLocks = fn;
    },
    /**
     * Where the scoped routes read the registry, visits, anomalies and cards (set by the composition root;
     * default the SQLite file). Read at each request, so it may be set before or after `scope`.
     */
    useScopes: (reader: ScopeReader): void => {
      scopes = reader;
    },
    /** The SQLite file's scoped reads (the embedded gateway's day view). */
    scopeReader,
    /** Whether the caller may see care data of this client, on the SQLite file (area/provider scope; admin: always). */
    canSeeClient: (p: Principal | undefined, clientRef: string | null): boolean => {
      const s = scopeOf(p);
      return s === null || scopeReader.clientInScope(s, clientRef);
    },
    /** The same, wherever the scoped reads are (`useScopes`): PostgreSQL's registry in that mode. */
    clientVisible: async (p: Principal | undefined, clientRef: string | null): Promise<boolean> => {
      const s = scopeOf(p);
      return s === null || (await scopes.clientInScope(s, clientRef));
    },
    onChange: (c: AdminChange) => recordChange(audit, c),
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

/** Routes that write their own, richer audit entries (users, tokens, sessions). */
const SELF_AUDITED = [
  // an erasure audits itself naming only the pseudonym: the generic entry would keep the erased reference
  '/api/erasure',
  '/api/auth/',
  '/api/users',
  '/api/tokens',
  '/api/visits/:visitId/corrections',
  '/api/visits/manual',
  '/api/visits/:visitId/withdraw',
  '/api/periods/',
  '/api/me/flags',
  '/api/flags',
];
const SECRET_KEY = /pass(word)?|secret|token|key|code|csrf/i;

/** Copies a JSON value with every secret-looking field replaced, so no secret reaches the audit log. */
export function redact(v: unknown, depth = 0): unknown {
  if (depth > 6) return '[deep]';
  if (Array.isArray(v)) return v.slice(0, 100).map((x) => redact(x, depth + 1));
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [k, SECRET_KEY.test(k) ? '[redacted]' : redact(x, depth + 1)]),
    );
  }
  return v;
}

/** Every successful change through the API becomes an audit entry with the real actor and the reason given. */
export async function recordChange(audit: AuditLog, c: AdminChange): Promise<void> {
  if (SELF_AUDITED.some((p) => c.route.startsWith(p))) return;
  const params = Object.entries(c.params)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const body = c.body && typeof c.body === 'object' ? (c.body as Record<string, unknown>) : {};
  await audit.record({
    actor: c.principal.actor,
    action: `${c.method} ${c.route}`,
    target: params || c.route,
    before: null,
    after: { request: redact(c.body ?? null), response: redact(c.response) },
    reason: typeof body.reason === 'string' ? body.reason : null,
  });
}
