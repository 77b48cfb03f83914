/**
 * Retention and erasure on SQLite (issue 16, docs/retention.md; ports in ../retention.ts): the pruner's bounded
 * DELETE batches per data class, and the erasure of one reference in every table of the file. The job's timer,
 * the audit entry and the settings are gateway/src/retention/'s; PostgreSQL's adapter is ../postgres/retention.ts.
 */
import { randomBytes } from 'node:crypto';
import {
  daysOf,
  RETENTION_CLASSES,
  zeroCounts,
  type EraseRequest,
  type EraseResult,
  type LocalErasure,
  type LocalRetention,
  type Pruner,
  type RetentionClass,
  type RetentionPeriods,
} from '../retention.js';
import { ANCHOR_SCAN_KEY } from '../rows.js';
import type { Db } from './db.js';

export type { EraseRequest, EraseResult, SubjectKind } from '../retention.js';

const DAY_MS = 86_400_000;

export const hasTable = (db: Db, table: string): boolean =>
  db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(table) !== undefined;

/**
 * Runs `fn` with the table's triggers dropped and puts them back exactly as they were (their stored SQL).
 * Call inside a transaction: the append-only triggers of audit_log / visit_corrections are never missing for
 * another connection. Only retention and erasure use this: they are the documented exceptions to append-only.
 */
export function withoutTriggers<T>(db: Db, table: string, fn: () => T): T {
  if (!db.inTransaction) throw new Error('withoutTriggers must run inside a transaction');
  const triggers = db
    .prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?`)
    .all(table) as Array<{ name: string; sql: string }>;
  for (const t of triggers) db.exec(`DROP TRIGGER "${t.name.replace(/"/g, '""')}"`);
  const out = fn();
  for (const t of triggers) db.exec(t.sql);
  return out;
}

/** Every TEXT-like column of every table (the scan covers tables added later without listing them here). */
function textColumns(db: Db): Array<{ table: string; column: string }> {
  const tables = (
    db
      .prepare(
        `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations'`,
      )
      .all() as Array<{ name: string }>
  ).map((t) => t.name);
  const out: Array<{ table: string; column: string }> = [];
  for (const table of tables) {
    const cols = db.prepare(`SELECT name, type FROM pragma_table_info(?)`).all(table) as Array<{
      name: string;
      type: string;
    }>;
    for (const c of cols)
      if (c.type === '' || /TEXT|CHAR|CLOB/i.test(c.type)) out.push({ table, column: c.name });
  }
  return out;
}

const qi = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** Where a reference still occurs: table.column -> rows (exact value, quoted inside JSON, or after a ':'). */
export function scanForRef(db: Db, ref: string): Record<string, number> {
  const hits: Record<string, number> = {};
  for (const { table, column } of textColumns(db)) {
    const n = (
      db.prepare(`SELECT COUNT(*) AS n FROM ${qi(table)} WHERE instr(${qi(column)}, ?) > 0`).get(ref) as {
        n: number;
      }
    ).n;
    if (n > 0) hits[`${table}.${column}`] = n;
  }
  return hits;
}

/**
 * Replaces one reference everywhere it occurs: a column equal to it, a JSON string equal to it (`"ref"`), or an
 * audit target ending in `:ref`. Append-only tables (audit_log, visit_corrections) get the same replacement with
 * their triggers lifted inside the caller's transaction. Returns rows changed per table.column.
 */
function replaceEverywhere(db: Db, ref: string, pseudo: string, changed: Record<string, number>): void {
  const quotedRef = JSON.stringify(ref);
  const quotedPseudo = JSON.stringify(pseudo);
  for (const { table, column } of textColumns(db)) {
    const c = qi(column);
    const t = qi(table);
    const where = `${c} = @ref OR instr(${c}, @qref) > 0 OR (substr(${c}, -length(@ref) - 1) = ':' || @ref)`;
    const n = (
      db.prepare(`SELECT COUNT(*) AS n FROM ${t} WHERE ${where}`).get({ ref, qref: quotedRef }) as {
        n: number;
      }
    ).n;
    if (n === 0) continue;
    const run = () => {
      db.prepare(`UPDATE ${t} SET ${c} = @pseudo WHERE ${c} = @ref`).run({ ref, pseudo });
      db.prepare(`UPDATE ${t} SET ${c} = replace(${c}, @qref, @qpseudo) WHERE instr(${c}, @qref) > 0`).run({
        qref: quotedRef,
        qpseudo: quotedPseudo,
      });
      db.prepare(
        `UPDATE ${t} SET ${c} = substr(${c}, 1, length(${c}) - length(@ref)) || @pseudo
           WHERE substr(${c}, -length(@ref) - 1) = ':' || @ref`,
      ).run({ ref, pseudo });
    };
    withoutTriggers(db, table, run);
    changed[`${table}.${column}`] = (changed[`${table}.${column}`] ?? 0) + n;
  }
}

