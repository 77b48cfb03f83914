import { z } from 'zod';
import { CardRef, SafeId, summarizeIssues } from '../../../protocol/index.js';
import type { AdminResponse, AdminRoute } from '../admin/types.js';
import type { CardAssignResult, CardStore } from '../store/ports.js';

export type { UnknownCard } from '../store/ports.js';

const AssignBody = z
  .object({
    staffRef: SafeId,
    /** Required to give a card registered to someone else (or revoked) to `staffRef` from now on. */
    reassign: z.boolean().optional(),
  })
  .strict();

/**
 * Why an assignment is refused: the card is registered to another staff member, or revoked, and the
 * caller did not say `reassign`. Null when it may go ahead. Shared by the admin route and the CLI.
 */
export function assignRefusal(
  current: { staffRef: string; revokedAtMs: number | null } | null,
  staffRef: string,
  reassign: boolean,
): string | null {
  if (!current || reassign) return null;
  if (current.revokedAtMs !== null) {
    return (
      `the card is revoked (it was registered to ${current.staffRef}); assigning it would make it valid again. ` +
      'If that is meant, send {"staffRef": …, "reassign": true} (CLI: --reassign). Its earlier visits keep their staff member.'
    );
  }
  if (current.staffRef !== staffRef) {
    return (
      `the card is already registered to ${current.staffRef}; its visits so far stay attributed to ${current.staffRef}. ` +
      'To give the card to another staff member from now on, send {"staffRef": …, "reassign": true} (CLI: --reassign), ' +
      'or revoke it and register the new card.'
    );
  }
  return null;
}

export function cardRoutes(d: {
  cards: Pick<CardStore, 'unknown' | 'get'>;
  addCard: (c: { cardRef: string; staffRef: string; actor: string }) => CardAssignResult;
}): AdminRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/cards/unknown',
      handler: async () => ({ status: 200, body: { cards: await d.cards.unknown(200) } }),
    },
    {
      method: 'POST',
      path: '/api/cards/:cardRef/assign',
      handler: async (req): Promise<AdminResponse> => {
        const ref = CardRef.safeParse(req.params.cardRef);
        if (!ref.success) return { status: 400, body: { error: 'cardRef must be c1_ + 32 hex digits' } };
        const p = AssignBody.safeParse(req.body);
        if (!p.success) return { status: 400, body: { error: summarizeIssues(p.error.issues) } };
        const refusal = assignRefusal(await d.cards.get(ref.data), p.data.staffRef, p.data.reassign === true);
        if (refusal) return { status: 409, body: { error: 'conflict', detail: refusal } };
        const r = d.addCard({ cardRef: ref.data, staffRef: p.data.staffRef, actor: req.actor });
        return { status: 200, body: r };
      },
    },
  ];
}
