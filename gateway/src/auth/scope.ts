import type { Principal } from '../admin/types.js';
import { AREA_SCOPED } from './roles.js';

/**
 * What part of the care data a caller may see. `null` = everything (admin, the bearer token, and roles
 * that never reach care data at all: the route policy keeps technicians away from it). Otherwise only
 * clients whose area is listed (and, when set, whose provider matches), the staff of those areas, and
 * what hangs off them: visits, anomalies, unknown-card sightings, plan matches and alerts, reports.
 * An empty area list sees nothing (deny by default).
 */
export interface DataScope {
  areas: readonly string[];
  provider: string | null;
}

export function scopeOf(p: Principal | undefined): DataScope | null {
  if (!p) return { areas: [], provider: null };
  if (!(AREA_SCOPED as readonly string[]).includes(p.role)) {
    return p.role === 'admin' || p.role === 'technician' ? null : { areas: [], provider: null };
  }
  return { areas: [...p.areas], provider: p.provider ?? null };
}

/** True when the area (and provider, if both are known) is inside the scope. */
export function inScope(scope: DataScope | null, areaId: string, providerId?: string | null): boolean {
  if (!scope) return true;
  if (!scope.areas.includes(areaId)) return false;
  return scope.provider === null || providerId === undefined || providerId === scope.provider;
}
