import type { z } from 'zod';
import { EventTime } from '../../../protocol/index.js';
import type { Anchor, AnchorScanRow } from '../store/ports.js';

export type TimeQuality = 'synced' | 'corrected' | 'uncorrected';

export interface ResolvedTime {
  ms: number;
  quality: TimeQuality;
}

/**
 * How far a clock that says it is synced may be off before the gateway stops trusting it (issue 16). A reader whose
 * NTP is broken but which reports `synced` ran 5–90 s off in the simulator's clock-skew fault and made false
 * "same worker at two homes" flags.
 */
export const SYNCED_OFFSET_BOUND_MS = 5_000;
const SCAN_CHUNK = 2000;

/**
 * Where the SQLite engine's time anchors are stored (store/sqlite/visits.ts `SqliteVisitStore.anchors`):
 * the anchors (table time_anchors), the measured offsets of synced boots and the global scan's mark
 * (visit_meta), the stored event rows in `events.id` order, and `atomically` (one transaction per scan chunk).
 */
export interface AnchorStore {
  anchor(readerId: string, bootId: string): Anchor | null;
  putAnchor(readerId: string, bootId: string, a: Anchor): void;
  syncedOffset(readerId: string, bootId: string): number | null;
  putSyncedOffset(readerId: string, bootId: string, offsetMs: number): void;
  /** The stored measured offsets of every synced boot of a reader. */
  syncedOffsetsOf(readerId: string): number[];
  scanCursor(): number;
  setScanCursor(id: number): void;
  scanRows(afterId: number, limit: number): AnchorScanRow[];
  atomically<T>(fn: () => T): T;
}

/**
 * Clock correction for devices without an RTC. For each (reader, boot) we keep an offset such that
 * device wall time = monotonic + offset:
 *  - exact, from any event or batch `sentAt` taken while the device clock was synced;
 *  - otherwise from a batch `sentAt` (monotonic at send) and the gateway's receive time: transit only
 *    adds, so receive − mono is an upper bound and the smallest one seen wins.
 * Anchors are learned from EVERY stored event row (also rows above a sequence gap, not yet
 * processed), via a global scan cursor over `events.id`, so a reference that arrived out of order is
 * used as soon as it is stored.
 */
export class TimeAnchors {
  private readonly store: AnchorStore;
  private readonly boundMs: number;
  /** Latest uncertainty per reader (ms), from the measured offset of its synced boots; see `uncertaintyMs`. */
  private readonly readerUncertainty = new Map<string, number>();
  constructor(opts: { store: AnchorStore; syncedOffsetBoundMs?: number }) {
    this.store = opts.store;
    this.boundMs = opts.syncedOffsetBoundMs ?? SYNCED_OFFSET_BOUND_MS;
  }

  /**
   * Learns anchors from event rows stored since the last scan. Idempotent; returns rows scanned.
   * Per chunk of rows, each (reader, boot) is read once and written once if it changed; the rules are
   * those of `learn`, applied in row order. Only an event's `time` is parsed (every stored row was a
   * valid TapEvent at ingest), and a batch's `sentAt` once for all of its rows.
   */
  scan(): number {
    const store = this.store;
    let total = 0;
    for (let round = 0; round < 1_000_000; round++) {
      const from = store.scanCursor();
      const batch = store.scanRows(from, SCAN_CHUNK);
      if (batch.length === 0) break;
      store.atomically(() => {
        const learned = learnAnchors(batch, {
          anchor: (r, b) => this.get(r, b),
          syncedOffset: (r, b) => this.syncedOffset(r, b),
        });
        for (const a of learned.anchors) this.put(a.readerId, a.bootId, a.anchor);
        for (const o of learned.offsets) {
          if (o.changed) store.putSyncedOffset(o.readerId, o.bootId, o.offsetMs);
          this.readerUncertainty.set(o.readerId, this.uncertaintyOf(o.offsetMs));
        }
        store.setScanCursor(batch[batch.length - 1]?.id ?? from);
      });
      total += batch.length;
      if (batch.length < SCAN_CHUNK) break;
    }
    return total;
  }

  learn(readerId: string, bootId: string, offsetMs: number, exact: boolean): void {
    const cur = this.get(readerId, bootId);
    const next = nextAnchor(cur, offsetMs, exact);
    if (next && next !== cur) this.put(readerId, bootId, next);
  }

  private put(readerId: string, bootId: string, a: Anchor): void {
    this.store.putAnchor(readerId, bootId, a);
  }

