import { VisitEvent } from '../../../../protocol/index.js';
import type {
  Anchor,
  AnchorScanRow,
  AnomalyListRow,
  AnomalyQuery,
  AnomalyRecord,
  CardStatus,
  StoredEventRow,
  TurnHint,
  VisitAuditRecord,
  VisitQuery,
  VisitRow,
  VisitStore,
  VisitTx,
} from '../ports.js';
import {
  ANCHOR_SCAN_KEY,
  cardStatusOf,
  clockOffsetKey,
  MAX_OPEN_SCAN_MS,
  rawToVisit,
  readerScanKey,
  syncedOffsetKey,
  type RawVisit,
} from '../rows.js';
import { inTransaction, LOCK_NS, lockReaders, type PgClient, type PgPool } from './db.js';

/** Runs per turn before giving up (each run batches every read the previous run missed). */
const MAX_ROUNDS = 50;

const toVisit = rawToVisit;

const vkey = (readerId: string, visitId: string) => `${readerId}\n${visitId}`;
/** Byte order of ASCII ids, as SQLite's BINARY collation and PostgreSQL's "C". */
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * One kind of read of the turn's view, fetched in batches: every argument a run missed is fetched in
 * ONE statement (`= ANY`, or `unnest` joined to the table), whatever the number of events.
 */
interface Loader<A, V> {
  kind: string;
  key(a: A): string;
  /** The answer while the value is not fetched yet (the run goes on with it and is then discarded). */
  dflt: V;
  /** Values by `key(a)`; an absent key means `dflt`. */
  load(c: PgClient, args: A[]): Promise<Map<string, V>>;
}

interface Window {
  by: 'staff_ref' | 'card_ref';
  who: string;
  readerId: string;
  /** started_at_ms in [lo, hi] */
  lo: number;
  hi: number;
  /** and (open, or ended after this); null: any */
  endedAfter: number | null;
}

interface CardRow {
  staff_ref: string;
  revoked_at: number | null;
  valid_from_ms: number | null;
  valid_to_ms: number | null;
}

const visitRows = async (c: PgClient, sql: string, p: unknown[]) =>
  (await c.query<RawVisit & { q?: number }>(sql, p)).rows;

const byReader = (readerIds: string[], rows: RawVisit[]): Map<string, VisitRow[]> => {
  const out = new Map<string, VisitRow[]>(readerIds.map((r) => [r, []]));
  for (const r of rows) out.get(r.reader_id)?.push(toVisit(r));
  return out;
};

type EventsArg = { r: string; after: number; upto: number; limit: number };
const eventsKey = (a: EventsArg) => `${a.r}\n${a.after}\n${a.upto}\n${a.limit}`;
const windowKey = (w: Window) => `${w.by}\n${w.who}\n${w.readerId}\n${w.lo}\n${w.hi}\n${w.endedAfter ?? ''}`;
const sinceKey = (a: { r: string; ms: number }) => `${a.r}\n${a.ms}`;
type ScanArg = { r: string; after: number; limit: number };
const scanKey = (a: ScanArg) => `${a.r}\n${a.after}\n${a.limit}`;