/** Candidate references in a text value: the value, each JSON string in it, what follows its last ':'. */
function candidatesIn(v: string): string[] {
  const out = [v];
  const colon = v.lastIndexOf(':');
  if (colon >= 0) out.push(v.slice(colon + 1));
  if (v.includes('"')) {
    for (const m of v.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
      try {
        out.push(JSON.parse(`"${m[1] ?? ''}"`) as string);
      } catch {
        // not a JSON string: skipped
      }
    }
  }
  return out;
}

/**
 * The references in this file whose keyed digest is one of `wanted` (digest -> reference found): how an instance
 * finds, in its own file, the person an erasure on another instance named by digest only (retention/pg.ts).
 */
export function findByDigest(
  db: Db,
  digest: (ref: string) => string,
  wanted: ReadonlySet<string>,
): Map<string, string> {
  const found = new Map<string, string>();
  if (wanted.size === 0) return found;
  for (const { table, column } of textColumns(db)) {
    const values = db
      .prepare(`SELECT DISTINCT ${qi(column)} AS v FROM ${qi(table)} WHERE typeof(${qi(column)}) = 'text'`)
      .pluck()
      .all() as string[];
    for (const v of values)
      for (const c of candidatesIn(v)) {
        if (!c) continue;
        const d = digest(c);
        if (wanted.has(d) && !found.has(d)) found.set(d, c);
      }
  }
  return found;
}

/**
 * Replaces each reference by the pseudonym chosen elsewhere, in one transaction (PostgreSQL mode: the instance's
 * own SQLite file, its audit log and reader registry copy, gets the pseudonyms PostgreSQL's erasure chose).
 * Returns rows changed per table.column.
 */
export function replaceRefs(db: Db, pairs: ReadonlyArray<readonly [string, string]>): Record<string, number> {
  return db.transaction(() => {
    const changed: Record<string, number> = {};
    for (const [ref, pseudo] of pairs) replaceEverywhere(db, ref, pseudo, changed);
    return changed;
  })();
}

/**
 * Erasure of one client's or staff member's identity (issue 16, docs/retention.md "Erasure"). Their reference,
 * and a staff member's card references, are replaced in every table by a random pseudonym that is not stored
 * anywhere with the original: visits, plans and matches keep their figures (a report's counts, continuity and
 * executed-vs-planned are unchanged), but nothing left in the database names the person. A staff member's cards
 * are revoked (a later tap of such a card is an unknown card). One transaction: all or nothing.
 *
 * Refused with code 'records-law' when the person has visits that the retention settings keep (visitsDays
 * 'keep', or visits younger than visitsDays), unless `force` is set after the legal review.
 */
