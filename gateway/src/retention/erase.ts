import { randomBytes } from 'node:crypto';
import type { Db } from '../store/sqlite/db.js';
import type { RetentionSettings } from './policy.js';
import { hasTable, withoutTriggers } from './sql.js';

const DAY_MS = 86_400_000;

export type SubjectKind = 'client' | 'staff';

export interface EraseRequest {
  kind: SubjectKind;
  ref: string;
  /** Erase even where records-law retention applies (CLI --force-records-law, API "forceRecordsLaw"). */
  force: boolean;
  nowMs: number;
}

export type EraseResult =
  | {
      ok: true;
      /** The random pseudonym that replaced the reference (and `<pseudonym>-card-N` for a staff member's cards). */
      pseudonym: string;
      /** Rows changed per table.column. */
      changed: Record<string, number>;
      cards: number;
    }
  | { ok: false; code: 'not-found' | 'records-law'; reason: string };

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
export function eraseSubject(db: Db, settings: RetentionSettings, req: EraseRequest): EraseResult {
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
