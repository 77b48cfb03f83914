import type { CardAssignResult, CardInfo, CardStatus, CardStore, UnknownCard } from '../ports.js';
import { attributeCard } from './attribution.js';
import type { Db } from './db.js';
import { SqliteOutbox } from './outbox.js';
import { statementCache } from './stmt-cache.js';

type AssignReq = { cardRef: string; staffRef: string; actor: string; nowMs: number };

/**
 * The card registry on SQLite (port: CardStore in ../ports.ts): card → staff member, with
 * revocation. Assigning a card also resolves its earlier taps made while it was unknown (attribution,
 * ./attribution.ts) in the same transaction. References are validated by the caller (cards/registry.ts).
 */
export class SqliteCardStore implements CardStore {
  private readonly db: Db;
  private readonly q: ReturnType<typeof statementCache>;
  private readonly outbox: Pick<SqliteOutbox, 'enqueue'>;
  constructor(opts: { db: Db; outbox?: Pick<SqliteOutbox, 'enqueue'> }) {
    this.db = opts.db;
    this.q = statementCache(opts.db);
    this.outbox = opts.outbox ?? new SqliteOutbox({ db: opts.db });
  }

  assign(req: AssignReq): CardAssignResult {
    return this.db.transaction((): CardAssignResult => {
      const before = this.get(req.cardRef);
      this.q(
        `INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES (?, ?, NULL, ?)
           ON CONFLICT (card_ref) DO UPDATE SET staff_ref = excluded.staff_ref, revoked_at = NULL`,
      ).run(req.cardRef, req.staffRef, req.nowMs);
      const registry = !before
        ? 'added'
        : before.staffRef === req.staffRef && before.revokedAtMs === null
          ? 'unchanged'
          : 'reassigned';
      const attributed = attributeCard({ db: this.db, outbox: this.outbox }, req);
      return { cardRef: req.cardRef, staffRef: req.staffRef, registry, attributed };
    })();
  }

  assignMany(reqs: readonly AssignReq[]): CardAssignResult[] {
    return this.db.transaction(() => reqs.map((r) => this.assign(r)))();
  }

  revoke(cardRef: string, atMs: number): boolean {
    return (
      this.q('UPDATE cards SET revoked_at = ? WHERE card_ref = ? AND revoked_at IS NULL').run(atMs, cardRef)
        .changes > 0
    );
  }

  get(cardRef: string): CardInfo | null {
    const row = this.q('SELECT card_ref, staff_ref, revoked_at FROM cards WHERE card_ref = ?').get(
      cardRef,
    ) as { card_ref: string; staff_ref: string; revoked_at: number | null } | undefined;
    return row ? { cardRef: row.card_ref, staffRef: row.staff_ref, revokedAtMs: row.revoked_at } : null;
  }

  /** The card's status at `atMs` (a tap before the revocation time still counts as valid). */
  statusAt(cardRef: string, atMs: number): CardStatus {
    const c = this.get(cardRef);
    if (!c) return { kind: 'unknown' };
    if (c.revokedAtMs !== null && c.revokedAtMs <= atMs) {
      return { kind: 'revoked', staffRef: c.staffRef, revokedAtMs: c.revokedAtMs };
    }
    return { kind: 'known', staffRef: c.staffRef };
  }

  refs(which: 'active' | 'revoked'): string[] {
    return this.q(
      which === 'active'
        ? 'SELECT card_ref FROM cards WHERE revoked_at IS NULL ORDER BY card_ref'
        : 'SELECT card_ref FROM cards WHERE revoked_at IS NOT NULL ORDER BY card_ref',
    )
      .pluck()
      .all() as string[];
  }

  unknown(limit: number): UnknownCard[] {
    const rows = this.q(
      `SELECT a.card_ref AS cardRef, a.reader_id AS readerId, a.client_ref AS clientRef,
              count(*) AS taps, min(a.at_ms) AS firstMs, max(a.at_ms) AS lastMs
         FROM anomalies a LEFT JOIN cards c ON c.card_ref = a.card_ref
        WHERE a.kind = 'unknown-card' AND a.card_ref IS NOT NULL AND c.card_ref IS NULL
        GROUP BY a.card_ref, a.reader_id, a.client_ref
        ORDER BY lastMs DESC`,
    ).all() as {
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
}
