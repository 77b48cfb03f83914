import { z } from 'zod';
import { CardRef, SafeId, summarizeIssues } from '../../../protocol/index.js';
import type { AdminResponse, AdminRoute } from '../admin/types.js';
import type { Db } from '../store/sqlite/db.js';
import type { CardAssignResult } from './registry.js';

export interface UnknownCard {
  cardRef: string;
  taps: number;
  firstSeenMs: number;
  lastSeenMs: number;
  /** Where it was seen (reader and the client it served then), most recent first. */
  seenAt: { readerId: string; clientRef: string | null; lastSeenMs: number; taps: number }[];
}

/** Cards tapped but not in the registry (from the visit engine's `unknown-card` anomalies). */
export function listUnknownCards(db: Db, limit = 200): UnknownCard[] {
  const rows = db
    .prepare(
      `SELECT a.card_ref AS cardRef, a.reader_id AS readerId, a.client_ref AS clientRef,
              count(*) AS taps, min(a.at_ms) AS firstMs, max(a.at_ms) AS lastMs
         FROM anomalies a LEFT JOIN cards c ON c.card_ref = a.card_ref
        WHERE a.kind = 'unknown-card' AND a.card_ref IS NOT NULL AND c.card_ref IS NULL
        GROUP BY a.card_ref, a.reader_id, a.client_ref
        ORDER BY lastMs DESC`,
    )
    .all() as {
    cardRef: string;
    readerId: string;
    clientRef: string | null;
    taps: number;
    firstMs: number;
    lastMs: number;
  }[];
  const byCard = new Map<string, UnknownCard>();
  for (const r of rows) {
    let c = byCard.get(r.cardRef);
    if (!c) {
      if (byCard.size >= limit) continue;
      c = { cardRef: r.cardRef, taps: 0, firstSeenMs: r.firstMs, lastSeenMs: r.lastMs, seenAt: [] };
      byCard.set(r.cardRef, c);
    }
    c.taps += r.taps;
    c.firstSeenMs = Math.min(c.firstSeenMs, r.firstMs);
    c.lastSeenMs = Math.max(c.lastSeenMs, r.lastMs);
    c.seenAt.push({ readerId: r.readerId, clientRef: r.clientRef, lastSeenMs: r.lastMs, taps: r.taps });
  }
  return [...byCard.values()];
}

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
  db: Db;
  addCard: (c: { cardRef: string; staffRef: string; actor: string }) => CardAssignResult;
}): AdminRoute[] {
  const current = (cardRef: string) =>
    d.db
      .prepare('SELECT staff_ref AS staffRef, revoked_at AS revokedAtMs FROM cards WHERE card_ref = ?')
      .get(cardRef) as { staffRef: string; revokedAtMs: number | null } | undefined;
  return [
    {
      method: 'GET',
      path: '/api/cards/unknown',
      handler: () => ({ status: 200, body: { cards: listUnknownCards(d.db) } }),
    },
    {
      method: 'POST',
      path: '/api/cards/:cardRef/assign',
      handler: (req): AdminResponse => {
        const ref = CardRef.safeParse(req.params.cardRef);
        if (!ref.success) return { status: 400, body: { error: 'cardRef must be c1_ + 32 hex digits' } };
        const p = AssignBody.safeParse(req.body);
        if (!p.success) return { status: 400, body: { error: summarizeIssues(p.error.issues) } };
        const refusal = assignRefusal(current(ref.data) ?? null, p.data.staffRef, p.data.reassign === true);
        if (refusal) return { status: 409, body: { error: 'conflict', detail: refusal } };
        const r = d.addCard({ cardRef: ref.data, staffRef: p.data.staffRef, actor: req.actor });
        return { status: 200, body: r };
      },
    },
  ];
}
