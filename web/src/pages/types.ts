import type { Key } from '../i18n.js';

export interface PageCtx {
  role: string;
  /** The query part of the hash route (`#/live?area=north&date=2026-03-29`). */
  params: URLSearchParams;
  /** Run when the user leaves the page (stop live updates, timers). */
  onLeave: (fn: () => void) => void;
}

export interface Page {
  key: Key;
  roles: readonly string[];
  /** Not in the menu (reached from another page, e.g. a visit's correction form). */
  hidden?: boolean;
  /** The roles that find it in the menu, when fewer than `roles` (others reach it from another page). */
  menu?: readonly string[];
  render: (ctx: PageCtx) => Promise<Node>;
}

/** Who sees what (the server's ROUTE_POLICY decides; the menu only hides what would be refused). */
export const PLAN_ROLES = ['admin', 'coordinator'] as const;
export const REPORT_ROLES = ['admin', 'coordinator', 'unit-manager'] as const;