  get(readerId: string, bootId: string): { offsetMs: number; exact: boolean } | null {
    return this.store.anchor(readerId, bootId);
  }

  /**
   * The measured offset of a synced boot's clock (device − gateway, a lower bound: transit only lowers it), or
   * null before any synced batch of that boot was stored.
   */
  syncedOffset(readerId: string, bootId: string): number | null {
    return this.store.syncedOffset(readerId, bootId);
  }

  /**
   * How far a reader's timestamps may be off (ms), for comparisons across readers (the concurrent-visit check):
   * the bound for a clock within it; the measured offset for a "synced" clock measured behind by more than the
   * bound (distrusted: transit could explain part of it, so its times are kept and the margin widened); the
   * bound again for one measured ahead (corrected by the offset in `resolve`, certain since transit cannot put
   * a clock ahead). Readers never measured get the bound.
   */
  uncertaintyMs(readerId: string): number {
    const known = this.readerUncertainty.get(readerId);
    if (known !== undefined) return known;
    // Not measured since this process started (a restarted gateway): the stored offsets of the reader's synced
    // boots, the worst of them (a reader that has sent nothing since the restart is judged as it was before).
    const offsets = this.store.syncedOffsetsOf(readerId);
    const u = offsets.length ? this.uncertaintyOf(Math.min(...offsets)) : this.boundMs;
    this.readerUncertainty.set(readerId, u);
    return u;
  }

  private uncertaintyOf(offsetMs: number): number {
    return uncertaintyOf(offsetMs, this.boundMs);
  }

  /**
   * The best time for an event: its own synced clock (less the measured offset when the clock runs ahead by more
   * than the bound: quality "corrected"), a corrected one, or its raw (flagged) clock.
   */
  resolve(readerId: string, t: EventTime): ResolvedTime {
    return resolveTime(
      t,
      {
        syncedOffset: () => {
          const off = this.syncedOffset(readerId, t.bootId);
          if (off !== null && !this.readerUncertainty.has(readerId))
            this.readerUncertainty.set(readerId, this.uncertaintyOf(off));
          return off;
        },
        anchor: () => this.get(readerId, t.bootId),
      },
      this.boundMs,
    );
  }
}

/** What `learnAnchors` needs to know of what is stored (both engines answer it from their own tables). */
export interface KnownAnchors {
  anchor(readerId: string, bootId: string): Anchor | null;
  /** The stored measured offset of a synced boot (see `TimeAnchors.syncedOffset`), or null. */
  syncedOffset(readerId: string, bootId: string): number | null;
}

export interface LearnedAnchors {
  /** Anchors that changed, one per (reader, boot), to be stored. */
  anchors: Array<{ readerId: string; bootId: string; anchor: Anchor }>;
  /**
   * Every synced boot measured by these rows, in the order first seen (rounded ms): `changed` when it
   * must be stored (new, or larger than the stored one). The last one of a reader is its latest boot.
   */
  offsets: Array<{ readerId: string; bootId: string; offsetMs: number; changed: boolean }>;
}

/**
 * The learning rules of the time anchors, in ONE place for both engines: the SQLite engine applies
 * them to its global scan over `events.id` (`TimeAnchors.scan`), the PostgreSQL turn to each
 * reader's rows past that reader's scan mark (visits/tx-turns.ts). Rows are applied in the order
 * given (the stored order, by row id):
 *  - an event taken with a synced clock, or a synced batch `sentAt`, gives its boot's exact offset
 *    (wall − monotonic; the first exact one is kept);
 *  - an unsynced batch `sentAt` against the receive time gives an estimate (receive − monotonic: an
 *    upper bound, transit only adds; the smallest one wins, an exact one replaces it);
 *  - a synced batch `sentAt` against the receive time measures the clock's offset (device − gateway −
 *    transit: a lower bound, so the largest one per boot is kept).
 * Only an event's `time` is parsed, and a batch's `sentAt` once for the consecutive rows that share it.
 */
