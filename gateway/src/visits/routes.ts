import { z } from 'zod';
import { AnomalyKind, SafeId, Text, summarizeIssues } from '../../../protocol/index.js';
import type { AdminResponse, AdminRoute } from '../admin/types.js';
import type { ForwarderStatus } from '../outbox/forwarder.js';
import type { OutboxStore } from '../store/ports.js';
import type { Db } from '../store/sqlite/db.js';
import type { ManualCloseResult } from './manual-close.js';
import { toVisit } from './repo.js';

export interface VisitRouteDeps {
  db: Db;
  outbox: OutboxStore;
  closeVisit(req: { visitId: string; actor: string; reason: string }): ManualCloseResult;
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
  const { db, outbox } = deps;
  return [
    {
      method: 'GET',
      path: '/api/visits',
      handler: (req) => {
        const q = VisitsQuery.safeParse(query(req.query));
        if (!q.success) return bad(summarizeIssues(q.error.issues));
        const { state, readerId, limit } = q.data;
        const where = [
          state === 'open' ? `state = 'open'` : '1=1',
          '(@readerId IS NULL OR reader_id = @readerId)',
        ];
        const order = state === 'open' ? 'started_at_ms, visit_id' : 'updated_at_ms DESC, visit_id';
        const rows = db
          .prepare(`SELECT * FROM visits WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT @limit`)
          .all({ readerId: readerId ?? null, limit }) as Parameters<typeof toVisit>[0][];
        return { status: 200, body: { visits: rows.map(toVisit) } };
      },
    },
    {
      method: 'GET',
      path: '/api/anomalies',
      handler: (req) => {
        const q = AnomaliesQuery.safeParse(query(req.query));
        if (!q.success) return bad(summarizeIssues(q.error.issues));
        const { kind, readerId, limit } = q.data;
        const rows = db
          .prepare(
            `SELECT id, idempotency_key AS idempotencyKey, kind, reader_id AS readerId, visit_id AS visitId,
               card_ref AS cardRef, staff_ref AS staffRef, client_ref AS clientRef, at_ms AS atMs, seq, detail,
               created_at_ms AS createdAtMs, resolved_at_ms AS resolvedAtMs, resolved_by AS resolvedBy,
               resolution, resolved_staff_ref AS resolvedStaffRef
             FROM anomalies WHERE (@kind IS NULL OR kind = @kind) AND (@readerId IS NULL OR reader_id = @readerId)
             ORDER BY id DESC LIMIT @limit`,
          )
          .all({ kind: kind ?? null, readerId: readerId ?? null, limit });
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
      handler: (req) => {
        const visitId = SafeId.safeParse(req.params.visitId);
        if (!visitId.success) return bad('visitId is malformed');
        const body = CloseBody.safeParse(req.body);
        if (!body.success)
          return bad(`body: ${summarizeIssues(body.error.issues)} (expected {"reason": "…"})`);
        const r = deps.closeVisit({ visitId: visitId.data, actor: req.actor, reason: body.data.reason });
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
