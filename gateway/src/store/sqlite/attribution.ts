import type { VisitEvent } from '../../../../protocol/index.js';
import type { SqliteOutbox } from './outbox.js';
import type { AttributionResult } from '../ports.js';
import type { Db } from './db.js';

/**
 * Re-attribution of a card's earlier taps once the card is assigned to a staff member.
 *
 * While a card is unknown, the visit engine records its visits with `staff_ref NULL` and an
 * `unknown-card` anomaly (and a refused tap gets only the anomaly). When a coordinator assigns the card
 * (admin API, CLI, CSV import), `attributeCard` runs in the SAME transaction as the registry write:
 * - every visit of the card still without a staff member gets it (`visits.staff_ref`, a `visit_audit`
 *   row) and one `visit.attributed` event;
 * - every refused tap of the card (an `unknown-card` anomaly without a visit) gets one
 *   `visit.attributed` event with `visitId: null`: it is reported, no visit is invented;
 * - those `unknown-card` anomalies are marked resolved (when, by whom, to whom).
 *
 * Only unattributed rows are touched: a visit that already has a staff member is never rewritten.
 * Every event has a stable key (`vt1:{readerId}:{seq}:attributed`) and is inserted after the rows the
 * engine wrote for that visit, so the outbox (delivered in id order) never sends an attribution before
 * the visit's `visit.started` / `visit.ended`.
 */
export type { AttributionResult } from '../ports.js';

export const attributionKey = (readerId: string, seq: number): string => `vt1:${readerId}:${seq}:attributed`;

export interface AttributionRequest {
  cardRef: string;
  staffRef: string;
  /** Who assigned the card (admin token name, `cli`, `cards-import`). */
  actor: string;
  nowMs: number;
}

export const NO_ATTRIBUTION: AttributionResult = {
  visits: 0,
  refusedTaps: 0,
  anomaliesResolved: 0,
  events: 0,
};

interface OpenVisit {
  reader_id: string;
  visit_id: string;
  client_ref: string | null;
  seq: number;
}

interface OpenAnomaly {
  id: number;
  idempotency_key: string;
  reader_id: string;
  visit_id: string | null;
  client_ref: string | null;
  seq: number | null;
}

type Attributed = Extract<VisitEvent, { type: 'visit.attributed' }>;

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * The re-attribution pass for one card (see the module comment). Atomic: runs in a transaction (a
 * savepoint when the caller already holds one), so a crash leaves either everything or nothing, and a
 * second run finds nothing left to do. The card must be registered to `staffRef` by the caller, in the
 * same transaction, so a late tap processed afterwards resolves through the registry instead.
 */
export function attributeCard(
  d: { db: Db; outbox: Pick<SqliteOutbox, 'enqueue'> },
  req: AttributionRequest,
): AttributionResult {
  const { db, outbox } = d;
  // the card's older pseudonyms too, from before a fleet-key rotation (keys/rotate.ts: card_ref_map)
  const mapped =
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'card_ref_map'").get() !==
    undefined;
  const refs = mapped
    ? [
        req.cardRef,
        ...(db
          .prepare('SELECT old_ref FROM card_ref_map WHERE new_ref = ?')
          .pluck()
          .all(req.cardRef) as string[]),
      ]
    : [req.cardRef];
  const inRefs = `card_ref IN (${refs.map(() => '?').join(', ')})`;
  return db.transaction((): AttributionResult => {
    const visits = db
      .prepare(
        `SELECT reader_id, visit_id, client_ref, COALESCE(start_seq, end_seq) AS seq FROM visits
           WHERE ${inRefs} AND staff_ref IS NULL AND COALESCE(start_seq, end_seq) IS NOT NULL
           ORDER BY COALESCE(started_at_ms, ended_at_ms), reader_id, visit_id`,
      )
      .all(...refs) as OpenVisit[];
    const anomalies = db
      .prepare(
        `SELECT id, idempotency_key, reader_id, visit_id, client_ref, seq FROM anomalies
           WHERE ${inRefs} AND kind = 'unknown-card' AND staff_ref IS NULL AND resolved_at_ms IS NULL
           ORDER BY id`,
      )
      .all(...refs) as OpenAnomaly[];
    if (visits.length === 0 && anomalies.length === 0) return { ...NO_ATTRIBUTION };

    const setStaff = db.prepare(
      `UPDATE visits SET staff_ref = ?, updated_at_ms = ? WHERE reader_id = ? AND visit_id = ? AND staff_ref IS NULL`,
    );
    const audit = db.prepare(
      `INSERT INTO visit_audit (reader_id, visit_id, action, actor, reason, at_ms) VALUES (?, ?, 'attributed', ?, ?, ?)`,
    );
    const resolve = db.prepare(
      `UPDATE anomalies SET resolved_at_ms = ?, resolved_by = ?, resolution = 'card-assigned', resolved_staff_ref = ?
         WHERE id = ? AND resolved_at_ms IS NULL`,
    );
    const result: AttributionResult = { ...NO_ATTRIBUTION };
    const event = (e: Pick<Attributed, 'visitId' | 'readerId' | 'clientRef' | 'seq' | 'resolves'>): void => {
      const wrote = outbox.enqueue(
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
          attributedAt: iso(req.nowMs),
          attributedBy: req.actor.slice(0, 200),
          reason: 'card-assigned',
          resolves: e.resolves.slice(0, 8),
        },
        req.nowMs,
      );
      if (wrote) result.events++;
    };

    const byVisit = new Map<string, OpenAnomaly[]>();
    for (const a of anomalies) {
      if (a.visit_id === null) continue;
      const k = `${a.reader_id}\n${a.visit_id}`;
      byVisit.set(k, [...(byVisit.get(k) ?? []), a]);
    }
    for (const v of visits) {
      if (setStaff.run(req.staffRef, req.nowMs, v.reader_id, v.visit_id).changes === 0) continue;
      result.visits++;
      audit.run(
        v.reader_id,
        v.visit_id,
        req.actor,
        'card assigned: attributed to its staff member',
        req.nowMs,
      );
      const own = byVisit.get(`${v.reader_id}\n${v.visit_id}`) ?? [];
      event({
        visitId: v.visit_id,
        readerId: v.reader_id,
        clientRef: v.client_ref,
        seq: v.seq,
        resolves: own.map((a) => a.idempotency_key),
      });
    }
    for (const a of anomalies) {
      if (a.visit_id === null && a.seq !== null) {
        result.refusedTaps++;
        event({
          visitId: null,
          readerId: a.reader_id,
          clientRef: a.client_ref,
          seq: a.seq,
          resolves: [a.idempotency_key],
        });
      }
      result.anomaliesResolved += resolve.run(req.nowMs, req.actor, req.staffRef, a.id).changes;
    }
    return result;
  })();
}