const L = {
  cursor: {
    kind: 'cursor',
    key: (r: string) => r,
    dflt: 0,
    load: async (c: PgClient, ids: string[]) =>
      new Map(
        (
          await c.query<{ r: string; v: number }>(
            'SELECT reader_id AS r, processed_upto AS v FROM visit_cursor WHERE reader_id = ANY($1)',
            [ids],
          )
        ).rows.map((x) => [x.r, x.v]),
      ),
  } satisfies Loader<string, number>,
  upto: {
    kind: 'upto',
    key: (r: string) => r,
    dflt: 0,
    load: async (c: PgClient, ids: string[]) =>
      new Map(
        (
          await c.query<{ r: string; v: number }>(
            'SELECT reader_id AS r, contiguous_upto AS v FROM reader_seq WHERE reader_id = ANY($1)',
            [ids],
          )
        ).rows.map((x) => [x.r, x.v]),
      ),
  } satisfies Loader<string, number>,
  events: {
    kind: 'events',
    key: eventsKey,
    dflt: [] as StoredEventRow[],
    load: async (c: PgClient, args: Array<{ r: string; after: number; upto: number; limit: number }>) => {
      const rows = (
        await c.query<StoredEventRow & { q: number }>(
          `SELECT q.i AS q, e.seq, e.event_json, e.received_at_ms
             FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::int[]) WITH ORDINALITY AS q(r, a, u, l, i)
             CROSS JOIN LATERAL (SELECT seq, event_json, received_at_ms FROM events
                WHERE reader_id = q.r AND seq > q.a AND seq <= q.u ORDER BY seq LIMIT q.l) e
            ORDER BY q.i, e.seq`,
          [args.map((a) => a.r), args.map((a) => a.after), args.map((a) => a.upto), args.map((a) => a.limit)],
        )
      ).rows;
      const out = new Map<string, StoredEventRow[]>();
      for (const x of rows) {
        const k = eventsKey(args[x.q - 1] as (typeof args)[number]);
        let list = out.get(k);
        if (!list) out.set(k, (list = []));
        list.push({ seq: x.seq, event_json: x.event_json, received_at_ms: x.received_at_ms });
      }
      return out;
    },
  } satisfies Loader<{ r: string; after: number; upto: number; limit: number }, StoredEventRow[]>,
  clients: {
    kind: 'clients',
    key: (r: string) => r,
    dflt: { history: [], current: null } as {
      history: Array<{ client_ref: string | null; from_ms: number }>;
      current: string | null;
    },
    load: async (c: PgClient, ids: string[]) => {
      const out = new Map<
        string,
        { history: Array<{ client_ref: string | null; from_ms: number }>; current: string | null }
      >(ids.map((r) => [r, { history: [], current: null }]));
      const h = await c.query<{ r: string; client_ref: string | null; from_ms: number }>(
        `SELECT reader_id AS r, client_ref, from_ms FROM reader_client_history WHERE reader_id = ANY($1)
          ORDER BY reader_id, from_ms`,
        [ids],
      );
      for (const x of h.rows) out.get(x.r)?.history.push({ client_ref: x.client_ref, from_ms: x.from_ms });
      const cur = await c.query<{ r: string; client_ref: string | null }>(
        'SELECT reader_id AS r, client_ref FROM readers WHERE reader_id = ANY($1)',
        [ids],
      );
      for (const x of cur.rows) {
        const o = out.get(x.r);
        if (o) o.current = x.client_ref;
      }
      return out;
    },
  },
  visit: {
    kind: 'visit',
    key: (a: { r: string; v: string }) => vkey(a.r, a.v),
    dflt: null as VisitRow | null,
    load: async (c: PgClient, args: Array<{ r: string; v: string }>) =>
      new Map(
        (
          await visitRows(
            c,
            `SELECT v.* FROM unnest($1::text[], $2::text[]) AS q(r, v)
               JOIN visits v ON v.reader_id = q.r AND v.visit_id = q.v`,
            [args.map((a) => a.r), args.map((a) => a.v)],
          )
        ).map((x) => [vkey(x.reader_id, x.visit_id), toVisit(x)]),
      ),
  } satisfies Loader<{ r: string; v: string }, VisitRow | null>,
  byId: {
    kind: 'by-id',
    key: (v: string) => v,
    dflt: [] as VisitRow[],
    load: async (c: PgClient, ids: string[]) => {
      const out = new Map<string, VisitRow[]>(ids.map((v) => [v, []]));
      for (const x of await visitRows(c, 'SELECT * FROM visits WHERE visit_id = ANY($1)', [ids])) {
        out.get(x.visit_id)?.push(toVisit(x));
      }
      return out;
    },
  } satisfies Loader<string, VisitRow[]>,
  open: {
    kind: 'open',
    key: (r: string) => r,
    dflt: [] as VisitRow[],
    load: async (c: PgClient, ids: string[]) =>
      byReader(
        ids,
        await visitRows(c, `SELECT * FROM visits WHERE reader_id = ANY($1) AND state = 'open'`, [ids]),
      ),
  } satisfies Loader<string, VisitRow[]>,
  window: {
    kind: 'window',
    key: windowKey,
    dflt: [] as VisitRow[],
    load: async (c: PgClient, ws: Window[]) => {
      const rows = await visitRows(
        c,
        `SELECT q.i AS q, v.* FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
             WITH ORDINALITY AS q(col, who, r, lo, hi, ea, i)
           JOIN visits v ON ((q.col = 'staff_ref' AND v.staff_ref = q.who) OR (q.col = 'card_ref' AND v.card_ref = q.who))
             AND v.reader_id <> q.r AND v.started_at_ms >= q.lo AND v.started_at_ms <= q.hi
             AND (q.ea IS NULL OR v.state = 'open' OR v.ended_at_ms > q.ea)`,
        [
          ws.map((w) => w.by),
          ws.map((w) => w.who),
          ws.map((w) => w.readerId),
          ws.map((w) => w.lo),
          ws.map((w) => w.hi),
          ws.map((w) => w.endedAfter),
        ],
      );
      const out = new Map<string, VisitRow[]>(ws.map((w) => [windowKey(w), []]));
      for (const x of rows) out.get(windowKey(ws[(x.q ?? 0) - 1] as Window))?.push(toVisit(x));
      return out;
    },
  } satisfies Loader<Window, VisitRow[]>,
  since: {
    kind: 'since',
    key: sinceKey,
    dflt: [] as VisitRow[],
    load: async (c: PgClient, args: Array<{ r: string; ms: number }>) => {
      const rows = await visitRows(
        c,
        `SELECT q.i AS q, v.* FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS q(r, ms, i)
           JOIN visits v ON v.reader_id = q.r AND (v.started_at_ms >= q.ms OR v.ended_at_ms >= q.ms)`,
        [args.map((a) => a.r), args.map((a) => a.ms)],
      );
      const out = new Map<string, VisitRow[]>(args.map((a) => [sinceKey(a), []]));
      for (const x of rows) {
        out.get(sinceKey(args[(x.q ?? 0) - 1] as { r: string; ms: number }))?.push(toVisit(x));
      }
      return out;
    },
  } satisfies Loader<{ r: string; ms: number }, VisitRow[]>,
  anomaly: {
    kind: 'anomaly',
    key: (k: string) => k,
    dflt: false,
    load: async (c: PgClient, ks: string[]) =>
      new Map(
        (
          await c.query<{ k: string }>(
            'SELECT idempotency_key AS k FROM anomalies WHERE idempotency_key = ANY($1)',
            [ks],
          )
        ).rows.map((x) => [x.k, true]),
      ),
  } satisfies Loader<string, boolean>,
  outbox: {
    kind: 'outbox',
    key: (k: string) => k,
    dflt: false,
    load: async (c: PgClient, ks: string[]) =>
      new Map(
        (
          await c.query<{ k: string }>(
            'SELECT idempotency_key AS k FROM outbox WHERE idempotency_key = ANY($1)',
            [ks],
          )
        ).rows.map((x) => [x.k, true]),
      ),
  } satisfies Loader<string, boolean>,
  card: {
    kind: 'card',
    key: (k: string) => k,
    dflt: null as CardRow | null,
    load: async (c: PgClient, refs: string[]) =>
      new Map(
        (
          await c.query<CardRow & { card_ref: string }>(
            `SELECT card_ref, staff_ref, revoked_at, valid_from_ms, valid_to_ms FROM cards WHERE card_ref = ANY($1)`,
            [refs],
          )
        ).rows.map((x) => [x.card_ref, x]),
      ),
  } satisfies Loader<string, CardRow | null>,
  anchor: {
    kind: 'anchor',
    key: (a: { r: string; b: string }) => vkey(a.r, a.b),
    dflt: null as Anchor | null,
    load: async (c: PgClient, args: Array<{ r: string; b: string }>) =>
      new Map(
        (
          await c.query<{ r: string; b: string; offset_ms: number; exact: number }>(
            `SELECT t.reader_id AS r, t.boot_id AS b, t.offset_ms, t.exact
               FROM unnest($1::text[], $2::text[]) AS q(r, b)
               JOIN time_anchors t ON t.reader_id = q.r AND t.boot_id = q.b`,
            [args.map((a) => a.r), args.map((a) => a.b)],
          )
        ).rows.map((x) => [vkey(x.r, x.b), { offsetMs: x.offset_ms, exact: x.exact === 1 }]),
      ),
  } satisfies Loader<{ r: string; b: string }, Anchor | null>,
  meta: {
    kind: 'meta',
    key: (k: string) => k,
    dflt: null as number | null,
    load: async (c: PgClient, ks: string[]) =>
      new Map(
        (
          await c.query<{ k: string; v: number }>(
            'SELECT key AS k, value AS v FROM visit_meta WHERE key = ANY($1)',
            [ks],
          )
        ).rows.map((x) => [x.k, x.v]),
      ),
  } satisfies Loader<string, number | null>,
  scanRows: {
    kind: 'scan-rows',
    key: scanKey,
    dflt: [] as AnchorScanRow[],
    load: async (c: PgClient, args: ScanArg[]) => {
      const rows = (
        await c.query<AnchorScanRow & { q: number }>(
          `SELECT q.i AS q, e.id, e.reader_id, e.event_json, e.sent_at_json, e.received_at_ms
             FROM unnest($1::text[], $2::bigint[], $3::int[]) WITH ORDINALITY AS q(r, a, l, i)
             CROSS JOIN LATERAL (SELECT id, reader_id, event_json, sent_at_json, received_at_ms FROM events
                WHERE reader_id = q.r AND id > q.a ORDER BY id LIMIT q.l) e
            ORDER BY q.i, e.id`,
          [args.map((a) => a.r), args.map((a) => a.after), args.map((a) => a.limit)],
        )
      ).rows;
      const out = new Map<string, AnchorScanRow[]>();
      for (const x of rows) {
        const k = scanKey(args[x.q - 1] as ScanArg);
        let list = out.get(k);
        if (!list) out.set(k, (list = []));
        const { q: _q, ...row } = x;
        list.push(row);
      }
      return out;
    },
  } satisfies Loader<ScanArg, AnchorScanRow[]>,
};

