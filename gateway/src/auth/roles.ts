import { z } from 'zod';
import type { Principal } from '../admin/types.js';

/**
 * Roles of the web app and the API. Each sees only what it needs:
 *  - admin: users, tokens, settings, audit, everything else;
 *  - technician: readers, enrollment, commands, config, alerts, outbox health; no visit data, no staff identities;
 *  - coordinator: visits, anomalies, corrections, unknown cards, alerts; scoped to areas + provider;
 *  - unit-manager: reports and approvals (period locks) for their areas; visits read-only, except that
 *    inside a locked (attested) period of their areas only unit managers change visits (corrections/periods.ts);
 *  - care-staff: their own registrations only.
 */
export const ROLES = ['admin', 'technician', 'coordinator', 'unit-manager', 'care-staff'] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | '*';

interface Rule {
  method: Method;
  /** A route path as mounted ('/api/visits/:visitId/close'), or a prefix ending in '*'. */
  path: string;
  roles: readonly Role[] | 'any-authenticated';
  /** The caller's own account and session, no care data: open to area-scoped roles without a scoped handler. */
  self?: true;
}

const OPS: readonly Role[] = ['admin', 'technician'];
const VISIT_READERS: readonly Role[] = ['admin', 'coordinator', 'unit-manager'];
const COORD: readonly Role[] = ['admin', 'coordinator'];
const LOCKED_CHANGE: readonly Role[] = ['admin', 'coordinator', 'unit-manager'];

/**
 * The route policy, first match wins; a route no rule names is admin-only (deny by default), so a
 * new route is never opened to a role by accident. test/web/security.test.ts checks every mounted route.
 */
export const ROUTE_POLICY: readonly Rule[] = [
  { method: '*', path: '/api/auth/*', roles: 'any-authenticated', self: true },
  // care staff: their own registrations and flags (the handler answers only an account bound to a staff member)
  { method: '*', path: '/api/me/visits', roles: ['care-staff'], self: true },
  { method: '*', path: '/api/me/flags', roles: ['care-staff'], self: true },
  { method: 'GET', path: '/api/me/*', roles: 'any-authenticated', self: true },
  { method: 'GET', path: '/metrics', roles: OPS },
  { method: 'GET', path: '/api/alerts', roles: ['admin', 'technician', 'coordinator'] },
  { method: 'GET', path: '/api/readers', roles: OPS },
  { method: 'GET', path: '/api/readers/*', roles: OPS },
  { method: 'POST', path: '/api/readers', roles: OPS },
  { method: 'POST', path: '/api/readers/*', roles: OPS },
  { method: '*', path: '/api/enrollments*', roles: OPS },
  { method: 'GET', path: '/api/gaps', roles: OPS },
  { method: 'GET', path: '/api/outbox', roles: OPS },
  { method: '*', path: '/api/dead-letters*', roles: OPS },
  { method: 'GET', path: '/api/visits', roles: VISIT_READERS },
  { method: 'GET', path: '/api/visits/*', roles: VISIT_READERS },
  // A unit manager changes visits only inside a locked (attested) period of their areas: these handlers
  // refuse them (403) anywhere else, and refuse coordinators and admins (423) inside one.
  { method: 'POST', path: '/api/visits/manual', roles: LOCKED_CHANGE },
  { method: 'POST', path: '/api/visits/:visitId/corrections', roles: LOCKED_CHANGE },
  { method: 'POST', path: '/api/visits/:visitId/withdraw', roles: LOCKED_CHANGE },
  { method: 'POST', path: '/api/visits/:visitId/close', roles: LOCKED_CHANGE },
  { method: 'POST', path: '/api/visits/*', roles: COORD },
  { method: 'GET', path: '/api/anomalies', roles: COORD },
  { method: 'GET', path: '/api/corrections/*', roles: VISIT_READERS },
  { method: 'GET', path: '/api/flags', roles: COORD },
  { method: 'POST', path: '/api/flags/*', roles: COORD },
  { method: 'GET', path: '/api/periods/locks', roles: VISIT_READERS },
  { method: 'POST', path: '/api/periods/locks*', roles: ['admin', 'unit-manager'] },
  { method: 'GET', path: '/api/day', roles: VISIT_READERS },
  { method: 'GET', path: '/api/day/stream', roles: VISIT_READERS },
  { method: 'GET', path: '/api/plan/alerts', roles: VISIT_READERS },
  { method: 'GET', path: '/api/plan/matches', roles: VISIT_READERS },
  { method: 'GET', path: '/api/plan/registry', roles: VISIT_READERS },
  { method: 'POST', path: '/api/plan/visits/*', roles: COORD },
  { method: 'POST', path: '/api/plan/import', roles: COORD }, // own areas (and provider) only: scoped-routes.ts
  { method: 'GET', path: '/api/reports/*', roles: VISIT_READERS }, // issue 12: scoped by the report routes
  { method: '*', path: '/api/cards/*', roles: COORD },
  { method: 'GET', path: '/api/overview', roles: ['admin', 'technician', 'coordinator', 'unit-manager'] },
  { method: '*', path: '/api/users*', roles: ['admin'] },
  { method: '*', path: '/api/tokens*', roles: ['admin'] },
  { method: '*', path: '/api/audit*', roles: ['admin'] },
];

function matches(rule: Rule, method: string, path: string): boolean {
  if (rule.method !== '*' && rule.method !== method) return false;
  return rule.path.endsWith('*') ? path.startsWith(rule.path.slice(0, -1)) : rule.path === path;
}

/** Roles whose data is limited to their areas (an empty list then sees nothing). */
export const AREA_SCOPED: readonly Role[] = ['coordinator', 'unit-manager', 'care-staff'];

/**
 * The roles that may call a route (admin always may). An area-scoped role is left out of a route whose
 * handler does not apply the caller's scope (`scoped`, see AdminRoute.scoped) unless the route only
 * concerns the caller's own account: scope is deny by default too, so a new route that lists rows of
 * every area is never opened to a coordinator by a policy line alone.
 */
export function rolesFor(method: string, path: string, scoped = false): readonly Role[] {
  const rule = ROUTE_POLICY.find((r) => matches(r, method, path));
  if (!rule) return ['admin'];
  const roles = rule.roles === 'any-authenticated' ? ROLES : rule.roles;
  return scoped || rule.self ? roles : roles.filter((r) => !AREA_SCOPED.includes(r));
}

export function authorize(
  route: { method: string; path: string; scoped?: boolean },
  principal: Principal,
): boolean {
  if (principal.role === 'admin') return true;
  return (rolesFor(route.method, route.path, route.scoped === true) as readonly string[]).includes(
    principal.role,
  );
}
