import type { VisitEvent } from '../../../../protocol/index.js';
import type { CardLifecycleStore } from '../card-lifecycle.js';
import type { AttributionResult, CardAssignResult, CardInfo, CardStore, UnknownCard } from '../ports.js';
import { inTransaction, LOCK_NS, type PgClient, type PgPool } from './db.js';
import { enqueueOn } from './outbox.js';

type AssignReq = { cardRef: string; staffRef: string; actor: string; nowMs: number };
type Attributed = Extract<VisitEvent, { type: 'visit.attributed' }>;

const attributionKey = (readerId: string, seq: number): string => `vt1:${readerId}:${seq}:attributed`;

/**
 * The card registry on PostgreSQL (port: CardStore in ../ports.ts), with the re-attribution of a
 * card's earlier taps in the same transaction as the assignment (the rules are those of
 * ../sqlite/attribution.ts: only unattributed rows are touched, one `visit.attributed` event per visit
 * or refused tap, keyed `vt1:{readerId}:{seq}:attributed`, queued after the visit's own events).
 *
 * Several instances: an assignment takes a per-card transaction advisory lock, so two coordinators
 * assigning the same card at once (on two instances) run one after the other; the second finds
 * nothing left to attribute. Text ordering uses the "C" collation so rows come in the same (byte)
 * order as on SQLite.
 */
export class PgCardStore implements CardStore, CardLifecycleStore {
  /** `now`: what "valid now" means for `refs` (the lists a config push carries); the instance's clock. */
  constructor(
    private readonly pool: PgPool,
    private readonly now: () => number = Date.now,
  ) {}

  assign(req: AssignReq): Promise<CardAssignResult> {
    return inTransaction(this.pool, (c) => assignOn(c, req));
  }

  assignMany(reqs: readonly AssignReq[]): Promise<CardAssignResult[]> {
    return inTransaction(this.pool, async (c) => {
      // every card's lock first, in one sorted order (as the visits turn takes them): no deadlock with a
      // turn or another import naming the same cards in another order; assignOn's own lock is then re-entrant
      await c.query(
        `SELECT pg_advisory_xact_lock(${LOCK_NS.card}, hashtext(k)) FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) s`,
        [[...new Set(reqs.map((r) => r.cardRef))]],
      );
      const out: CardAssignResult[] = [];
      for (const r of reqs) out.push(await assignOn(c, r));
      return out;
    });
  }

  async revoke(cardRef: string, atMs: number): Promise<boolean> {
    const r = await this.pool.query(
      'UPDATE cards SET revoked_at = $1 WHERE card_ref = $2 AND revoked_at IS NULL',
      [atMs, cardRef],
    );
    return (r.rowCount ?? 0) > 0;
  }

  get(cardRef: string): Promise<CardInfo | null> {
    return getOn(this.pool, cardRef);
  }

  /**
   * Card refs, sorted: valid now (active) or known but not valid now (revoked, or outside the validity
   * window), as on SQLite: what a pushed config carries as allow-list and revoked list.
   */
  async refs(which: 'active' | 'revoked'): Promise<string[]> {
    const lists = await this.cardLists(this.now());
    return which === 'active' ? lists.valid : lists.invalid;
  }

  async cardLists(nowMs: number): Promise<{ valid: string[]; invalid: string[] }> {
    const r = await this.pool.query<{ card_ref: string; ok: boolean }>(
      `SELECT card_ref,
              (revoked_at IS NULL AND (valid_from_ms IS NULL OR valid_from_ms <= $1)
                AND (valid_to_ms IS NULL OR valid_to_ms > $1)) AS ok
         FROM cards ORDER BY card_ref COLLATE "C"`,
      [nowMs],
    );
    return {
      valid: r.rows.filter((x) => x.ok).map((x) => x.card_ref),
      invalid: r.rows.filter((x) => !x.ok).map((x) => x.card_ref),
    };
  }