type AnyLoader = Loader<unknown, unknown>;

/** The reads of a turn: fetched values by kind and key, and the arguments the current run missed. */
class TurnCache {
  private readonly values = new Map<string, Map<string, unknown>>();
  missed = new Map<string, { l: AnyLoader; args: Map<string, unknown> }>();
  /** Statements run to fetch (measurement, tests). */
  statements = 0;

  get<A, V>(l: Loader<A, V>, a: A): V {
    const k = l.key(a);
    const have = this.values.get(l.kind);
    if (have?.has(k)) return have.get(k) as V;
    let m = this.missed.get(l.kind);
    if (!m) {
      m = { l: l as unknown as AnyLoader, args: new Map<string, unknown>() };
      this.missed.set(l.kind, m);
    }
    m.args.set(k, a);
    return l.dflt;
  }

  /** Fetches the given arguments of one loader in one statement (skips those already fetched). */
  async fetch<A, V>(c: PgClient, l: Loader<A, V>, args: Iterable<A>): Promise<void> {
    let have = this.values.get(l.kind);
    if (!have) {
      have = new Map<string, unknown>();
      this.values.set(l.kind, have);
    }
    const todo = new Map<string, A>();
    for (const a of args) if (!have.has(l.key(a))) todo.set(l.key(a), a);
    if (todo.size === 0) return;
    this.statements++;
    const got = await l.load(c, [...todo.values()]);
    for (const k of todo.keys()) have.set(k, got.has(k) ? got.get(k) : l.dflt);
  }

