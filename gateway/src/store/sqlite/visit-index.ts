import type { Clock } from '../../../../protocol/index.js';
import { MAX_OPEN_SCAN_MS } from '../rows.js';
import type { Db } from './db.js';
import { statementCache } from './stmt-cache.js';

/**
 * How far behind the gateway's clock an event's time may be and still be answered from memory. The
 * index keeps visits that started after `now - MAX_OPEN_SCAN_MS - LATE_MS`; a query reaching further
 * back (a reader that was offline for days) goes to SQLite.
 */
const LATE_MS = 2 * 24 * 3_600_000;
/** The horizon moves (and old entries are dropped) at most this often. */
const PRUNE_STEP_MS = 3_600_000;
/**
 * Visits the index holds at most (staff and card entries together, about 270 bytes each; open visits are
 * kept whatever the count). Past it, the closed visits that ended first are dropped and queries older than
 * their end go to SQLite: memory stays bounded however fast visits come, and live traffic (whose queries
 * are about the last minutes) is still answered from memory.
 */
export const DEFAULT_MAX_VISITS = 50_000;
/** A sweep over the budget drops this share of the closed entries (the oldest ends), so sweeps are rare. */
const SWEEP_SHARE = 0.25;

/** What the index needs of a visit row, as SQLite holds it after a write. */
export interface IndexedRow {
  readerId: string;
  visitId: string;
  staffRef: string | null;
  cardRef: string;
  startedAtMs: number | null;
  endedAtMs: number | null;
  state: 'open' | 'closed';
}

interface Entry {
  readerId: string;
  visitId: string;
  startedAtMs: number;
  endedAtMs: number | null;
  open: boolean;
}

export interface VisitLocation {
  readerId: string;
  visitId: string;
}

/** Entries of one staff member (or card), per reader, sorted by (startedAtMs, visitId). */
type Lists = Map<string, Entry[]>;

/** The order of the SQL's `ORDER BY started_at_ms, reader_id, visit_id` (ids are ASCII). */
const before = (a: Entry, b: Entry): boolean =>
  a.startedAtMs !== b.startedAtMs
    ? a.startedAtMs < b.startedAtMs
    : a.readerId !== b.readerId
      ? a.readerId < b.readerId
      : a.visitId < b.visitId;

