import { z } from 'zod';
import { CardRef, SafeId, summarizeIssues } from '../../../protocol/index.js';
import type { AdminResponse, AdminRoute } from '../admin/types.js';
import type { Db } from '../store/db.js';

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

const AssignBody = z.object({ staffRef: SafeId }).strict();

export function cardRoutes(d: {
  db: Db;
  addCard: (c: { cardRef: string; staffRef: string }) => void;
}): AdminRoute[] {
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
        d.addCard({ cardRef: ref.data, staffRef: p.data.staffRef });
        return {
          status: 200,
          body: {
            cardRef: ref.data,
            staffRef: p.data.staffRef,
            note: 'taps from now on resolve to this staff member; earlier unknown-card taps stay as recorded',
          },
        };
      },
    },
  ];
}