  /** Fetches everything the last run missed, one statement per kind. */
  async fetchMissed(c: PgClient): Promise<void> {
    const missed = this.missed;
    this.missed = new Map();
    for (const { l, args } of missed.values()) await this.fetch(c, l, args.values());
  }
}

/** What one run of a turn wrote (applied to the database only when the run completes without a miss). */
interface Writes {
  cursors: Map<string, number>;
  visits: Map<string, VisitRow>;
  anomalies: AnomalyRecord[];
  anomalyKeys: Set<string>;
  audits: VisitAuditRecord[];
  outbox: Array<{ event: VisitEvent; nowMs: number }>;
  outboxKeys: Set<string>;
  anchors: Map<string, { readerId: string; bootId: string; a: Anchor }>;
  /** visit_meta rows: anchor-scan marks and measured clock offsets. */
  metas: Map<string, number>;
}

const emptyWrites = (): Writes => ({
  cursors: new Map(),
  visits: new Map(),
  anomalies: [],
  anomalyKeys: new Set(),
  audits: [],
  outbox: [],
  outboxKeys: new Set(),
  anchors: new Map(),
  metas: new Map(),
});

const copyWrites = (w: Writes): Writes => ({
  cursors: new Map(w.cursors),
  visits: new Map(w.visits),
  anomalies: [...w.anomalies],
  anomalyKeys: new Set(w.anomalyKeys),
  audits: [...w.audits],
  outbox: [...w.outbox],
  outboxKeys: new Set(w.outboxKeys),
  anchors: new Map(w.anchors),
  metas: new Map(w.metas),
});

/**
 * The visits engine's tables on PostgreSQL (port: VisitStore in ../ports.ts).
 *
 * A turn is one transaction holding the advisory lock of each of its readers (taken in sorted order,
 * so instances never deadlock), so two instances that receive the same reader's events serialise and
 * the cursor makes the second a no-op. The rules are ONE synchronous implementation, so `work` runs
 * over a synchronous view answered from what this transaction fetched, overlaid with the run's own
 * writes. A read not fetched yet is recorded and answered with a neutral value (no row, 0, false), and
 * the run goes on: so one run collects every read it can see at once. The adapter then fetches all of
 * them, ONE statement per kind of read (`= ANY` / `unnest`), and runs `work` again from the start with
 * the failed run's writes discarded (a throw in a run that missed reads counts as a miss too). The
 * number of runs is the depth of the chain of dependent reads (events → card → the staff member's
 * visits elsewhere: 3 or 4), not the number of events. With a `hint`, the per-reader reads (cursor,
 * contiguous prefix, the events of the chunk, open visits, client history) are fetched before the first
 * run, one statement each for all readers of the turn. A run without a miss has its writes applied
 * with one multi-row statement per table (outbox rows in the order they were made) and the transaction
 * commits. Reads that cross readers (`overlappingElsewhere`, `startedElsewhereDuring`, `visitsById`)
 * fetch the candidate rows of their window and apply the predicate again over the overlay, so a row
 * this run changed is judged by its new content, as on SQLite.
 */
export class PgVisitStore implements VisitStore {
  /** Runs and fetch statements of the last turn (measurement). */
  lastTurn = { runs: 0, statements: 0 };
  constructor(private readonly pool: PgPool) {}

  runTurn<T>(readerIds: readonly string[] | 'all', work: (tx: VisitTx) => T, hint?: TurnHint): Promise<T> {
    return inTransaction(this.pool, async (c) => {
      if (readerIds !== 'all') await lockReaders(c, readerIds);
      const cache = new TurnCache();
      if (readerIds !== 'all' && hint?.events) await prefetch(c, cache, [...new Set(readerIds)], hint);
      for (let round = 1; round <= MAX_ROUNDS; round++) {
        let w = emptyWrites();
        const tx = this.view(
          cache,
          () => w,
          (next) => (w = next),
        );
        let out: T | undefined;
        try {
          out = work(tx);
        } catch (err) {
          if (cache.missed.size === 0) throw err;
        }
        if (cache.missed.size === 0) {
          this.lastTurn = { runs: round, statements: cache.statements };
          await applyWrites(c, w);
          return out as T;
        }
        await cache.fetchMissed(c);
      }
      throw new Error(`visits turn still missing data after ${MAX_ROUNDS} runs`);
    });
  }

