import { z } from 'zod';
import { AnomalyKind, SafeId, summarizeIssues } from '../../../protocol/index.js';
import type { AdminRequest, AdminResponse, AdminRoute } from '../admin/types.js';
import { lockGate, lockRuleOf, type PeriodLock } from '../corrections/periods.js';
import { scopeOf, type DataScope } from './scope.js';
import type { ScopeReader } from './scope-reader.js';

/**
 * Area/provider scope for routes that other modules mount (visits, anomalies, cards, reader alerts,
 * the care plan). Each listed route gets a handler that answers an area-scoped caller (coordinator, unit
 * manager) from scoped queries (auth/scope-reader.ts: the SQLite file's, or PostgreSQL's) or refuses a foreign id with 404 (the
 * same answer as an id that does not exist, so nothing leaks); unscoped callers (admin, technician) get
 * the module's own handler unchanged. The routes are marked `scoped`, which is what opens them to
 * scoped roles at all (roles.ts `rolesFor`): a route that is not listed here and does not apply the
 * scope itself stays closed to them.
 */
type ScopedHandler = (
  req: AdminRequest,
  scope: DataScope,
  inner: AdminRoute['handler'],
) => AdminResponse | Promise<AdminResponse>;

const bad = (detail: string): AdminResponse => ({ status: 400, body: { error: 'bad-request', detail } });
const notFound = (detail: string): AdminResponse => ({ status: 404, body: { error: 'not-found', detail } });
const query = (q: URLSearchParams): Record<string, string> => Object.fromEntries(q.entries());
const Limit = z.coerce.number().int().min(1).max(1000).default(100);
const VisitsQuery = z.object({
  state: z.enum(['open', 'recent']).default('open'),
  readerId: SafeId.optional(),
  limit: Limit,
});
const AnomaliesQuery = z.object({ kind: AnomalyKind.optional(), readerId: SafeId.optional(), limit: Limit });

/** The same request with other query parameters (the inner handler then filters in its own SQL). */
const withQuery = (req: AdminRequest, set: Record<string, string>): AdminRequest => {
  const q = new URLSearchParams(req.query);
  for (const [k, v] of Object.entries(set)) q.set(k, v);
  return { ...req, query: q };
};

const okBody = (r: AdminResponse): Record<string, unknown> | null =>
  r.status === 200 && r.body && typeof r.body === 'object' ? (r.body as Record<string, unknown>) : null;

/** Runs the inner handler once per area of the scope (or for the one asked for) and joins one list. */
async function perArea(
  req: AdminRequest,
  scope: DataScope,
  inner: AdminRoute['handler'],
  keys: string[],
): Promise<AdminResponse> {
  const asked = req.query.get('area');
  if (asked !== null && !scope.areas.includes(asked)) return notFound('no such area among yours');
  const areas = asked !== null ? [asked] : scope.areas;
  const out: Record<string, unknown[]> = Object.fromEntries(keys.map((k) => [k, []]));
  for (const area of areas) {
    const r = await inner(withQuery(req, { area }));
    const body = okBody(r);
    if (!body) return r;
    for (const k of keys) (out[k] as unknown[]).push(...((body[k] as unknown[] | undefined) ?? []));
  }
  return { status: 200, body: out };
}

/** Each listed visit says whether it was withdrawn as a mistake (`withdrawn`), for every caller. */
async function markWithdrawn(reader: ScopeReader, r: AdminResponse): Promise<AdminResponse> {
  const body = okBody(r);
  const visits = body?.visits;
  if (!body || !Array.isArray(visits)) return r;
  const rows = visits as { readerId: string; visitId: string }[];
  const gone = await reader.withdrawnOf(rows);
  return {
    ...r,
    body: { ...body, visits: rows.map((v) => ({ ...v, withdrawn: gone.has(`${v.readerId}/${v.visitId}`) })) },
  };
}

const byClient = (clients: Set<string>) => (x: unknown) =>
  clients.has(String((x as { clientRef?: unknown }).clientRef));

/**
 * The period lock that covers a visit of this client started then and closed now (corrections/periods.ts):
 * the SQLite file's locks (synchronous) or PostgreSQL's (read per close).
 */
