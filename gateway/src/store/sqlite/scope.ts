import type { AnomalyListRow as ScopedAnomaly, ScopedUnknownCard, VisitRow } from '../ports.js';
import { rawToVisit as toVisit } from '../rows.js';
import type { Db } from './db.js';

/** The scope of a caller's care data (auth/scope.ts `DataScope`, written out: store/ imports no feature). */
export interface DataScope {
  areas: readonly string[];
  provider: string | null;
}

/**
 * Scoped reads of care data on the gateway's SQLite file (the port: auth/scope-reader.ts `ScopeReader`;
 * PostgreSQL's: store/postgres/care.ts `PgCareScopeReader`): every query filters by the caller's areas
 * (and provider) INSIDE the SQL, before ORDER BY / LIMIT, so a scoped page is a full page of the
 * caller's own rows, never a page of everyone's rows filtered afterwards.
 *
 * A client is in scope when its registry row (care_clients) has one of the areas and, if the caller
 * has a provider, that provider. A visit, anomaly or card sighting is in scope when its client is.
 * Rows without a registered client are in no one's scope but an admin's.
 */
const CLIENTS = `SELECT client_ref FROM care_clients
  WHERE area_id IN (SELECT value FROM json_each(@areas))
    AND (@provider IS NULL OR json_extract(json, '$.providerId') = @provider)`;

const bind = (s: DataScope) => ({ areas: JSON.stringify(s.areas), provider: s.provider });

/** The scoped reads' rows: the same types on both engines (store/ports.ts). */
export type { AnomalyListRow as ScopedAnomaly, ScopedUnknownCard } from '../ports.js';

export class SqliteScopeReader {
  constructor(private readonly db: Db) {}

  clients(s: DataScope): Set<string> {
    return new Set(this.db.prepare(CLIENTS).pluck().all(bind(s)) as string[]);
  }

  clientInScope(s: DataScope, clientRef: string | null): boolean {
    if (clientRef === null) return false;
    return (
      this.db
        .prepare(`SELECT 1 FROM (${CLIENTS}) WHERE client_ref = @clientRef`)
        .get({ ...bind(s), clientRef }) !== undefined
    );
  }

  /** Clients of the area outside the scope's provider (none when the scope has no provider). */
  foreignClientsOfArea(s: DataScope, areaId: string): number {
    if (s.provider === null) return 0;
    return this.db
      .prepare(
        `SELECT count(*) FROM care_clients WHERE area_id = ?
           AND COALESCE(json_extract(json, '$.providerId'), '') <> ?`,
      )
      .pluck()
      .get(areaId, s.provider) as number;
  }

  staffInScope(s: DataScope, staffRef: string): boolean {
    return (
      this.db
        .prepare(
          `SELECT 1 FROM care_staff WHERE staff_ref = @staffRef AND area_id IN (SELECT value FROM json_each(@areas))`,
        )
        .get({ areas: JSON.stringify(s.areas), staffRef }) !== undefined
    );
  }

  visits(
    s: DataScope,
    q: { state: 'open' | 'recent'; readerId?: string | undefined; limit: number },
  ): VisitRow[] {
    const order = q.state === 'open' ? 'started_at_ms, visit_id' : 'updated_at_ms DESC, visit_id';
    const rows = this.db
      .prepare(
        `SELECT * FROM visits WHERE client_ref IN (${CLIENTS})
           AND (@open = 0 OR state = 'open') AND (@readerId IS NULL OR reader_id = @readerId)
           ORDER BY ${order} LIMIT @limit`,
      )
      .all({ ...bind(s), open: q.state === 'open' ? 1 : 0, readerId: q.readerId ?? null, limit: q.limit });
    return (rows as Parameters<typeof toVisit>[0][]).map(toVisit);
  }

  private withdrawals: boolean | null = null;
  /** Leaves out visits marked as a mistake (gateway/src/corrections), when that table exists. */
  private notWithdrawn(): string {
    this.withdrawals ??=
      this.db.prepare("SELECT 1 FROM pragma_table_info('visit_corrections') WHERE name = 'kind'").get() !==
      undefined;
    return this.withdrawals
      ? `AND NOT EXISTS (SELECT 1 FROM visit_corrections wc WHERE wc.kind = 'withdrawn'
           AND wc.reader_id = visits.reader_id AND wc.visit_id = visits.visit_id)`
      : '';
  }

  /** Which of these visits were withdrawn as a mistake (`readerId/visitId` keys). */
  withdrawnOf(visits: readonly { readerId: string; visitId: string }[]): Set<string> {
    const out = new Set<string>();
    if (visits.length === 0 || this.notWithdrawn() === '') return out;
    const s = this.db.prepare(
      "SELECT 1 FROM visit_corrections WHERE kind = 'withdrawn' AND reader_id = ? AND visit_id = ? LIMIT 1",
    );
    for (const v of visits)
      if (s.get(v.readerId, v.visitId) !== undefined) out.add(`${v.readerId}/${v.visitId}`);
    return out;
  }