  private view(cache: TurnCache, writes: () => Writes, setWrites: (w: Writes) => void): VisitTx {
    /** Fetched rows overlaid with this run's visit writes, filtered again by `keep`. */
    const merged = (fetched: VisitRow[], keep: (v: VisitRow) => boolean): VisitRow[] => {
      const w = writes().visits;
      const out = new Map<string, VisitRow>();
      for (const v of fetched) out.set(vkey(v.readerId, v.visitId), w.get(vkey(v.readerId, v.visitId)) ?? v);
      for (const [k, v] of w) out.set(k, v);
      return [...out.values()].filter(keep);
    };
    const meta = (key: string): number | null => writes().metas.get(key) ?? cache.get(L.meta, key);
    const tx: VisitTx = {
      cursor: (readerId) => writes().cursors.get(readerId) ?? cache.get(L.cursor, readerId),
      setCursor: (readerId, upto) => void writes().cursors.set(readerId, upto),
      contiguousUpto: (readerId) => cache.get(L.upto, readerId),
      events: (r, after, upto, limit) => cache.get(L.events, { r, after, upto, limit }),
      clientAt: (readerId, atMs) => {
        const h = cache.get(L.clients, readerId);
        let found: { client_ref: string | null } | undefined;
        for (const x of h.history) if (x.from_ms <= atMs) found = x;
        return found ? found.client_ref : h.current;
      },
      visit: (readerId, visitId) =>
        writes().visits.get(vkey(readerId, visitId)) ?? cache.get(L.visit, { r: readerId, v: visitId }),
      visitsById: (visitId) =>
        merged(cache.get(L.byId, visitId), (v) => v.visitId === visitId).sort((a, b) =>
          cmp(a.readerId, b.readerId),
        ),
      openAtReader: (readerId) =>
        merged(cache.get(L.open, readerId), (v) => v.readerId === readerId && v.state === 'open').sort(
          (a, b) => (a.startedAtMs ?? 0) - (b.startedAtMs ?? 0) || cmp(a.visitId, b.visitId),
        ),
      overlappingElsewhere: (x) => {
        const by = x.staffRef === null ? 'card_ref' : 'staff_ref';
        const who = x.staffRef ?? x.cardRef;
        const from = x.atMs - MAX_OPEN_SCAN_MS;
        const fetched = cache.get(L.window, {
          by,
          who,
          readerId: x.readerId,
          lo: from,
          hi: x.atMs,
          endedAfter: x.atMs,
        });
        const hits = merged(
          fetched,
          (v) =>
            (x.staffRef === null ? v.cardRef === who : v.staffRef === who) &&
            v.readerId !== x.readerId &&
            v.startedAtMs !== null &&
            v.startedAtMs <= x.atMs &&
            v.startedAtMs >= from &&
            (v.state === 'open' || (v.endedAtMs !== null && v.endedAtMs > x.atMs)),
        ).sort(
          (a, b) =>
            (b.startedAtMs ?? 0) - (a.startedAtMs ?? 0) ||
            cmp(b.readerId, a.readerId) ||
            cmp(b.visitId, a.visitId),
        );
        return hits[0] ?? null;
      },
      startedElsewhereDuring: (x) => {
        const by = x.staffRef === null ? 'card_ref' : 'staff_ref';
        const who = x.staffRef ?? x.cardRef;
        // started_at_ms is an integer: (fromMs, toMs) is [fromMs + 1, toMs - 1]
        const fetched = cache.get(L.window, {
          by,
          who,
          readerId: x.readerId,
          lo: Math.floor(x.fromMs) + 1,
          hi: Math.ceil(x.toMs) - 1,
          endedAfter: null,
        });
        const hits = merged(
          fetched,
          (v) =>
            (x.staffRef === null ? v.cardRef === who : v.staffRef === who) &&
            v.readerId !== x.readerId &&
            v.startedAtMs !== null &&
            v.startedAtMs > x.fromMs &&
            v.startedAtMs < x.toMs,
        ).sort(
          (a, b) =>
            (a.startedAtMs ?? 0) - (b.startedAtMs ?? 0) ||
            cmp(a.readerId, b.readerId) ||
            cmp(a.visitId, b.visitId),
        );
        return hits[0] ?? null;
      },
      deliveredSince: (readerId, ms) =>
        merged(
          cache.get(L.since, { r: readerId, ms }),
          (v) =>
            v.readerId === readerId &&
            ((v.startedAtMs !== null && v.startedAtMs >= ms) || (v.endedAtMs !== null && v.endedAtMs >= ms)),
        ).length > 0,
      upsert: (v) => {
        const w = writes();
        const before = w.visits.get(vkey(v.readerId, v.visitId)) ?? tx.visit(v.readerId, v.visitId);
        // a visit's card never changes: an update keeps card_ref (as the SQLite upsert does)
        w.visits.set(vkey(v.readerId, v.visitId), before ? { ...v, cardRef: before.cardRef } : { ...v });
      },
      insertAnomaly: (a) => {
        const w = writes();
        if (w.anomalyKeys.has(a.key)) return false;
        if (cache.get(L.anomaly, a.key)) return false;
        w.anomalyKeys.add(a.key);
        w.anomalies.push({ ...a });
        return true;
      },
      audit: (a) => void writes().audits.push({ ...a }),
      enqueue: (event, nowMs) => {
        const e = VisitEvent.parse(event);
        const w = writes();
        if (w.outboxKeys.has(e.idempotencyKey)) return false;
        if (cache.get(L.outbox, e.idempotencyKey)) return false;
        w.outboxKeys.add(e.idempotencyKey);
        w.outbox.push({ event: e, nowMs });
        return true;
      },
      cardStatusAt: (cardRef, atMs): CardStatus => {
        const card = cache.get(L.card, cardRef);
        if (!card) return { kind: 'unknown' };
        return cardStatusOf(
          {
            staffRef: card.staff_ref,
            revokedAtMs: card.revoked_at,
            validFromMs: card.valid_from_ms,
            validToMs: card.valid_to_ms,
          },
          atMs,
        );
      },
      anchor: (readerId, bootId) =>
        writes().anchors.get(vkey(readerId, bootId))?.a ?? cache.get(L.anchor, { r: readerId, b: bootId }),
      putAnchor: (readerId, bootId, a) =>
        void writes().anchors.set(vkey(readerId, bootId), { readerId, bootId, a }),
      anchorRows: (r, limit) => cache.get(L.scanRows, { r, after: meta(readerScanKey(r)) ?? 0, limit }),
      setAnchorScanned: (readerId, id) => void writes().metas.set(readerScanKey(readerId), id),
      syncedOffset: (readerId, bootId) => meta(syncedOffsetKey(readerId, bootId)),
      putSyncedOffset: (readerId, bootId, offsetMs) =>
        void writes().metas.set(syncedOffsetKey(readerId, bootId), offsetMs),
      clockOffset: (readerId) => meta(clockOffsetKey(readerId)),
      setClockOffset: (readerId, offsetMs) => void writes().metas.set(clockOffsetKey(readerId), offsetMs),
      isolated: <R>(fn: () => R): R => {
        const saved = copyWrites(writes());
        try {
          return fn();
        } catch (err) {
          setWrites(saved);
          throw err;
        }
      },
    };
    return tx;
  }