export type CloseLockLookup = (
  clientRef: string | null,
  startedAtMs: number | null,
) => PeriodLock | null | Promise<PeriodLock | null>;

export function scopedHandlers(
  reader: ScopeReader,
  lockOf: CloseLockLookup = () => null,
): Record<string, ScopedHandler> {
  return {
    'GET /api/visits': async (req, scope) => {
      const q = VisitsQuery.safeParse(query(req.query));
      if (!q.success) return bad(summarizeIssues(q.error.issues));
      return markWithdrawn(reader, { status: 200, body: { visits: await reader.visits(scope, q.data) } });
    },
    'POST /api/visits/:visitId/close': async (req, scope, inner) => {
      if ((await reader.visitById(scope, req.params.visitId ?? '')).length === 0)
        return notFound('no such visit');
      return (await closeGate(reader, lockOf, req, scope)) ?? inner(req);
    },
    'GET /api/anomalies': async (req, scope) => {
      const q = AnomaliesQuery.safeParse(query(req.query));
      if (!q.success) return bad(summarizeIssues(q.error.issues));
      return { status: 200, body: { anomalies: await reader.anomalies(scope, q.data) } };
    },
    'GET /api/cards/unknown': async (_req, scope) => ({
      status: 200,
      body: { cards: await reader.unknownCards(scope, 200) },
    }),
    'POST /api/cards/:cardRef/assign': async (req, scope, inner) => {
      if (!(await reader.cardSeenInScope(scope, req.params.cardRef ?? ''))) {
        return notFound('no such card tapped at a client of your areas');
      }
      const staffRef = (req.body as { staffRef?: unknown } | undefined)?.staffRef;
      if (typeof staffRef === 'string' && !(await reader.staffInScope(scope, staffRef))) {
        return notFound('no such staff member in your areas');
      }
      return inner(req);
    },
    // Reader alerts: computed in memory for every reader (no paging), so filtering the list is complete.
    'GET /api/alerts': async (req, scope, inner) => {
      const r = await inner(req);
      const body = okBody(r);
      if (!body) return r;
      const clients = await reader.clients(scope);
      return {
        ...r,
        body: { ...body, alerts: ((body.alerts as unknown[]) ?? []).filter(byClient(clients)) },
      };
    },
    'GET /api/plan/alerts': async (req, scope, inner) => {
      const r = await perArea(withQuery(req, { limit: '5000' }), scope, inner, ['alerts']);
      const body = okBody(r);
      if (!body || scope.provider === null) return r;
      const clients = await reader.clients(scope);
      return { status: 200, body: { alerts: (body.alerts as unknown[]).filter(byClient(clients)) } };
    },
    'GET /api/plan/matches': async (req, scope, inner) => {
      const client = req.query.get('client');
      if (client !== null && !(await reader.clientInScope(scope, client)))
        return notFound('no such client in your areas');
      const r = await perArea(req, scope, inner, ['matches', 'unplanned']);
      const body = okBody(r);
      if (!body) return r;
      const clients = await reader.clients(scope);
      return {
        status: 200,
        body: {
          matches: (body.matches as unknown[]).filter(byClient(clients)),
          unplanned: (body.unplanned as unknown[]).filter(byClient(clients)),
        },
      };
    },
    'GET /api/plan/registry': async (req, scope, inner) => {
      const r = await inner(req);
      const body = okBody(r);
      if (!body) return r;
      const clients = await reader.clients(scope);
      const inAreas = (x: unknown) => scope.areas.includes(String((x as { areaId?: unknown }).areaId));
      const list = (k: string) => (body[k] as unknown[] | undefined) ?? [];
      return {
        status: 200,
        body: {
          providers: list('providers').filter(
            (p) => scope.provider === null || (p as { providerId?: unknown }).providerId === scope.provider,
          ),
          areas: list('areas').filter(inAreas),
          teams: list('teams').filter(inAreas),
          clients: list('clients').filter(byClient(clients)),
          staff: list('staff').filter(inAreas),
          serviceCodes: list('serviceCodes'),
        },
      };
    },
    // A coordinator imports the plan of an area of theirs. An import replaces the area's plan in its window,
    // so a coordinator bound to a provider may import only an area whose clients are all of that provider;
    // every row must name a client in the caller's scope (a foreign one is named, nothing is imported).
    'POST /api/plan/import': async (req, scope, inner) => {
      const body = (req.body ?? {}) as { areaId?: unknown; visits?: unknown };
      const areaId = typeof body.areaId === 'string' ? body.areaId : '';
      if (!scope.areas.includes(areaId)) return notFound('no such area among yours');
      const foreign = await reader.foreignClientsOfArea(scope, areaId);
      if (foreign > 0) {
        return {
          status: 403,
          body: {
            error: 'forbidden',
            detail: `area ${areaId} has ${foreign} client(s) of other providers: an import replaces the area's whole plan, so an admin or a coordinator of the whole area imports it`,
          },
        };
      }
      const rows = Array.isArray(body.visits) ? (body.visits as unknown[]) : [];
      const mine = await reader.clients(scope);
      const outside = rows
        .map((r, i) => ({ line: i + 1, clientRef: (r as { clientRef?: unknown } | null)?.clientRef }))
        .filter((r) => typeof r.clientRef === 'string' && !mine.has(r.clientRef));
      if (outside.length > 0) {
        return {
          status: 422,
          body: {
            ok: false,
            error: 'clients-outside-scope',
            detail: 'rows name clients that are not in your areas: nothing was imported',
            errors: outside.slice(0, 50).map((r) => ({
              line: r.line,
              reason: `client ${String(r.clientRef)} is not a client of your areas`,
            })),
          },
        };
      }
      return inner(req);
    },
    'POST /api/plan/visits/:plannedVisitId/reason': async (req, scope, inner) =>
      (await reader.plannedVisitInScope(scope, req.params.plannedVisitId ?? ''))
        ? inner(req)
        : notFound('no such planned visit in your areas'),
  };
}

