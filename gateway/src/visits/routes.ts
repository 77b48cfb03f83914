import { z } from 'zod';
import { AnomalyKind, SafeId, Text, summarizeIssues } from '../../../protocol/index.js';
import type { AdminResponse, AdminRoute } from '../admin/types.js';
import type { ForwarderStatus } from '../outbox/forwarder.js';
import type { OutboxStore, VisitStore } from '../store/ports.js';
import type { ManualCloseResult } from './manual-close.js';

export interface VisitRouteDeps {
  visits: Pick<VisitStore, 'listVisits' | 'listAnomalies'>;
  outbox: OutboxStore;
  /** Synchronous on SQLite, a Promise on PostgreSQL. */
  closeVisit(req: {
    visitId: string;
    actor: string;
    reason: string;
  }): ManualCloseResult | Promise<ManualCloseResult>;
  /** Called after a re-drive so the forwarder starts at once. */
  wakeForwarder(): void;
  forwarderStatus(): ForwarderStatus | null;
}

const Limit = z.coerce.number().int().min(1).max(1000).default(100);
const VisitsQuery = z.object({
  state: z.enum(['open', 'recent']).default('open'),
  readerId: SafeId.optional(),
  limit: Limit,
});
const AnomaliesQuery = z.object({ kind: AnomalyKind.optional(), readerId: SafeId.optional(), limit: Limit });
const CloseBody = z.object({ reason: Text.min(1) }).strict();
const bad = (detail: string): AdminResponse => ({ status: 400, body: { error: 'bad-request', detail } });
const query = (q: URLSearchParams): Record<string, string> => Object.fromEntries(q.entries());

/** Admin routes of visits, anomalies, the outbox and its dead letters (mounted behind the token). */
export function visitRoutes(deps: VisitRouteDeps): AdminRoute[] {
  const { visits, outbox } = deps;
  return [
    {
      method: 'GET',
      path: '/api/visits',
      handler: async (req) => {
        const q = VisitsQuery.safeParse(query(req.query));
        if (!q.success) return bad(summarizeIssues(q.error.issues));
        const { state, readerId, limit } = q.data;
        const rows = await visits.listVisits({ state, limit, ...(readerId ? { readerId } : {}) });
        return { status: 200, body: { visits: rows } };
      },
    },
    {
      method: 'GET',
      path: '/api/anomalies',
      handler: async (req) => {
        const q = AnomaliesQuery.safeParse(query(req.query));
        if (!q.success) return bad(summarizeIssues(q.error.issues));
        const { kind, readerId, limit } = q.data;
        const rows = await visits.listAnomalies({
          limit,
          ...(kind ? { kind } : {}),
          ...(readerId ? { readerId } : {}),
        });
        return { status: 200, body: { anomalies: rows } };
      },
    },
    {
      method: 'GET',
      path: '/api/dead-letters',
      handler: async (req) => {
        const q = z.object({ limit: Limit }).safeParse(query(req.query));
        if (!q.success) return bad(summarizeIssues(q.error.issues));
        return { status: 200, body: { deadLetters: await outbox.listDead(q.data.limit) } };
      },
    },
    {
      method: 'POST',
      path: '/api/dead-letters/retry-all',
      handler: async () => {
        const requeued = await outbox.redriveAll();
        deps.wakeForwarder();
        return { status: 200, body: { requeued } };
      },
    },
    {
      method: 'POST',
      path: '/api/dead-letters/:id/retry',
      handler: async (req) => {
        const id = z.coerce.number().int().min(1).safeParse(req.params.id);
        if (!id.success) return bad('id must be a positive integer');
        const requeued = await outbox.redrive(id.data);
        if (requeued === 0)
          return { status: 404, body: { error: 'not-found', detail: 'no dead letter with this id' } };
        deps.wakeForwarder();
        return { status: 200, body: { requeued } };
      },
    },
    {
      method: 'GET',
      path: '/api/outbox',
      handler: async () => ({
        status: 200,
        body: { ...(await outbox.stats()), forwarder: deps.forwarderStatus() },
      }),
    },
    {
      method: 'POST',
      path: '/api/visits/:visitId/close',
      handler: async (req) => {
        const visitId = SafeId.safeParse(req.params.visitId);
        if (!visitId.success) return bad('visitId is malformed');
        const body = CloseBody.safeParse(req.body);
        if (!body.success)
          return bad(`body: ${summarizeIssues(body.error.issues)} (expected {"reason": "…"})`);
        const r = await deps.closeVisit({
          visitId: visitId.data,
          actor: req.actor,
          reason: body.data.reason,
        });
        if (!r.ok)
          return {
            status: r.status,
            body: { error: r.status === 404 ? 'not-found' : 'conflict', detail: r.error },
          };
        deps.wakeForwarder();
        return { status: 200, body: { visit: r.visit } };
      },
    },
  ];
}