export function eraseSubject(
  db: Db,
  settings: { visitsDays: number | 'keep' },
  req: EraseRequest,
): EraseResult {
  const col = req.kind === 'client' ? 'client_ref' : 'staff_ref';
  return db.transaction((): EraseResult => {
    const before = scanForRef(db, req.ref);
    if (Object.keys(before).length === 0) {
      return { ok: false, code: 'not-found', reason: `no ${req.kind} ${req.ref} in the database` };
    }
    const v = db
      .prepare(
        `SELECT COUNT(*) AS n, MAX(COALESCE(ended_at_ms, started_at_ms, updated_at_ms)) AS newest FROM visits WHERE ${col} = ?`,
      )
      .get(req.ref) as { n: number; newest: number | null };
    if (v.n > 0 && !req.force) {
      const keep = settings.visitsDays;
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
    const pseudo = `erased-${randomBytes(9).toString('hex')}`;
    const changed: Record<string, number> = {};
    let cards = 0;
    if (req.kind === 'staff' && hasTable(db, 'cards')) {
      const refs = new Set(
        (
          db
            .prepare(
              `SELECT card_ref AS c FROM cards WHERE staff_ref = ?
               UNION SELECT card_ref FROM visits WHERE staff_ref = ?`,
            )
            .all(req.ref, req.ref) as Array<{ c: string }>
        ).map((r) => r.c),
      );
      db.prepare('UPDATE cards SET revoked_at = COALESCE(revoked_at, ?) WHERE staff_ref = ?').run(
        req.nowMs,
        req.ref,
      );
      for (const card of refs) {
        cards++;
        replaceEverywhere(db, card, `${pseudo}-card-${cards}`, changed);
      }
    }
    replaceEverywhere(db, req.ref, pseudo, changed);
    return { ok: true, pseudonym: pseudo, changed, cards };
  })();
}

// ------------------------------------------------------------------------------------------- retention

interface Step {
  cls: RetentionClass;
  table: string;
  /** Deletes at most @n rows older than @cutoff; returns the number deleted. */
  sql: string;
  /** The table refuses DELETE (append-only trigger): deleted with its triggers lifted in the same transaction. */
  appendOnly?: boolean;
}

/**
 * What each class deletes. Never deleted, whatever the settings (docs/retention.md "What is never deleted"):
 * events the visits engine has not processed (seq above its cursor or the reader's contiguous mark, or not yet
 * scanned for time anchors), the per-reader sequence state (reader_seq: the dedupe state that keeps an old
 * re-sent tap from being paired again), visit cursors, open visits and visits with an undelivered event,
 * pending and dead-lettered outbox rows.
 */
const STEPS: readonly Step[] = [
  {
    cls: 'rawEvents',
    table: 'events',
    sql: `DELETE FROM events WHERE id IN (
            SELECT e.id FROM events e
              JOIN reader_seq s ON s.reader_id = e.reader_id
              JOIN visit_cursor c ON c.reader_id = e.reader_id
            WHERE e.received_at_ms < @cutoff AND e.seq <= s.contiguous_upto AND e.seq <= c.processed_upto
              AND e.id <= COALESCE((SELECT value FROM visit_meta WHERE key = @anchorKey), 0)
            ORDER BY e.id LIMIT @n)`,
  },
  {
    cls: 'rawEvents',
    table: 'rejected_events',
    sql: `DELETE FROM rejected_events WHERE rowid IN (
            SELECT r.rowid FROM rejected_events r
              JOIN reader_seq s ON s.reader_id = r.reader_id
              JOIN visit_cursor c ON c.reader_id = r.reader_id
            WHERE r.at_ms < @cutoff AND r.seq <= s.contiguous_upto AND r.seq <= c.processed_upto LIMIT @n)`,
  },
  {
    cls: 'rawEvents',
    table: 'duplicate_conflicts',
    sql: `DELETE FROM duplicate_conflicts WHERE rowid IN (
            SELECT rowid FROM duplicate_conflicts WHERE at_ms < @cutoff LIMIT @n)`,
  },
  {
    cls: 'rejects',
    table: 'rejects',
    sql: `DELETE FROM rejects WHERE id IN (SELECT id FROM rejects WHERE at_ms < @cutoff ORDER BY id LIMIT @n)`,
  },
  {
    cls: 'outboxDelivered',
    table: 'outbox',
    sql: `DELETE FROM outbox WHERE id IN (
            SELECT id FROM outbox WHERE state = 'delivered' AND delivered_at_ms < @cutoff ORDER BY id LIMIT @n)`,
  },
  {
    cls: 'unknownCardAnomalies',
    table: 'anomalies',
    sql: `DELETE FROM anomalies WHERE id IN (
            SELECT id FROM anomalies WHERE kind = 'unknown-card' AND created_at_ms < @cutoff ORDER BY id LIMIT @n)`,
  },
  {
    cls: 'anomalies',
    table: 'anomalies',
    sql: `DELETE FROM anomalies WHERE id IN (
            SELECT id FROM anomalies WHERE kind != 'unknown-card' AND created_at_ms < @cutoff ORDER BY id LIMIT @n)`,
  },
  {
    cls: 'visits',
    table: 'visits',
    sql: `DELETE FROM visits WHERE rowid IN (
            SELECT v.rowid FROM visits v
            WHERE v.state = 'closed' AND v.updated_at_ms < @cutoff
              AND COALESCE(v.ended_at_ms, v.started_at_ms, 0) < @cutoff
              AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.visit_id = v.visit_id AND o.state != 'delivered')
            LIMIT @n)`,
  },
  {
    cls: 'audit',
    table: 'visit_audit',
    sql: `DELETE FROM visit_audit WHERE id IN (SELECT id FROM visit_audit WHERE at_ms < @cutoff ORDER BY id LIMIT @n)`,
  },
  {
    cls: 'audit',
    table: 'audit_log',
    sql: `DELETE FROM audit_log WHERE seq IN (SELECT seq FROM audit_log WHERE at_ms < @cutoff ORDER BY seq LIMIT @n)`,
    appendOnly: true,
  },
];

/** `only`: the tables to prune (PostgreSQL mode prunes the instance's own SQLite audit_log only). */
export function createPruner(db: Db, settings: RetentionPeriods, only?: readonly string[]): Pruner {
  const wanted = (s: Step) =>
    daysOf(settings, s.cls) !== 'keep' && hasTable(db, s.table) && (!only || only.includes(s.table));
  const steps = STEPS.filter(wanted).map((s) => ({
    ...s,
    stmt: db.prepare(s.sql),
    days: daysOf(settings, s.cls) as number,
  }));
  const n = settings.batchRows;
  const batch = (s: (typeof steps)[number], nowMs: number): number => {
    const params = {
      cutoff: nowMs - s.days * DAY_MS,
      n,
      ...(s.table === 'events' ? { anchorKey: ANCHOR_SCAN_KEY } : {}),
    };
    return db.transaction(() =>
      s.appendOnly
        ? withoutTriggers(db, s.table, () => s.stmt.run(params).changes)
        : s.stmt.run(params).changes,
    )();
  };
  /** Index of the step a pass continues with: a pass walks every step once, resuming where the budget ran out. */
  let next = 0;
  const step = (nowMs: number, maxBatches: number) => {
    const deleted = zeroCounts();
    let batches = 0;
    while (next < steps.length) {
      const s = steps[next]!;
      if (batches >= maxBatches) return { deleted, more: true };
      const k = batch(s, nowMs);
      batches++;
      deleted[s.cls] += k;
      if (k < n) next++;
    }
    next = 0;
    return { deleted, more: false };
  };
  return {
    step,
    isOpen: () => db.open,
    runAll(nowMs, maxSteps = 100_000) {
      const total = zeroCounts();
      for (let i = 0; i < maxSteps; i++) {
        const r = step(nowMs, 50);
        for (const c of RETENTION_CLASSES) total[c] += r.deleted[c];
        if (!r.more) break;
      }
      return total;
    },
  };
}

// ------------------------------------------------------------------------------------ the erasure port

/** Erasure in this SQLite file (port ../retention.ts `LocalErasure`). */
export class SqliteErasure implements LocalErasure {
  constructor(private readonly db: Db) {}

  erase(req: EraseRequest, visitsDays: number | 'keep'): EraseResult {
    return eraseSubject(this.db, { visitsDays }, req);
  }

  scanForRef(ref: string): Record<string, number> {
    return scanForRef(this.db, ref);
  }

  replaceRefs(pairs: ReadonlyArray<readonly [string, string]>): Record<string, number> {
    return replaceRefs(this.db, pairs);
  }

  findByDigest(digest: (ref: string) => string, wanted: ReadonlySet<string>): Map<string, string> {
    return findByDigest(this.db, digest, wanted);
  }

  // erasure_log_applied (SQLite migration erasure-applied-001): this file's mark in PostgreSQL's erasure_log
  erasureMark(): number {
    return (this.db.prepare('SELECT upto FROM erasure_log_applied').pluck().get() as number | undefined) ?? 0;
  }

  applyErasures(pairs: ReadonlyArray<readonly [string, string]>, upto: number): void {
    const { db } = this;
    db.transaction(() => {
      if (pairs.length) replaceRefs(db, pairs);
      db.prepare(
        'INSERT INTO erasure_log_applied (one, upto) VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET upto = excluded.upto',
      ).run(upto);
    })();
  }

  isOpen(): boolean {
    return this.db.open;
  }
}

/** An instance's own file in PostgreSQL mode: its audit_log pruned with `settings`, erasures applied to it. */
export const localRetention = (db: Db, settings: RetentionPeriods): LocalRetention => ({
  auditPruner: createPruner(db, settings, ['audit_log']),
  erasure: new SqliteErasure(db),
});
