import { randomBytes } from 'node:crypto';
import { ANCHOR_SCAN_KEY } from '../rows.js';
import { inTransaction, type PgClient, type PgPool } from './db.js';
import { tryLease } from './leases.js';

const DAY_MS = 86_400_000;

import {
  RETENTION_CLASSES as CLASSES,
  type PruneCounts,
  type RetentionClass,
  type SharedEraseResult,
  type SharedRetention,
} from '../retention.js';

export type { PruneCounts, RetentionClass };
/** Days per class ('keep' = never deleted) and rows per transaction: retention/policy.ts settings. */
export interface PgRetentionPolicy {
  days: (c: RetentionClass) => number | 'keep';
  batchRows: number;
}

interface PgStep {
  cls: RetentionClass;
  table: string;
  /** Deletes at most $2 rows older than $1 ($3: the per-reader anchor-scan key prefix, events only). */
  sql: string;
}

/**
 * Retention on PostgreSQL (issue 16, docs/retention.md): the same classes, periods and exceptions as the SQLite
 * pruner (../sqlite/retention.ts), in batches of `batchRows` per transaction. What the visits engine still
 * needs is never deleted: a raw event is deleted only at or below its reader's contiguous mark
 * (`reader_seq.contiguous_upto`), its visits cursor (`visit_cursor.processed_upto`) and its reader's own
 * anchor-scan mark (`visit_meta` `anchor_scan_id:<reader>`, the per-reader scan of the turn engine); a reader
 * with no cursor or no mark keeps every row. `reader_seq` itself is never deleted (the dedupe state: a
 * re-sent pruned seq is a duplicate, ./ingest-store.ts). The access audit log is on PostgreSQL too (one for
 * every instance, issue 14); what an instance's SQLite file still holds from before is pruned there.
 */
const PG_STEPS: readonly PgStep[] = [
  {
    cls: 'rawEvents',
    table: 'events',
    sql: `DELETE FROM events WHERE id IN (
            SELECT e.id FROM events e
              JOIN reader_seq s ON s.reader_id = e.reader_id
              JOIN visit_cursor c ON c.reader_id = e.reader_id
              JOIN visit_meta m ON m.key = $3 || e.reader_id
            WHERE e.received_at_ms < $1 AND e.seq <= s.contiguous_upto AND e.seq <= c.processed_upto
              AND e.id <= m.value
            ORDER BY e.id LIMIT $2)`,
  },
  {
    cls: 'rawEvents',
    table: 'rejected_events',
    sql: `DELETE FROM rejected_events WHERE (reader_id, seq) IN (
            SELECT r.reader_id, r.seq FROM rejected_events r
              JOIN reader_seq s ON s.reader_id = r.reader_id
              JOIN visit_cursor c ON c.reader_id = r.reader_id
            WHERE r.at_ms < $1 AND r.seq <= s.contiguous_upto AND r.seq <= c.processed_upto LIMIT $2)`,
  },
  {
    cls: 'rawEvents',
    table: 'duplicate_conflicts',
    sql: `DELETE FROM duplicate_conflicts WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM duplicate_conflicts WHERE at_ms < $1 LIMIT $2))`,
  },
  {
    cls: 'rejects',
    table: 'rejects',
    sql: `DELETE FROM rejects WHERE id IN (SELECT id FROM rejects WHERE at_ms < $1 ORDER BY id LIMIT $2)`,
  },
  {
    cls: 'outboxDelivered',
    table: 'outbox',
    sql: `DELETE FROM outbox WHERE id IN (
            SELECT id FROM outbox WHERE state = 'delivered' AND delivered_at_ms < $1 ORDER BY id LIMIT $2)`,
  },
  {
    cls: 'unknownCardAnomalies',
    table: 'anomalies',
    sql: `DELETE FROM anomalies WHERE id IN (
            SELECT id FROM anomalies WHERE kind = 'unknown-card' AND created_at_ms < $1 ORDER BY id LIMIT $2)`,
  },
  {
    cls: 'anomalies',
    table: 'anomalies',
    sql: `DELETE FROM anomalies WHERE id IN (
            SELECT id FROM anomalies WHERE kind != 'unknown-card' AND created_at_ms < $1 ORDER BY id LIMIT $2)`,
  },
  {
    cls: 'visits',
    table: 'visits',
    sql: `DELETE FROM visits WHERE (reader_id, visit_id) IN (
            SELECT v.reader_id, v.visit_id FROM visits v
            WHERE v.state = 'closed' AND v.updated_at_ms < $1
              AND COALESCE(v.ended_at_ms, v.started_at_ms, 0) < $1
              AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.visit_id = v.visit_id AND o.state != 'delivered')
            LIMIT $2)`,
  },
  {
    cls: 'audit',
    table: 'visit_audit',
    sql: `DELETE FROM visit_audit WHERE id IN (SELECT id FROM visit_audit WHERE at_ms < $1 ORDER BY id LIMIT $2)`,
  },
  {
    // the access audit log shared by the instances (append-only: the statement's own transaction sets
    // visittag.audit_maintenance, which the trigger of migration audit-001 lets delete)
    cls: 'audit',
    table: 'audit_log',
    sql: `WITH m AS (SELECT set_config('visittag.audit_maintenance', 'on', true) AS flag)
          DELETE FROM audit_log WHERE seq IN (
            SELECT seq FROM audit_log, m WHERE m.flag = 'on' AND at_ms < $1 ORDER BY seq LIMIT $2)`,
  },
];

