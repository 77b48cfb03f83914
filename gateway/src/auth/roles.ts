import { z } from 'zod';
import type { Principal } from '../admin/types.js';

/**
 * Roles of the web app and the API. Each sees only what it needs:
 *  - admin: users, tokens, settings, audit, everything else;
 *  - technician: readers, enrollment, commands, config, alerts, outbox health; no visit data, no staff identities;
 *  - coordinator: visits, anomalies, corrections, unknown cards, alerts; scoped to areas + provider;
 *  - unit-manager: reports and approvals for their areas; visits read-only;
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
}

const OPS: readonly Role[] = ['admin', 'technician'];
const VISIT_READERS: readonly Role[] = ['admin', 'coordinator', 'unit-manager'];
const COORD: readonly Role[] = ['admin', 'coordinator'];

/**
 * The route policy, first match wins; a route no rule names is admin-only (deny by default), so a
 * new route is never opened to a role by accident. test/web/security.test.ts checks every mounted route.
 */
export const ROUTE_POLICY: readonly Rule[] = [
  { method: '*', path: '/api/auth/*', roles: 'any-authenticated' },
  { method: 'GET', path: '/api/me/*', roles: 'any-authenticated' },
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
  { method: 'POST', path: '/api/visits/*', roles: COORD },
  { method: 'GET', path: '/api/anomalies', roles: COORD },
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

/** The roles that may call a route (admin always may). */
export function rolesFor(method: string, path: string): readonly Role[] {
  const rule = ROUTE_POLICY.find((r) => matches(r, method, path));
  if (!rule) return ['admin'];
  return rule.roles === 'any-authenticated' ? ROLES : rule.roles;
}

export function authorize(route: { method: string; path: string }, principal: Principal): boolean {
  if (principal.role === 'admin') return true;
  return (rolesFor(route.method, route.path) as readonly string[]).includes(principal.role);
}

/** Roles whose data is limited to their areas (an empty list then sees nothing). */
export const AREA_SCOPED: readonly Role[] = ['coordinator', 'unit-manager', 'care-staff'];