  async readersBehind(): Promise<string[]> {
    const r = await this.pool.query<{ id: string }>(
      `SELECT s.reader_id AS id FROM reader_seq s LEFT JOIN visit_cursor c ON c.reader_id = s.reader_id
        WHERE s.contiguous_upto > COALESCE(c.processed_upto, 0) ORDER BY s.reader_id COLLATE "C"`,
    );
    return r.rows.map((x) => x.id);
  }

  readonly anchorScan = {
    cursor: async (): Promise<number> =>
      (
        await this.pool.query<{ value: number }>('SELECT value FROM visit_meta WHERE key = $1', [
          ANCHOR_SCAN_KEY,
        ])
      ).rows[0]?.value ?? 0,
    rows: async (afterId: number, limit: number): Promise<AnchorScanRow[]> =>
      (
        await this.pool.query<AnchorScanRow>(
          'SELECT id, reader_id, event_json, sent_at_json, received_at_ms FROM events WHERE id > $1 ORDER BY id LIMIT $2',
          [afterId, limit],
        )
      ).rows,
  };

  async listVisits(x: VisitQuery): Promise<VisitRow[]> {
    const order =
      x.state === 'open' ? 'started_at_ms, visit_id COLLATE "C"' : 'updated_at_ms DESC, visit_id COLLATE "C"';
    const r = await this.pool.query<RawVisit>(
      `SELECT * FROM visits WHERE ${x.state === 'open' ? `state = 'open'` : 'TRUE'}
         AND ($1::text IS NULL OR reader_id = $1) ORDER BY ${order} LIMIT $2`,
      [x.readerId ?? null, x.limit],
    );
    return r.rows.map(toVisit);
  }

  async listAnomalies(x: AnomalyQuery): Promise<AnomalyListRow[]> {
    const r = await this.pool.query<AnomalyListRow>(
      `SELECT id, idempotency_key AS "idempotencyKey", kind, reader_id AS "readerId", visit_id AS "visitId",
         card_ref AS "cardRef", staff_ref AS "staffRef", client_ref AS "clientRef", at_ms AS "atMs", seq, detail,
         created_at_ms AS "createdAtMs", resolved_at_ms AS "resolvedAtMs", resolved_by AS "resolvedBy",
         resolution, resolved_staff_ref AS "resolvedStaffRef"
       FROM anomalies WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR reader_id = $2)
       ORDER BY id DESC LIMIT $3`,
      [x.kind ?? null, x.readerId ?? null, x.limit],
    );
    return r.rows.map((a) => ({ ...a, kind: a.kind }));
  }

  async readersOfVisit(visitId: string): Promise<string[]> {
    const r = await this.pool.query<{ r: string }>(
      'SELECT reader_id AS r FROM visits WHERE visit_id = $1 ORDER BY reader_id COLLATE "C"',
      [visitId],
    );
    return r.rows.map((x) => x.r);
  }