export function learnAnchors(rows: Iterable<AnchorScanRow>, known: KnownAnchors): LearnedAnchors {
  const found = new Map<string, AnchorState>();
  const learn = (readerId: string, bootId: string, offsetMs: number, exact: boolean) => {
    const k = `${readerId}\n${bootId}`;
    let a = found.get(k);
    if (!a) {
      const cur = known.anchor(readerId, bootId);
      a = { readerId, bootId, cur, next: cur };
      found.set(k, a);
    }
    a.next = nextAnchor(a.next, offsetMs, exact);
  };
  // A synced batch's sentAt against the receive time: device clock − gateway clock − transit. Transit only
  // lowers it, so the largest value seen per (reader, boot) is the best lower bound of the clock's offset.
  const offsets = new Map<string, { readerId: string; bootId: string; ms: number; changed: boolean }>();
  const measured = (readerId: string, bootId: string, ms: number) => {
    const k = `${readerId}\n${bootId}`;
    let o = offsets.get(k);
    if (!o) {
      const cur = known.syncedOffset(readerId, bootId);
      o = { readerId, bootId, ms: cur ?? ms, changed: cur === null };
      offsets.set(k, o);
    }
    if (ms > o.ms) {
      o.ms = ms;
      o.changed = true;
    }
  };
  let sentJson: string | null = null;
  let sent: EventTime | null = null;
  for (const r of rows) {
    const t = parseEventTime(r.event_json);
    if (t?.synced) learn(r.reader_id, t.bootId, t.wallMs - t.monoMs, true);
    if (r.sent_at_json !== sentJson) {
      sentJson = r.sent_at_json;
      sent = parseJson(sentJson, EventTime);
    }
    if (sent?.synced) {
      learn(r.reader_id, sent.bootId, sent.wallMs - sent.monoMs, true);
      if (typeof r.received_at_ms === 'number') {
        measured(r.reader_id, sent.bootId, sent.wallMs - r.received_at_ms);
      }
    } else if (sent && typeof r.received_at_ms === 'number') {
      learn(r.reader_id, sent.bootId, r.received_at_ms - sent.monoMs, false);
    }
  }
  const out: LearnedAnchors = { anchors: [], offsets: [] };
  for (const a of found.values()) {
    if (a.next && a.next !== a.cur)
      out.anchors.push({ readerId: a.readerId, bootId: a.bootId, anchor: a.next });
  }
  for (const o of offsets.values()) {
    out.offsets.push({
      readerId: o.readerId,
      bootId: o.bootId,
      offsetMs: Math.round(o.ms),
      changed: o.changed,
    });
  }
  return out;
}

/**
 * How far a reader's timestamps may be off (ms) given the measured offset of its synced clock (see
 * `TimeAnchors.uncertaintyMs`): the offset itself for a clock behind by more than the bound, else the bound.
 */
export function uncertaintyOf(offsetMs: number | null, boundMs: number): number {
  return offsetMs !== null && offsetMs < -boundMs ? -offsetMs : boundMs;
}

/**
 * The best time for an event (see `TimeAnchors.resolve`), from the measured offset of its synced boot
 * and its boot's anchor; both engines resolve through this.
 */
export function resolveTime(
  t: EventTime,
  known: { syncedOffset: () => number | null; anchor: () => Anchor | null },
  boundMs: number,
): ResolvedTime {
  if (t.synced) {
    const off = known.syncedOffset();
    if (off !== null && off > boundMs) return { ms: t.wallMs - off, quality: 'corrected' };
    return { ms: t.wallMs, quality: 'synced' };
  }
  const a = known.anchor();
  if (a) return { ms: t.monoMs + a.offsetMs, quality: 'corrected' };
  return { ms: t.wallMs, quality: 'uncorrected' };
}

interface AnchorState {
  readerId: string;
  bootId: string;
  /** As stored before these rows, and after applying them. */
  cur: Anchor | null;
  next: Anchor | null;
}

/**
 * One observation applied to an anchor: the first one is kept; an exact offset replaces an estimate;
 * a smaller estimate replaces a larger one (transit only adds). Returns `cur` itself when unchanged.
 */
function nextAnchor(cur: Anchor | null, offsetMs: number, exact: boolean): Anchor | null {
  const stored = { offsetMs: Math.round(offsetMs), exact };
  if (!cur) return stored;
  if (exact && !cur.exact) return stored;
  if (!exact && !cur.exact && offsetMs < cur.offsetMs) return stored;
  return cur;
}

/** The `time` of a stored event row (validated with the protocol's EventTime), or null. */
function parseEventTime(text: string | null): EventTime | null {
  if (!text) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || !('time' in v)) return null;
  const r = EventTime.safeParse(v.time);
  return r.success ? r.data : null;
}

export function parseJson<T>(text: string | null, schema: z.ZodType<T>): T | null {
  if (!text) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  const r = schema.safeParse(v);
  return r.success ? r.data : null;
}