  /** Visits started in [fromMs, toMs) that count (not withdrawn), of in-scope clients (null: every visit), oldest first. */
  visitsStartedBetween(s: DataScope | null, fromMs: number, toMs: number, limit: number): VisitRow[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM visits WHERE started_at_ms >= @fromMs AND started_at_ms < @toMs
           ${s === null ? '' : `AND client_ref IN (${CLIENTS})`} ${this.notWithdrawn()}
         ORDER BY started_at_ms, reader_id, visit_id LIMIT @limit`,
      )
      .all({ ...(s === null ? {} : bind(s)), fromMs, toMs, limit });
    return (rows as Parameters<typeof toVisit>[0][]).map(toVisit);
  }

  /** The stored rows of a visit id that are in scope (null: every one; a visit id may exist at several readers). */
  visitById(s: DataScope | null, visitId: string): VisitRow[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM visits WHERE visit_id = @visitId ${s === null ? '' : `AND client_ref IN (${CLIENTS})`}`,
      )
      .all({ ...(s === null ? {} : bind(s)), visitId });
    return (rows as Parameters<typeof toVisit>[0][]).map(toVisit);
  }

  anomalies(
    s: DataScope,
    q: { kind?: string | undefined; readerId?: string | undefined; limit: number },
  ): ScopedAnomaly[] {
    return this.db
      .prepare(
        `SELECT id, idempotency_key AS idempotencyKey, kind, reader_id AS readerId, visit_id AS visitId,
           card_ref AS cardRef, staff_ref AS staffRef, client_ref AS clientRef, at_ms AS atMs, seq, detail,
           created_at_ms AS createdAtMs, resolved_at_ms AS resolvedAtMs, resolved_by AS resolvedBy,
           resolution, resolved_staff_ref AS resolvedStaffRef
         FROM anomalies WHERE client_ref IN (${CLIENTS})
           AND (@kind IS NULL OR kind = @kind) AND (@readerId IS NULL OR reader_id = @readerId)
         ORDER BY id DESC LIMIT @limit`,
      )
      .all({
        ...bind(s),
        kind: q.kind ?? null,
        readerId: q.readerId ?? null,
        limit: q.limit,
      }) as ScopedAnomaly[];
  }

  /** Unknown cards seen at in-scope clients, with only those sightings (taps elsewhere are not counted). */
  unknownCards(s: DataScope, limit: number): ScopedUnknownCard[] {
    const rows = this.db
      .prepare(
        `SELECT a.card_ref AS cardRef, a.reader_id AS readerId, a.client_ref AS clientRef,
                count(*) AS taps, min(a.at_ms) AS firstMs, max(a.at_ms) AS lastMs
           FROM anomalies a LEFT JOIN cards c ON c.card_ref = a.card_ref
          WHERE a.kind = 'unknown-card' AND a.card_ref IS NOT NULL AND c.card_ref IS NULL
            AND a.client_ref IN (${CLIENTS})
          GROUP BY a.card_ref, a.reader_id, a.client_ref
          ORDER BY lastMs DESC`,
      )
      .all(bind(s)) as {
      cardRef: string;
      readerId: string;
      clientRef: string | null;
      taps: number;
      firstMs: number;
      lastMs: number;
    }[];
    const byCard = new Map<string, ScopedUnknownCard>();
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
      c.seenAt.push({ readerId: r.readerId, clientRef: r.clientRef, taps: r.taps, lastSeenMs: r.lastMs });
    }
    return [...byCard.values()];
  }

  /** True when an active planned visit with this id is for an in-scope client. */
  plannedVisitInScope(s: DataScope, plannedVisitId: string): boolean {
    return (
      this.db
        .prepare(
          `SELECT 1 FROM care_planned_visits WHERE planned_visit_id = @plannedVisitId AND active = 1
             AND client_ref IN (${CLIENTS}) LIMIT 1`,
        )
        .get({ ...bind(s), plannedVisitId }) !== undefined
    );
  }

  /** True when the card has been tapped (known or not) at an in-scope client. */
  cardSeenInScope(s: DataScope, cardRef: string): boolean {
    return (
      this.db
        .prepare(
          `SELECT 1 FROM anomalies WHERE card_ref = @cardRef AND client_ref IN (${CLIENTS})
           UNION ALL SELECT 1 FROM visits WHERE card_ref = @cardRef AND client_ref IN (${CLIENTS}) LIMIT 1`,
        )
        .get({ ...bind(s), cardRef }) !== undefined
    );
  }
}