  async openVisitIds(readerId: string): Promise<string[]> {
    const r = await this.pool.query<{ v: string }>(
      `SELECT visit_id AS v FROM visits WHERE reader_id = $1 AND state = 'open'
        ORDER BY started_at_ms, visit_id COLLATE "C"`,
      [readerId],
    );
    return r.rows.map((x) => x.v);
  }

  async gauges(): Promise<{ openVisits: number; lagEvents: number }> {
    const r = await this.pool.query<{ open: number; lag: number }>(
      `SELECT (SELECT COUNT(*) FROM visits WHERE state = 'open') AS open,
              (SELECT COALESCE(SUM(s.contiguous_upto - COALESCE(c.processed_upto, 0)), 0) FROM reader_seq s
                 LEFT JOIN visit_cursor c ON c.reader_id = s.reader_id
                WHERE s.contiguous_upto > COALESCE(c.processed_upto, 0)) AS lag`,
    );
    return { openVisits: r.rows[0]?.open ?? 0, lagEvents: r.rows[0]?.lag ?? 0 };
  }
}

/**
 * The per-reader reads of a turn, before its first run: cursors and contiguous prefixes (one statement
 * each for all readers), the anchor-scan marks and clock offsets, then each reader's rows past its
 * scan mark, next `events` events, open visits and client history (one statement each), and the
 * anchors and measured offsets of every boot those rows name.
 */
async function prefetch(c: PgClient, cache: TurnCache, readerIds: string[], hint: TurnHint): Promise<void> {
  const limit = hint.events ?? 0;
  await cache.fetch(c, L.cursor, readerIds);
  await cache.fetch(c, L.upto, readerIds);
  await cache.fetch(
    c,
    L.meta,
    readerIds.flatMap((r) => [readerScanKey(r), clockOffsetKey(r)]),
  );
  const scans = hint.anchorRows
    ? readerIds.map((r) => ({
        r,
        after: cache.get(L.meta, readerScanKey(r)) ?? 0,
        limit: hint.anchorRows ?? 0,
      }))
    : [];
  if (scans.length) await cache.fetch(c, L.scanRows, scans);
  const chunks = readerIds
    .map((r) => ({ r, after: cache.get(L.cursor, r), upto: cache.get(L.upto, r), limit }))
    .filter((x) => x.upto > x.after);
  await cache.fetch(c, L.events, chunks);
  // The boots these rows name: their anchors and measured offsets (one statement each).
  const boots = new Map<string, { r: string; b: string }>();
  const addBoots = (r: string, json: string | null) => {
    for (const b of bootsOf(json)) boots.set(vkey(r, b), { r, b });
  };
  for (const x of scans) {
    for (const row of cache.get(L.scanRows, x)) {
      addBoots(x.r, row.event_json);
      addBoots(x.r, row.sent_at_json);
    }
  }
  for (const x of chunks) for (const e of cache.get(L.events, x)) addBoots(x.r, e.event_json);
  if (boots.size) {
    await cache.fetch(c, L.anchor, boots.values());
    await cache.fetch(
      c,
      L.meta,
      [...boots.values()].map((x) => syncedOffsetKey(x.r, x.b)),
    );
  }
  // The cards the chunk names: locked (as a card assignment locks its card, store/postgres/cards.ts) so
  // an assignment on another instance either commits before this turn reads the card, or attributes
  // this turn's visits after it commits; never in between (readers first, then cards: no cycle).
  const cards = new Set<string>();
  for (const x of chunks) {
    for (const e of cache.get(L.events, x)) {
      const ref = cardOf(e.event_json);
      if (ref) cards.add(ref);
    }
  }
  if (cards.size) {
    await c.query(
      `SELECT pg_advisory_xact_lock(${LOCK_NS.card}, hashtext(k)) FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) s`,
      [[...cards].sort()],
    );
    await cache.fetch(c, L.card, cards);
  }
  const busy = chunks.map((x) => x.r);
  await cache.fetch(c, L.open, busy);
  await cache.fetch(c, L.clients, busy);
  cache.missed.clear();
}

/** The boot ids a stored event's JSON (its `time`) or a batch's `sentAt` JSON names. */
function bootsOf(json: string | null): string[] {
  if (!json) return [];
  try {
    const v = JSON.parse(json) as { bootId?: unknown; time?: { bootId?: unknown } };
    const b = typeof v.bootId === 'string' ? v.bootId : v.time?.bootId;
    return typeof b === 'string' ? [b] : [];
  } catch {
    return [];
  }
}

/** The `card` of a stored event's JSON, or null. */
function cardOf(json: string | null): string | null {
  if (!json) return null;
  try {
    const v = JSON.parse(json) as { card?: unknown };
    return typeof v.card === 'string' ? v.card : null;
  } catch {
    return null;
  }
}