const zero = (): PruneCounts => Object.fromEntries(CLASSES.map((c) => [c, 0])) as PruneCounts;

export interface PgPruner {
  /** At most `maxBatches` transactions of at most `batchRows` rows; `more` when something is still past retention. */
  step(nowMs: number, maxBatches: number): Promise<{ deleted: PruneCounts; more: boolean }>;
  /** Steps until nothing is past retention (bounded by `maxSteps`): the CLI and tests. */
  runAll(nowMs: number, maxSteps?: number): Promise<PruneCounts>;
}

export function createPgPruner(pool: PgPool, policy: PgRetentionPolicy): PgPruner {
  const steps = PG_STEPS.filter((s) => policy.days(s.cls) !== 'keep').map((s) => ({
    ...s,
    days: policy.days(s.cls) as number,
  }));
  const n = policy.batchRows;
  const batch = async (s: (typeof steps)[number], nowMs: number): Promise<number> => {
    const params: unknown[] = [nowMs - s.days * DAY_MS, n];
    if (s.table === 'events') params.push(`${ANCHOR_SCAN_KEY}:`);
    return (await pool.query(s.sql, params)).rowCount ?? 0;
  };
  let next = 0;
  const step = async (nowMs: number, maxBatches: number) => {
    const deleted = zero();
    let batches = 0;
    while (next < steps.length) {
      const s = steps[next]!;
      if (batches >= maxBatches) return { deleted, more: true };
      const k = await batch(s, nowMs);
      batches++;
      deleted[s.cls] += k;
      if (k < n) next++;
    }
    next = 0;
    return { deleted, more: false };
  };
  return {
    step,
    async runAll(nowMs, maxSteps = 100_000) {
      const total = zero();
      for (let i = 0; i < maxSteps; i++) {
        const r = await step(nowMs, 50);
        for (const c of CLASSES) total[c] += r.deleted[c];
        if (!r.more) break;
      }
      return total;
    },
  };
}

type Queryable = Pick<PgClient, 'query'>;

/** Tables never scanned or rewritten by erasure: bookkeeping without personal data. */
const NOT_SCANNED = new Set(['schema_migrations', 'leases']);

/** Every text column of every table in the current schema (tables added later are covered without a list). */
async function pgTextColumns(c: Queryable): Promise<Array<{ table: string; column: string }>> {
  const r = await c.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying', 'character')
      ORDER BY table_name, ordinal_position`,
  );
  return r.rows
    .filter((x) => !NOT_SCANNED.has(x.table_name))
    .map((x) => ({ table: x.table_name, column: x.column_name }));
}

const qi = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** Where a reference still occurs on PostgreSQL: table.column -> rows (anywhere in the text). */
export async function pgScanForRef(c: Queryable, ref: string): Promise<Record<string, number>> {
  const hits: Record<string, number> = {};
  for (const { table, column } of await pgTextColumns(c)) {
    const r = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${qi(table)} WHERE strpos(${qi(column)}, $1) > 0`,
      [ref],
    );
    if ((r.rows[0]?.n ?? 0) > 0) hits[`${table}.${column}`] = r.rows[0]!.n;
  }
  return hits;
}