  async reinstate(cardRef: string): Promise<boolean> {
    const r = await this.pool.query(
      'UPDATE cards SET revoked_at = NULL, replaced_by = NULL WHERE card_ref = $1 AND revoked_at IS NOT NULL',
      [cardRef],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async setValidity(cardRef: string, fromMs: number | null, toMs: number | null): Promise<boolean> {
    const r = await this.pool.query(
      'UPDATE cards SET valid_from_ms = $1, valid_to_ms = $2 WHERE card_ref = $3',
      [fromMs, toMs, cardRef],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** One statement: the active cards not kept are revoked at `atMs`; the refs withdrawn, sorted. */
  async withdrawMissing(keep: ReadonlySet<string>, atMs: number): Promise<string[]> {
    const r = await this.pool.query<{ card_ref: string }>(
      `UPDATE cards SET revoked_at = $1 WHERE revoked_at IS NULL AND NOT (card_ref = ANY($2::text[]))
       RETURNING card_ref`,
      [atMs, [...keep]],
    );
    return r.rows.map((x) => x.card_ref).sort(byteOrder);
  }

  /**
   * Lost-card replacement in ONE transaction, under both cards' locks (sorted, as an import takes them): the old
   * card revoked and linked, the new one assigned to the same staff member (its earlier taps attributed) with
   * the old one's validity window.
   */
  replace(req: { oldRef: string; newRef: string; actor: string; nowMs: number }): Promise<CardAssignResult> {
    return inTransaction(this.pool, async (c) => {
      await c.query(
        `SELECT pg_advisory_xact_lock(${LOCK_NS.card}, hashtext(k)) FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) s`,
        [[req.oldRef, req.newRef]],
      );
      const old = await getOn(c, req.oldRef);
      if (!old) throw new Error(`card ${req.oldRef} is not registered`);
      await c.query(
        'UPDATE cards SET revoked_at = coalesce(revoked_at, $1), replaced_by = $2 WHERE card_ref = $3',
        [req.nowMs, req.newRef, req.oldRef],
      );
      const r = await assignOn(c, {
        cardRef: req.newRef,
        staffRef: old.staffRef,
        actor: req.actor,
        nowMs: req.nowMs,
      });
      await c.query('UPDATE cards SET valid_from_ms = $1, valid_to_ms = $2 WHERE card_ref = $3', [
        old.validFromMs ?? null,
        old.validToMs ?? null,
        req.newRef,
      ]);
      return r;
    });
  }

  async unknown(limit: number): Promise<UnknownCard[]> {
    const r = await this.pool.query<{
      card_ref: string;
      reader_id: string;
      client_ref: string | null;
      taps: number;
      first_ms: number;
      last_ms: number;
    }>(
      `SELECT a.card_ref, a.reader_id, a.client_ref, count(*) AS taps, min(a.at_ms) AS first_ms,
              max(a.at_ms) AS last_ms
         FROM anomalies a LEFT JOIN cards c ON c.card_ref = a.card_ref
        WHERE a.kind = 'unknown-card' AND a.card_ref IS NOT NULL AND c.card_ref IS NULL
        GROUP BY a.card_ref, a.reader_id, a.client_ref
        ORDER BY last_ms DESC`,
    );
    const byCard = new Map<string, UnknownCard>();
    for (const x of r.rows) {
      let c = byCard.get(x.card_ref);
      if (!c) {
        if (byCard.size >= limit) continue;
        c = { cardRef: x.card_ref, taps: 0, firstSeenMs: x.first_ms, lastSeenMs: x.last_ms, seenAt: [] };
        byCard.set(x.card_ref, c);
      }
      c.taps += x.taps;
      c.firstSeenMs = Math.min(c.firstSeenMs, x.first_ms);
      c.lastSeenMs = Math.max(c.lastSeenMs, x.last_ms);
      c.seenAt.push({ readerId: x.reader_id, clientRef: x.client_ref, lastSeenMs: x.last_ms, taps: x.taps });
    }
    return [...byCard.values()];
  }
}

const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

async function getOn(c: Pick<PgClient, 'query'>, cardRef: string): Promise<CardInfo | null> {
  const r = await c.query<{
    card_ref: string;
    staff_ref: string;
    revoked_at: number | null;
    valid_from_ms: number | null;
    valid_to_ms: number | null;
    replaced_by: string | null;
  }>(
    `SELECT card_ref, staff_ref, revoked_at, valid_from_ms, valid_to_ms, replaced_by
       FROM cards WHERE card_ref = $1`,
    [cardRef],
  );
  const x = r.rows[0];
  return x
    ? {
        cardRef: x.card_ref,
        staffRef: x.staff_ref,
        revokedAtMs: x.revoked_at,
        validFromMs: x.valid_from_ms,
        validToMs: x.valid_to_ms,
        replacedBy: x.replaced_by,
      }
    : null;
}

async function assignOn(c: PgClient, req: AssignReq): Promise<CardAssignResult> {
  await c.query(`SELECT pg_advisory_xact_lock(${LOCK_NS.card}, hashtext($1))`, [req.cardRef]);
  const before = await getOn(c, req.cardRef);
  await c.query(
    `INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES ($1, $2, NULL, $3)
       ON CONFLICT (card_ref) DO UPDATE SET staff_ref = excluded.staff_ref, revoked_at = NULL`,
    [req.cardRef, req.staffRef, req.nowMs],
  );
  const registry = !before
    ? 'added'
    : before.staffRef === req.staffRef && before.revokedAtMs === null
      ? 'unchanged'
      : 'reassigned';
  const attributed = await attributeOn(c, req);
  return { cardRef: req.cardRef, staffRef: req.staffRef, registry, attributed };
}

async function attributeOn(c: PgClient, req: AssignReq): Promise<AttributionResult> {
  const visits = (
    await c.query<{ reader_id: string; visit_id: string; client_ref: string | null; seq: number }>(
      `SELECT reader_id, visit_id, client_ref, COALESCE(start_seq, end_seq) AS seq FROM visits
        WHERE card_ref = $1 AND staff_ref IS NULL AND COALESCE(start_seq, end_seq) IS NOT NULL
        ORDER BY COALESCE(started_at_ms, ended_at_ms), reader_id COLLATE "C", visit_id COLLATE "C"`,
      [req.cardRef],
    )
  ).rows;
  const anomalies = (
    await c.query<{
      id: number;
      idempotency_key: string;
      reader_id: string;
      visit_id: string | null;
      client_ref: string | null;
      seq: number | null;
    }>(
      `SELECT id, idempotency_key, reader_id, visit_id, client_ref, seq FROM anomalies
        WHERE card_ref = $1 AND kind = 'unknown-card' AND staff_ref IS NULL AND resolved_at_ms IS NULL
        ORDER BY id`,
      [req.cardRef],
    )
  ).rows;
  const result: AttributionResult = { visits: 0, refusedTaps: 0, anomaliesResolved: 0, events: 0 };
  if (visits.length === 0 && anomalies.length === 0) return result;
  const event = async (
    e: Pick<Attributed, 'visitId' | 'readerId' | 'clientRef' | 'seq' | 'resolves'>,
  ): Promise<void> => {
    const wrote = await enqueueOn(
      c,
      {
        type: 'visit.attributed',
        idempotencyKey: attributionKey(e.readerId, e.seq),
        visitId: e.visitId,
        readerId: e.readerId,
        clientRef: e.clientRef,
        cardRef: req.cardRef,
        staffRef: req.staffRef,
        previousStaffRef: null,
        seq: e.seq,
        attributedAt: new Date(req.nowMs).toISOString(),
        attributedBy: req.actor.slice(0, 200),
        reason: 'card-assigned',
        resolves: e.resolves.slice(0, 8),
      },
      req.nowMs,
    );
    if (wrote) result.events++;
  };
  for (const v of visits) {
    const set = await c.query(
      `UPDATE visits SET staff_ref = $1, updated_at_ms = $2
        WHERE reader_id = $3 AND visit_id = $4 AND staff_ref IS NULL`,
      [req.staffRef, req.nowMs, v.reader_id, v.visit_id],
    );
    if ((set.rowCount ?? 0) === 0) continue;
    result.visits++;
    await c.query(
      `INSERT INTO visit_audit (reader_id, visit_id, action, actor, reason, at_ms)
       VALUES ($1, $2, 'attributed', $3, 'card assigned: attributed to its staff member', $4)`,
      [v.reader_id, v.visit_id, req.actor, req.nowMs],
    );
    await event({
      visitId: v.visit_id,
      readerId: v.reader_id,
      clientRef: v.client_ref,
      seq: v.seq,
      resolves: anomalies
        .filter((a) => a.reader_id === v.reader_id && a.visit_id === v.visit_id)
        .map((a) => a.idempotency_key),
    });
  }
  for (const a of anomalies) {
    if (a.visit_id === null && a.seq !== null) {
      result.refusedTaps++;
      await event({
        visitId: null,
        readerId: a.reader_id,
        clientRef: a.client_ref,
        seq: a.seq,
        resolves: [a.idempotency_key],
      });
    }
    const r = await c.query(
      `UPDATE anomalies SET resolved_at_ms = $1, resolved_by = $2, resolution = 'card-assigned',
              resolved_staff_ref = $3
        WHERE id = $4 AND resolved_at_ms IS NULL`,
      [req.nowMs, req.actor, req.staffRef, a.id],
    );
    result.anomaliesResolved += r.rowCount ?? 0;
  }
  return result;
}