/** Applies a completed run's writes inside the turn's transaction: one statement per table. */
async function applyWrites(c: PgClient, w: Writes): Promise<void> {
  const vs = [...w.visits.values()];
  if (vs.length) {
    const col = <K extends keyof VisitRow>(k: K) => vs.map((v) => v[k]);
    await c.query(
      `INSERT INTO visits (reader_id, visit_id, client_ref, card_ref, staff_ref, group_id, state, started_at_ms,
           start_seq, ended_at_ms, end_seq, end_reason, time_quality, anomalies_json, late_end_seq, updated_at_ms)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
           $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::text[],
           $15::bigint[], $16::bigint[])
         ON CONFLICT (reader_id, visit_id) DO UPDATE SET client_ref = excluded.client_ref,
           staff_ref = excluded.staff_ref, group_id = excluded.group_id, state = excluded.state,
           started_at_ms = excluded.started_at_ms, start_seq = excluded.start_seq,
           ended_at_ms = excluded.ended_at_ms, end_seq = excluded.end_seq, end_reason = excluded.end_reason,
           time_quality = excluded.time_quality, anomalies_json = excluded.anomalies_json,
           late_end_seq = excluded.late_end_seq, updated_at_ms = excluded.updated_at_ms`,
      [
        col('readerId'),
        col('visitId'),
        col('clientRef'),
        col('cardRef'),
        col('staffRef'),
        col('groupId'),
        col('state'),
        col('startedAtMs'),
        col('startSeq'),
        col('endedAtMs'),
        col('endSeq'),
        col('endReason'),
        col('timeQuality'),
        vs.map((v) => JSON.stringify(v.anomalies)),
        col('lateEndSeq'),
        col('updatedAtMs'),
      ],
    );
  }
  const as = w.anomalies;
  if (as.length) {
    const col = <K extends keyof AnomalyRecord>(k: K) => as.map((a) => a[k]);
    await c.query(
      `INSERT INTO anomalies (idempotency_key, kind, reader_id, visit_id, card_ref, staff_ref, client_ref, at_ms,
           seq, detail, created_at_ms)
         SELECT k, kind, r, v, cr, sr, cl, at_ms, seq, d, now_ms FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
           $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::bigint[])
           WITH ORDINALITY AS q(k, kind, r, v, cr, sr, cl, at_ms, seq, d, now_ms, i) ORDER BY i
         ON CONFLICT (idempotency_key) DO NOTHING`,
      [
        col('key'),
        col('kind'),
        col('readerId'),
        col('visitId'),
        col('cardRef'),
        col('staffRef'),
        col('clientRef'),
        col('atMs'),
        col('seq'),
        col('detail'),
        col('nowMs'),
      ],
    );
  }
  if (w.audits.length) {
    const col = <K extends keyof VisitAuditRecord>(k: K) => w.audits.map((a) => a[k]);
    await c.query(
      `INSERT INTO visit_audit (reader_id, visit_id, action, actor, reason, at_ms)
         SELECT r, v, ac, who, why, at_ms FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
           $6::bigint[]) WITH ORDINALITY AS q(r, v, ac, who, why, at_ms, i) ORDER BY i`,
      [col('readerId'), col('visitId'), col('action'), col('actor'), col('reason'), col('atMs')],
    );
  }
  if (w.outbox.length) {
    // ids follow the ORDER BY: a visit's events keep the order they were made (the forwarder's order)
    await c.query(
      `INSERT INTO outbox (idempotency_key, visit_id, type, event_json, state, created_at_ms)
         SELECT k, v, t, j, 'pending', now_ms FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
           WITH ORDINALITY AS q(k, v, t, j, now_ms, i) ORDER BY i
         ON CONFLICT (idempotency_key) DO NOTHING`,
      [
        w.outbox.map((o) => o.event.idempotencyKey),
        w.outbox.map((o) => o.event.visitId),
        w.outbox.map((o) => o.event.type),
        w.outbox.map((o) => JSON.stringify(o.event)),
        w.outbox.map((o) => o.nowMs),
      ],
    );
  }
  if (w.cursors.size) {
    await c.query(
      `INSERT INTO visit_cursor (reader_id, processed_upto) SELECT * FROM unnest($1::text[], $2::bigint[])
         ON CONFLICT (reader_id) DO UPDATE SET processed_upto = excluded.processed_upto`,
      [[...w.cursors.keys()], [...w.cursors.values()]],
    );
  }
  if (w.metas.size) {
    await c.query(
      `INSERT INTO visit_meta (key, value) SELECT * FROM unnest($1::text[], $2::bigint[])
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      [[...w.metas.keys()], [...w.metas.values()]],
    );
  }
  if (w.anchors.size) {
    const an = [...w.anchors.values()];
    await c.query(
      `INSERT INTO time_anchors (reader_id, boot_id, offset_ms, exact)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[])
         ON CONFLICT (reader_id, boot_id) DO UPDATE SET offset_ms = excluded.offset_ms, exact = excluded.exact`,
      [
        an.map((x) => x.readerId),
        an.map((x) => x.bootId),
        an.map((x) => x.a.offsetMs),
        an.map((x) => (x.a.exact ? 1 : 0)),
      ],
    );
  }
}