/** Index of the first entry not before `e` (binary search). */
function lowerBound(list: Entry[], e: Entry): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(list[mid] as Entry, e)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the first entry that started after `atMs`. */
function upperBoundStart(list: Entry[], atMs: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((list[mid] as Entry).startedAtMs <= atMs) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const vkey = (readerId: string, visitId: string) => `${readerId}\n${visitId}`;

/** One dimension of the index: by staff_ref or by card_ref. */
class KeyIndex {
  /** Keys loaded from SQLite (lazily, on first query); only those are kept up to date. */
  readonly loaded = new Map<string, Lists>();
  /** Where each indexed visit sits: its key and entry. */
  readonly where = new Map<string, { key: string; entry: Entry }>();

  constructor(readonly column: 'staff_ref' | 'card_ref') {}

  clear(): void {
    this.loaded.clear();
    this.where.clear();
  }

  insert(key: string, e: Entry): void {
    const lists = this.loaded.get(key);
    if (!lists) return;
    let list = lists.get(e.readerId);
    if (!list) lists.set(e.readerId, (list = []));
    const last = list[list.length - 1];
    if (!last || before(last, e)) list.push(e);
    else list.splice(lowerBound(list, e), 0, e);
    this.where.set(vkey(e.readerId, e.visitId), { key, entry: e });
  }

  remove(readerId: string, visitId: string): void {
    const k = vkey(readerId, visitId);
    const at = this.where.get(k);
    if (!at) return;
    this.where.delete(k);
    const list = this.loaded.get(at.key)?.get(readerId);
    if (!list) return;
    const i = lowerBound(list, at.entry);
    if (list[i] === at.entry) list.splice(i, 1);
  }

  /**
   * Drops entries that started before `horizon`, and closed entries that ended before `endedBefore` (they
   * cannot cover any time the index still answers for); a key left with nothing is forgotten (it reloads
   * from SQLite on its next query).
   */
  prune(horizon: number, endedBefore: number): void {
    for (const [key, lists] of this.loaded) {
      for (const [readerId, list] of lists) {
        const kept = list.filter((e) => {
          const drop =
            e.startedAtMs < horizon || (!e.open && (e.endedAtMs ?? Number.NEGATIVE_INFINITY) < endedBefore);
          if (drop) this.where.delete(vkey(e.readerId, e.visitId));
          return !drop;
        });
        if (kept.length === 0) lists.delete(readerId);
        else if (kept.length !== list.length) lists.set(readerId, kept);
      }
      if (lists.size === 0) this.loaded.delete(key);
    }
  }

  /** The end times of the closed entries. */
  closedEnds(out: number[]): void {
    for (const { entry } of this.where.values())
      if (!entry.open) out.push(entry.endedAtMs ?? Number.NEGATIVE_INFINITY);
  }
}

/** Distinct temp-table names per index instance (temp tables live per connection). */
let instances = 0;

/**
 * The visits engine in its worker thread (visits/engine-thread.ts) and the gateway's thread share this
 * counter (a SharedArrayBuffer): the gateway thread's index ('writer') adds one for every visit write it
 * mirrors or is told about, the engine's ('engine') resets when it moved.
 */
export interface SharedWrites {
  gen: Int32Array;
  role: 'writer' | 'engine';
}

/**
 * In-memory index of recent visits per staff member and per card, for the "same staff member at
 * another home at the same time" check (visits/repo.ts VisitRepo.overlappingElsewhere), which otherwise
 * walks the staff member's recent history in SQLite on every start. It is the SQLite adapter's cache (its
 * answers mirror `SqliteVisitStore`'s overlappingElsewhere query), made by `SqliteVisitStore.visitIndex`.
 *
 * It is a cache of the `visits` table, never a source of truth:
 *  - a key (staff or card) is loaded from SQLite on its first query, inside the caller's transaction
 *    (so it sees that transaction's writes); a restart starts empty, i.e. rebuilds from SQLite;
 *  - VisitRepo.upsert, the one writer of visit rows, mirrors each write here (`written`). A module
 *    that changes visit rows with its own SQL (the card re-attribution sets staff_ref) calls
 *    `invalidate()` afterwards;
 *  - rollbacks: each mirrored write also bumps a counter in a TEMP table, which SQLite rolls back with
 *    the transaction or savepoint. Before answering, the index compares that counter with the number of
 *    writes it mirrored: a smaller counter means some were rolled back, and the index drops everything
 *    (keys reload on their next query). `PRAGMA data_version` does the same for commits by other
 *    connections (a CLI process, say).
 * (SQL triggers would catch every writer by themselves, but any trigger on `visits` measured ~3.5 µs per
 * write, more than the index saves on a start; the explicit counter costs ~0.5 µs.)
 * Only visits that started after the horizon are held; queries reaching further back return
 * `undefined` and the caller asks SQLite.
 */
export class VisitIndex {
  private readonly staff = new KeyIndex('staff_ref');
  private readonly card = new KeyIndex('card_ref');
  private readonly q: ReturnType<typeof statementCache>;
  private readonly clock: Clock;
  private readonly epochSql: string;
  private readonly bumpSql: string;
  private horizon = Number.NEGATIVE_INFINITY;
  /**
   * Closed visits that ended before this are not held (queries about an earlier time go to SQLite): the
   * horizon's answerable limit (`horizon + MAX_OPEN_SCAN_MS`), or later once the budget made a sweep.
   */
  private endedHorizon = Number.NEGATIVE_INFINITY;
  private readonly maxVisits: number;
  /** The next sweep comes when the index holds more than this (maxVisits, or more while open visits fill it). */
  private sweepAbove: number;
  /** Writes mirrored (ever growing); SQLite's counter falls behind it when a rollback undid some. */
  private mirrored = 0;
  /** `PRAGMA data_version` when the index last matched SQLite. */
  private dataVersion = -1;
  /** Loads and resets since start (tests, diagnostics). */
  readonly stats = { loads: 0, resets: 0, sweeps: 0 };

  /** With the engine in its own thread: a counter of visit writes made through the other connection. */
  private readonly shared: SharedWrites | null;
  /** `shared.gen` when the index last matched SQLite (role 'engine'). */
  private othersGen = 0;

  constructor(opts: { db: Db; clock: Clock; shared?: SharedWrites; maxVisits?: number }) {
    this.q = statementCache(opts.db);
    this.clock = opts.clock;
    this.maxVisits = opts.maxVisits ?? DEFAULT_MAX_VISITS;
    if (!(this.maxVisits >= 1))
      throw new Error(`visit index: maxVisits must be at least 1, got ${this.maxVisits}`);
    this.sweepAbove = this.maxVisits;
    this.shared = opts.shared ?? null;
    const epoch = `vt_visit_index_epoch_${++instances}`;
    opts.db.exec(`
      CREATE TEMP TABLE IF NOT EXISTS ${epoch} (n INTEGER NOT NULL);
      DELETE FROM temp.${epoch};
      INSERT INTO temp.${epoch} (n) VALUES (0);
    `);
    this.epochSql = `SELECT n FROM temp.${epoch}`;
    this.bumpSql = `UPDATE temp.${epoch} SET n = n + 1`;
    this.advanceHorizon();
    this.sync();
  }

  /** What the index holds now: keys loaded and visits indexed, by staff member and by card (metrics, tests). */
  size(): { staffKeys: number; staffVisits: number; cardKeys: number; cardVisits: number } {
    return {
      staffKeys: this.staff.loaded.size,
      staffVisits: this.staff.where.size,
      cardKeys: this.card.loaded.size,
      cardVisits: this.card.where.size,
    };
  }

  /** Forgets everything; keys reload from SQLite on their next query. */
  reset(): void {
    this.staff.clear();
    this.card.clear();
    this.stats.resets++;
  }

  /**
   * For a writer that changed visit rows with its own SQL: forget everything, and count it as a write
   * (so that if the caller's transaction rolls back after a reload, the index resets again).
   */
  invalidate(): void {
    this.reset();
    this.bump();
  }

  /** VisitRepo.upsert wrote this row (in the current transaction, if any). */
  written(r: IndexedRow): void {
    this.bump();
    this.advanceHorizon();
    this.applyTo(this.staff, r.staffRef, r);
    // card_ref never changes once a visit row exists: keep the key it was indexed under.
    const known = this.card.where.get(vkey(r.readerId, r.visitId));
    this.applyTo(this.card, known?.key ?? r.cardRef, r);
  }

  private bump(): void {
    this.mirrored++;
    this.q(this.bumpSql).run();
    if (this.shared?.role === 'writer') Atomics.add(this.shared.gen, 0, 1);
  }

  /**
   * Resets when SQLite rolled back a mirrored write or another connection committed. The engine's thread
   * (shared role 'engine') does not look at `PRAGMA data_version`, which every ingest commit of the
   * gateway's thread changes: it resets when that thread's writers of visit rows (this index in role
   * 'writer': VisitRepo.upsert, `invalidate()`) counted a write since.
   */
  private sync(): void {
    const epoch = this.q(this.epochSql).pluck().get() as number;
    if (this.shared?.role === 'engine') {
      const gen = Atomics.load(this.shared.gen, 0);
      if (epoch !== this.mirrored || gen !== this.othersGen) {
        this.reset();
        this.mirrored = epoch;
        this.othersGen = gen;
      }
      return;
    }
    const dataVersion = this.q('PRAGMA data_version').pluck().get() as number;
    if (epoch !== this.mirrored || dataVersion !== this.dataVersion) {
      if (this.dataVersion !== -1) this.reset();
      this.mirrored = epoch;
      this.dataVersion = dataVersion;
    }
  }

  private applyTo(idx: KeyIndex, key: string | null, r: IndexedRow): void {
    const at = idx.where.get(vkey(r.readerId, r.visitId));
    const keep =
      key !== null &&
      r.startedAtMs !== null &&
      r.startedAtMs >= this.horizon &&
      (r.state === 'open' || (r.endedAtMs !== null && r.endedAtMs >= this.endedHorizon));
    if (at && keep && at.key === key && at.entry.startedAtMs === r.startedAtMs) {
      at.entry.endedAtMs = r.endedAtMs;
      at.entry.open = r.state === 'open';
      return;
    }
    if (at) idx.remove(r.readerId, r.visitId);
    if (keep && r.startedAtMs !== null && idx.loaded.has(key)) {
      idx.insert(key, {
        readerId: r.readerId,
        visitId: r.visitId,
        startedAtMs: r.startedAtMs,
        endedAtMs: r.endedAtMs,
        open: r.state === 'open',
      });
      this.overBudget();
    }
  }

  /**
   * Over the budget: the closed entries that ended first (a quarter of them) are dropped, and the index
   * answers only from their last end on. Open entries stay (they can cover any later time).
   */
  private overBudget(): void {
    if (this.held() <= this.sweepAbove) return;
    const ends: number[] = [];
    this.staff.closedEnds(ends);
    this.card.closedEnds(ends);
    if (ends.length > 0) {
      ends.sort((a, b) => a - b);
      const cut = ends[Math.min(ends.length - 1, Math.floor(ends.length * SWEEP_SHARE))] as number;
      // everything that ended before `cut`, and everything that ended at it (ties), goes
      this.endedHorizon = Math.max(this.endedHorizon, cut + 1);
      this.staff.prune(this.horizon, this.endedHorizon);
      this.card.prune(this.horizon, this.endedHorizon);
      this.stats.sweeps++;
    }
    // mostly open visits (nothing much to drop): the next sweep after another quarter of the budget
    this.sweepAbove = Math.max(this.maxVisits, this.held() + Math.ceil(this.maxVisits * SWEEP_SHARE));
  }

  private held(): number {
    return this.staff.where.size + this.card.where.size;
  }

  /**
   * The visit of `key` (a staff member or a card) at another reader covering `atMs` that started last
   * (ties: the greater reader id, then visit id), with the same meaning as
   * VisitRepo.overlappingElsewhereSql; `undefined` when `atMs` is older than the index holds.
   */
  overlappingElsewhere(q: {
    by: 'staff' | 'card';
    key: string;
    readerId: string;
    atMs: number;
  }): VisitLocation | null | undefined {
    this.advanceHorizon();
    const from = q.atMs - MAX_OPEN_SCAN_MS;
    if (from < this.horizon || q.atMs < this.endedHorizon) return undefined;
    this.sync();
    const lists = this.lists(q.by === 'staff' ? this.staff : this.card, q.key);
    // loading the key may have made a sweep that dropped visits ending after `atMs`
    if (q.atMs < this.endedHorizon) return undefined;
    let best: Entry | null = null;
    for (const [readerId, list] of lists) {
      if (readerId === q.readerId) continue;
      for (let i = upperBoundStart(list, q.atMs) - 1; i >= 0; i--) {
        const e = list[i] as Entry;
        if (e.startedAtMs < from) break;
        if (e.open || (e.endedAtMs !== null && e.endedAtMs > q.atMs)) {
          if (!best || before(best, e)) best = e;
          break; // the latest match at this reader
        }
      }
    }
    return best ? { readerId: best.readerId, visitId: best.visitId } : null;
  }

  private lists(idx: KeyIndex, key: string): Lists {
    const have = idx.loaded.get(key);
    if (have) return have;
    const lists: Lists = new Map();
    idx.loaded.set(key, lists);
    this.stats.loads++;
    const rows = this.q(
      `SELECT reader_id, visit_id, started_at_ms, ended_at_ms, state FROM visits
         WHERE ${idx.column} = ? AND started_at_ms >= ? AND (state = 'open' OR ended_at_ms >= ?)
         ORDER BY started_at_ms, reader_id, visit_id`,
    ).all(key, this.horizon, this.endedHorizon) as Array<{
      reader_id: string;
      visit_id: string;
      started_at_ms: number;
      ended_at_ms: number | null;
      state: string;
    }>;
    for (const r of rows) {
      idx.insert(key, {
        readerId: r.reader_id,
        visitId: r.visit_id,
        startedAtMs: r.started_at_ms,
        endedAtMs: r.ended_at_ms,
        open: r.state === 'open',
      });
    }
    this.overBudget();
    // the sweep may have dropped this very key (all its visits ended before the new limit): it answers empty
    if (!idx.loaded.has(key)) return new Map();
    return lists;
  }

  /** Moves the horizon with the clock (never back, in steps) and drops what fell behind it. */
  private advanceHorizon(): void {
    const h = this.clock.now() - MAX_OPEN_SCAN_MS - LATE_MS;
    if (h < this.horizon + PRUNE_STEP_MS) return;
    this.horizon = h;
    this.endedHorizon = Math.max(this.endedHorizon, h + MAX_OPEN_SCAN_MS);
    this.staff.prune(h, this.endedHorizon);
    this.card.prune(h, this.endedHorizon);
  }
}
