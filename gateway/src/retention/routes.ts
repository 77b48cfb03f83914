import { z } from 'zod';
import { SafeId } from '../../../protocol/index.js';
import type { AdminRoute } from '../admin/types.js';
import type { NewAuditEntry } from '../audit/store.js';
import type { EraseResult, LocalErasure } from '../store/retention.js';
import { DEFAULT_RETENTION, type RetentionSettings } from './policy.js';
import { eraseAudited, type ErasureInput } from './service.js';

export const ErasureBody = z
  .object({
    kind: z.enum(['client', 'staff']),
    ref: SafeId,
    reason: z.string().min(1).max(500),
    forceRecordsLaw: z.boolean().optional(),
  })
  .strict();

export interface RetentionRouteOptions {
  /** The SQLite gateway's file (store/sqlite/retention.ts `SqliteErasure`); ignored when `erase` is given. */
  store?: Pick<LocalErasure, 'erase'>;
  /** Another erasure (PostgreSQL mode: pg.ts erasePgAudited, its audit entry included). */
  erase?: (req: ErasureInput) => Promise<EraseResult>;
  settings?: RetentionSettings;
  now: () => number;
  appendAudit: (e: NewAuditEntry) => unknown;
  /** After an erasure (the running gateway drops its in-memory visit index). */
  onErased?: () => void;
}

/**
 * POST /api/erasure (admin only: no policy line names it): 200 with the pseudonym and the tables changed,
 * 404 when the reference is nowhere, 409 with the reason when records-law retention applies and
 * `forceRecordsLaw` is not set.
 */
export function retentionRoutes(o: RetentionRouteOptions): AdminRoute[] {
  return [
    {
      method: 'POST',
      path: '/api/erasure',
      schema: {
        summary: "Erase a client's or staff member's identity (pseudonymised everywhere)",
        tags: ['retention'],
      },
      handler: async (req) => {
        const p = ErasureBody.safeParse(req.body);
        if (!p.success)
          return { status: 400, body: { error: p.error.issues.map((i) => i.message).join('; ') } };
        const input: ErasureInput = {
          kind: p.data.kind,
          ref: p.data.ref,
          force: p.data.forceRecordsLaw === true,
          nowMs: o.now(),
          actor: req.actor,
          reason: p.data.reason,
        };
        const r = o.erase
          ? await o.erase(input)
          : o.store
            ? eraseAudited(o.store, o.settings ?? DEFAULT_RETENTION, o.appendAudit, input)
            : { ok: false as const, code: 'not-found' as const, reason: 'no database' };
        if (!r.ok)
          return { status: r.code === 'not-found' ? 404 : 409, body: { error: r.reason, code: r.code } };
        o.onErased?.();
        return { status: 200, body: { pseudonym: r.pseudonym, cards: r.cards, changed: r.changed } };
      },
    },
  ];
}
