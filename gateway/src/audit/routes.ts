import { z } from 'zod';
import type { AdminRoute } from '../admin/types.js';
import { auditCsv } from './log.js';
import type { AuditStore } from './store.js';

const ListQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    beforeSeq: z.coerce.number().int().min(1).optional(),
    action: z.string().max(100).optional(),
    actor: z.string().max(200).optional(),
  })
  .strict();

/**
 * Read-only routes over the audit log (admin only, see auth/roles.ts). There is deliberately no route
 * that updates or deletes an entry; test/web/security.test.ts checks that none is mounted.
 */
export function auditRoutes(store: AuditStore): AdminRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/audit',
      schema: {
        summary: 'Audit log, newest first (page with beforeSeq)',
        tags: ['audit'],
        querystring: ListQuery,
      },
      handler: async (req) => {
        const q = ListQuery.safeParse(Object.fromEntries(req.query));
        if (!q.success) {
          return {
            status: 400,
            body: { error: 'invalid query: use limit (1-1000), beforeSeq, action, actor' },
          };
        }
        return { status: 200, body: { entries: await store.list(q.data) } };
      },
    },
    {
      method: 'GET',
      path: '/api/audit/export',
      schema: {
        summary: 'The whole audit log as CSV (format=csv, default) or JSON (format=json)',
        tags: ['audit'],
      },
      handler: async (req) => {
        const entries = await store.all();
        if (req.query.get('format') === 'json') {
          return {
            status: 200,
            body: { entries },
            headers: { 'content-disposition': 'attachment; filename="audit.json"' },
          };
        }
        return {
          status: 200,
          body: auditCsv(entries),
          contentType: 'text/csv; charset=utf-8',
          headers: { 'content-disposition': 'attachment; filename="audit.csv"' },
        };
      },
    },
  ];
}
