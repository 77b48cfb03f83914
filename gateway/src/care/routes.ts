/** Admin API of the care plan (docs/plan.md "Admin API"). */
import { z } from 'zod';
import type { AdminRequest, AdminResponse, AdminRoute } from '../admin/types.js';
import { PlanImportRequest } from './import.js';
import { LocalDate, MissedReasonCode, Ref } from './model.js';
import { RegistryBatchSchema, type CarePlan } from './service.js';

const bad = (error: string): AdminResponse => ({ status: 400, body: { error } });
const issues = (e: z.ZodError): string =>
  e.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || 'body'}: ${i.message}`)
    .join('; ');

const ReasonBody = z.object({ reasonCode: MissedReasonCode, note: z.string().max(500).default('') }).strict();

function dateRange(plan: CarePlan, req: AdminRequest): { fromMs: number; toMs: number } | string {
  const from = req.query.get('from');
  const to = req.query.get('to') ?? from;
  if (!from || !LocalDate.safeParse(from).success || !to || !LocalDate.safeParse(to).success) {
    return 'give ?from=YYYY-MM-DD (and optionally &to=YYYY-MM-DD, inclusive)';
  }
  if (to < from) return '"to" is before "from"';
  return plan.dateRangeMs(from, to);
}

export function careRoutes(plan: CarePlan): AdminRoute[] {
  return [
    {
      method: 'POST',
      path: '/api/plan/import',
      handler: async (req) => {
        const p = PlanImportRequest.safeParse(req.body);
        if (!p.success) return bad(`invalid plan import: ${issues(p.error)} (see docs/plan.md "JSON API")`);
        const r = await plan.importPlan({
          areaId: p.data.areaId,
          fromDate: p.data.fromDate,
          toDate: p.data.toDate,
          dryRun: p.data.dryRun,
          actor: req.actor,
          source: 'api',
          rows: p.data.visits,
        });
        return { status: r.ok ? 200 : 422, body: r };
      },
    },
    {
      method: 'PUT',
      path: '/api/plan/registry',
      handler: async (req) => {
        const p = RegistryBatchSchema.safeParse(req.body);
        if (!p.success) return bad(`invalid registry: ${issues(p.error)} (see docs/plan.md "Registries")`);
        await plan.upsertRegistry(p.data);
        return { status: 200, body: { ok: true } };
      },
    },
    {
      method: 'GET',
      path: '/api/plan/registry',
      handler: async () => ({
        status: 200,
        body: {
          providers: await plan.store.listProviders(),
          areas: await plan.store.listAreas(),
          teams: await plan.store.listTeams(),
          clients: await plan.store.listClients(),
          staff: await plan.store.listStaff(),
          serviceCodes: await plan.store.listServiceCodes(),
        },
      }),
    },
    {
      method: 'GET',
      path: '/api/plan/versions',
      handler: async (req) => ({
        status: 200,
        body: { versions: await plan.store.planVersions(req.query.get('area') ?? undefined) },
      }),
    },
    {
      method: 'GET',
      path: '/api/plan/matches',
      handler: async (req) => {
        const r = dateRange(plan, req);
        if (typeof r === 'string') return bad(r);
        const area = req.query.get('area') ?? undefined;
        const client = req.query.get('client') ?? undefined;
        const matches = await plan.matches({
          ...r,
          ...(area ? { areaId: area } : {}),
          ...(client ? { clientRef: client } : {}),
        });
        const unplanned = await plan.store.unplanned({ ...r, ...(client ? { clientRef: client } : {}) });
        return { status: 200, body: { matches, unplanned } };
      },
    },
    {
      method: 'GET',
      path: '/api/plan/alerts',
      handler: async (req) => {
        const state = req.query.get('state') ?? 'open';
        if (state !== 'open' && state !== 'all') return bad('state must be "open" or "all"');
        const area = req.query.get('area') ?? undefined;
        const alerts = await plan.store.alerts({ open: state === 'open', ...(area ? { areaId: area } : {}) });
        return { status: 200, body: { alerts } };
      },
    },
    {
      method: 'POST',
      path: '/api/plan/visits/:plannedVisitId/reason',
      handler: async (req) => {
        const id = Ref.safeParse(req.params.plannedVisitId);
        if (!id.success) return bad('plannedVisitId is not a valid id');
        const p = ReasonBody.safeParse(req.body ?? {});
        if (!p.success) {
          return bad(
            `${issues(p.error)}: reasonCode is one of client-cancelled, client-in-hospital, staff-ill, other`,
          );
        }
        const ok = await plan.setReason({
          plannedVisitId: id.data,
          reasonCode: p.data.reasonCode,
          note: p.data.note,
          actor: req.actor,
        });
        return ok
          ? { status: 200, body: { ok: true } }
          : {
              status: 404,
              body: { error: `no planned visit ${id.data}: check the id (GET /api/plan/matches)` },
            };
      },
    },
  ];
}