/** As ../sqlite/retention.ts replaceEverywhere: the exact value, a JSON string of it, or an audit target ending in `:ref`. */
async function pgReplaceEverywhere(
  c: Queryable,
  ref: string,
  pseudo: string,
  changed: Record<string, number>,
): Promise<void> {
  const qref = JSON.stringify(ref);
  const qpseudo = JSON.stringify(pseudo);
  for (const { table, column } of await pgTextColumns(c)) {
    const t = qi(table);
    const col = qi(column);
    const r = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${t}
        WHERE ${col} = $1 OR strpos(${col}, $2) > 0 OR right(${col}, length($1) + 1) = ':' || $1`,
      [ref, qref],
    );
    const n = r.rows[0]?.n ?? 0;
    if (n === 0) continue;
    await c.query(`UPDATE ${t} SET ${col} = $2 WHERE ${col} = $1`, [ref, pseudo]);
    await c.query(`UPDATE ${t} SET ${col} = replace(${col}, $1, $2) WHERE strpos(${col}, $1) > 0`, [
      qref,
      qpseudo,
    ]);
    await c.query(
      `UPDATE ${t} SET ${col} = left(${col}, length(${col}) - length($1)) || $2
        WHERE right(${col}, length($1) + 1) = ':' || $1`,
      [ref, pseudo],
    );
    changed[`${table}.${column}`] = (changed[`${table}.${column}`] ?? 0) + n;
  }
}

export interface PgEraseRequest {
  kind: 'client' | 'staff';
  ref: string;
  /** Erase even where records-law retention applies. */
  force: boolean;
  nowMs: number;
  /** retention.visitsDays: the care record's period ('keep': kept for ever). */
  visitsDays: number | 'keep';
}

/** As ../retention.ts EraseResult, with the card pseudonyms chosen (the instance's SQLite file gets the same). */
export type PgEraseResult = SharedEraseResult;

/**
 * Erasure on PostgreSQL (the rules of ../sqlite/retention.ts eraseSubject): one transaction, refused on records law unless
 * forced, a staff member's cards revoked, their sealed UIDs dropped from the card UID vault, and every
 * reference replaced by a random pseudonym. `pseudo` may be given (the caller erases the same person in its
 * SQLite file with the same pseudonym). `not-found` when nothing on PostgreSQL names the person.
 */
export function pgEraseSubject(
  pool: PgPool,
  req: PgEraseRequest,
  pseudo = `erased-${randomBytes(9).toString('hex')}`,
): Promise<PgEraseResult> {
  const col = req.kind === 'client' ? 'client_ref' : 'staff_ref';
  return inTransaction(pool, async (c): Promise<PgEraseResult> => {
    // the audit log's append-only trigger lets this transaction pseudonymise it (migration audit-001)
    await c.query(`SET LOCAL visittag.audit_maintenance = 'on'`);
    const before = await pgScanForRef(c, req.ref);
    if (Object.keys(before).length === 0) {
      return { ok: false, code: 'not-found', reason: `no ${req.kind} ${req.ref} in the database` };
    }
    const v = (
      await c.query<{ n: number; newest: number | null }>(
        `SELECT count(*)::int AS n, max(COALESCE(ended_at_ms, started_at_ms, updated_at_ms)) AS newest
           FROM visits WHERE ${col} = $1`,
        [req.ref],
      )
    ).rows[0]!;
    if (v.n > 0 && !req.force) {
      const keep = req.visitsDays;
      const young = keep === 'keep' || (v.newest ?? 0) >= req.nowMs - keep * DAY_MS;
      if (young) {
        return {
          ok: false,
          code: 'records-law',
          reason:
            `${v.n} visit(s) of this ${req.kind} are part of the care record, kept by retention.visitsDays ` +
            `(${keep === 'keep' ? 'keep' : `${keep} days`}); records law may require keeping them. ` +
            'After the legal review, erase anyway with --force-records-law (API: "forceRecordsLaw": true): the ' +
            'reference is replaced by a pseudonym and the visits stay in the figures.',
        };
      }
    }
    const changed: Record<string, number> = {};
    const cardPseudonyms: Array<[string, string]> = [];
    if (req.kind === 'staff') {
      const refs = (
        await c.query<{ c: string }>(
          `SELECT card_ref AS c FROM cards WHERE staff_ref = $1
           UNION SELECT card_ref FROM visits WHERE staff_ref = $1 ORDER BY 1`,
          [req.ref],
        )
      ).rows.map((r) => r.c);
      await c.query('UPDATE cards SET revoked_at = COALESCE(revoked_at, $1) WHERE staff_ref = $2', [
        req.nowMs,
        req.ref,
      ]);
      const vault = await c.query(`SELECT to_regclass('card_uid_vault') IS NOT NULL AS present`);
      if ((vault.rows[0] as { present: boolean }).present && refs.length) {
        const d = await c.query('DELETE FROM card_uid_vault WHERE card_ref = ANY($1)', [refs]);
        if (d.rowCount) changed['card_uid_vault (deleted)'] = d.rowCount;
      }
      for (const card of refs) {
        const p = `${pseudo}-card-${cardPseudonyms.length + 1}`;
        cardPseudonyms.push([card, p]);
        await pgReplaceEverywhere(c, card, p, changed);
      }
    }
    await pgReplaceEverywhere(c, req.ref, pseudo, changed);
    return { ok: true, pseudonym: pseudo, changed, cards: cardPseudonyms.length, cardPseudonyms };
  });
}

// ------------------------------------------------------------------------------------------ erasure log

/**
 * erasure_log (PostgreSQL migration erasure-log-001): one row per erased reference, a keyed digest of it (never
 * the reference: the key is derived from the fleet key, which only the gateways hold) and the pseudonym chosen,
 * so every instance applies the erasure to its own SQLite file (retention/pg.ts `applyRecordedErasures`).
 */
export async function recordErasures(
  pool: PgPool,
  digested: ReadonlyArray<readonly [digest: string, pseudonym: string]>,
  nowMs: number,
): Promise<void> {
  for (const [digest, pseudo] of digested)
    await pool.query('INSERT INTO erasure_log (ref_digest, pseudonym, at_ms) VALUES ($1, $2, $3)', [
      digest,
      pseudo,
      nowMs,
    ]);
}

/** The recorded erasures after `mark`, oldest first (at most `limit`). */
export async function erasuresSince(
  pool: PgPool,
  mark: number,
  limit = 1000,
): Promise<Array<{ id: string; ref_digest: string; pseudonym: string }>> {
  return (
    await pool.query<{ id: string; ref_digest: string; pseudonym: string }>(
      'SELECT id, ref_digest, pseudonym FROM erasure_log WHERE id > $1 ORDER BY id LIMIT $2',
      [mark, limit],
    )
  ).rows;
}

/** Deletes the erasures recorded before `beforeMs` (the lease holder, after ERASURE_LOG_KEEP_MS). */
export async function pruneErasureLog(pool: PgPool, beforeMs: number): Promise<void> {
  await pool.query('DELETE FROM erasure_log WHERE at_ms < $1', [beforeMs]);
}

/** Retention and erasure on PostgreSQL as one port (../retention.ts `SharedRetention`): retention/pg.ts uses it. */
export class PgRetentionStore implements SharedRetention {
  constructor(private readonly pool: PgPool) {}
  pruner(policy: PgRetentionPolicy): PgPruner {
    return createPgPruner(this.pool, policy);
  }
  tryLease(name: string, holder: string, nowMs: number, ttlMs: number): Promise<boolean> {
    return tryLease(this.pool, name, holder, nowMs, ttlMs);
  }
  erase(req: PgEraseRequest): Promise<PgEraseResult> {
    return pgEraseSubject(this.pool, req);
  }
  recordErasures(digested: ReadonlyArray<readonly [string, string]>, nowMs: number): Promise<void> {
    return recordErasures(this.pool, digested, nowMs);
  }
  erasuresSince(mark: number): Promise<Array<{ id: string; ref_digest: string; pseudonym: string }>> {
    return erasuresSince(this.pool, mark);
  }
  pruneErasureLog(beforeMs: number): Promise<void> {
    return pruneErasureLog(this.pool, beforeMs);
  }
}
