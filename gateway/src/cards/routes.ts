import { z } from 'zod';
import { CardRef, SafeId, summarizeIssues } from '../../../protocol/index.js';
import type { AdminResponse, AdminRoute } from '../admin/types.js';
import type { CardAssignResult, CardStore } from '../store/ports.js';
import { CardLifecycleError, type CardLifecycle } from './lifecycle.js';

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

const Reason = z.object({ reason: z.string().max(500).optional() }).strict();
const IsoOrNull = z.union([z.iso.datetime({ offset: true }), z.iso.date(), z.null()]);
const ValidityBody = z
  .object({ validFrom: IsoOrNull, validTo: IsoOrNull, reason: z.string().max(500).optional() })
  .strict();
const ReplaceBody = z.object({ newCardRef: CardRef, reason: z.string().max(500).optional() }).strict();
const WithdrawBody = z.object({ keep: z.array(CardRef).min(1).max(100_000) }).strict();

/** A date (YYYY-MM-DD: midnight UTC) or an ISO time with offset, as epoch ms; null stays null. */
export const isoToMs = (v: string | null): number | null => (v === null ? null : Date.parse(v));

const fail = (e: unknown): AdminResponse => {
  if (e instanceof CardLifecycleError) {
    const status = e.code === 'not-found' ? 404 : e.code === 'conflict' ? 409 : 400;
    return { status, body: { error: e.message } };
  }
  throw e;
};

/** Revoke, reinstate, validity, replace and full-list withdrawal (issue 16); each pushed to readers at once. */
function lifecycleRoutes(l: CardLifecycle): AdminRoute[] {
  const withRef = (
    path: string,
    method: 'POST',
    run: (cardRef: string, body: unknown, actor: string) => Promise<AdminResponse>,
  ): AdminRoute => ({
    method,
    path,
    handler: async (req) => {
      const ref = CardRef.safeParse(req.params.cardRef);
      if (!ref.success) return { status: 400, body: { error: 'cardRef must be c1_ + 32 hex digits' } };
      try {
        return await run(ref.data, req.body ?? {}, req.actor);
      } catch (e) {
        return fail(e);
      }
    },
  });
  const bad = (issues: z.core.$ZodIssue[]): AdminResponse => ({
    status: 400,
    body: { error: summarizeIssues(issues) },
  });
  return [
    withRef('/api/cards/:cardRef/revoke', 'POST', async (ref, body, actor) => {
      const p = Reason.safeParse(body);
      if (!p.success) return bad(p.error.issues);
      return { status: 200, body: await l.revoke(ref, actor, p.data.reason ?? null) };
    }),
    withRef('/api/cards/:cardRef/reinstate', 'POST', async (ref, body, actor) => {
      const p = Reason.safeParse(body);
      if (!p.success) return bad(p.error.issues);
      return { status: 200, body: await l.reinstate(ref, actor, p.data.reason ?? null) };
    }),
    withRef('/api/cards/:cardRef/validity', 'POST', async (ref, body, actor) => {
      const p = ValidityBody.safeParse(body);
      if (!p.success) return bad(p.error.issues);
      const r = await l.setValidity(
        ref,
        isoToMs(p.data.validFrom),
        isoToMs(p.data.validTo),
        actor,
        p.data.reason ?? null,
      );
      return { status: 200, body: r };
    }),
    withRef('/api/cards/:cardRef/replace', 'POST', async (ref, body, actor) => {
      const p = ReplaceBody.safeParse(body);
      if (!p.success) return bad(p.error.issues);
      return { status: 200, body: await l.replace(ref, p.data.newCardRef, actor, p.data.reason ?? null) };
    }),
    {
      method: 'POST',
      path: '/api/cards/withdraw-missing',
      handler: async (req): Promise<AdminResponse> => {
        const p = WithdrawBody.safeParse(req.body);
        if (!p.success) return bad(p.error.issues);
        try {
          return { status: 200, body: await l.withdrawMissing(p.data.keep, req.actor) };
        } catch (e) {
          return fail(e);
        }
      },
    },
  ];
}

export function cardRoutes(d: {
  cards: Pick<CardStore, 'unknown' | 'get'>;
  /** The card store's assignment (a Promise on PostgreSQL). */
  addCard: (c: {
    cardRef: string;
    staffRef: string;
    actor: string;
  }) => CardAssignResult | Promise<CardAssignResult>;
  lifecycle?: CardLifecycle;
}): AdminRoute[] {
  return [
    ...(d.lifecycle ? lifecycleRoutes(d.lifecycle) : []),
    {
      method: 'GET',
      path: '/api/cards/:cardRef',
      handler: async (req): Promise<AdminResponse> => {
        const ref = CardRef.safeParse(req.params.cardRef);
        if (!ref.success) return { status: 400, body: { error: 'cardRef must be c1_ + 32 hex digits' } };
        const c = await d.cards.get(ref.data);
        return c ? { status: 200, body: c } : { status: 404, body: { error: 'card not registered' } };
      },
    },
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
        const r = await d.addCard({ cardRef: ref.data, staffRef: p.data.staffRef, actor: req.actor });
        return { status: 200, body: r };
      },
    },
  ];
}