/**
 * Inside a locked period only a unit manager of the area closes a visit (coordinators and admins: 423), and
 * a unit manager closes nothing elsewhere (403): the rule of corrections/periods.ts `lockGate`.
 */
async function closeGate(
  reader: ScopeReader,
  lockOf: CloseLockLookup,
  req: AdminRequest,
  scope: DataScope | null,
): Promise<AdminResponse | null> {
  const rows = await reader.visitById(scope, req.params.visitId ?? '');
  const v = rows.find((r) => r.state === 'open') ?? rows[0];
  if (!v) return null; // the module answers 404
  const refused = lockGate(await lockOf(v.clientRef, v.startedAtMs), lockRuleOf(req.principal?.role));
  if (!refused) return null;
  return {
    status: refused.status,
    body: {
      error: refused.status === 423 ? 'period-locked' : 'forbidden',
      detail: refused.error,
      ...('lock' in refused ? { lock: refused.lock } : {}),
    },
  };
}

/**
 * Puts the scoped handler in front of each listed route and marks it `scoped`. Unlisted routes are
 * returned as they are (closed to scoped roles unless they set `scoped` themselves).
 */
export function applyScope(
  routes: AdminRoute[],
  reader: ScopeReader,
  lockOf?: CloseLockLookup,
): AdminRoute[] {
  const locks: CloseLockLookup = lockOf ?? (() => null);
  const handlers = scopedHandlers(reader, locks);
  return routes.map((route) => {
    const scoped = handlers[`${route.method} ${route.path}`];
    if (!scoped || route.scoped) return route;
    const inner = route.handler;
    return {
      ...route,
      scoped: true,
      handler: async (req: AdminRequest) => {
        const scope = scopeOf(req.principal);
        if (scope !== null) return scoped(req, scope, inner);
        if (route.method === 'POST' && route.path === '/api/visits/:visitId/close') {
          return (await closeGate(reader, locks, req, null)) ?? inner(req);
        }
        const r = await inner(req);
        return route.method === 'GET' && route.path === '/api/visits' ? markWithdrawn(reader, r) : r;
      },
    };
  });
}
