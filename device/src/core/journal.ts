import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { z } from 'zod';
import { DeviceConfig, EventTime, LIMITS, SafeId, SealedCard, TapEvent } from '../../../protocol/index.js';
import type { Tombstone, TombstoneReason } from '../../../protocol/index.js';
import type { CardState } from './decision.js';

/**
 * The device journal: one SQLite file, WAL, synchronous=FULL, so a commit that backs feedback
 * survives a power cut. Holds unacknowledged events (gap-free seq), per-card visit state, the last
 * good pushed config and a few counters. Writes: one transaction per tap, one per ack, one per config.
 * Heartbeats and status stay in memory.
 */

export interface JournalOptions {
  path: string;
  logger: Logger;
  /** Most unacknowledged events kept (append refuses beyond it). */
  capacity: number;
  /** Test hook: called inside the tap transaction after the inserts, before COMMIT. */
  beforeCommit?: () => void;
  /**
   * The reader id this journal belongs to: stamped on first open; opening it under another id throws
   * JournalIdentityError (callers check first with journalIdentityProblem for a friendlier message).
   */
  readerId?: string;
  /** The epoch id a new journal gets (default: "j" + 16 random hex chars). Injected by tests. */
  newEpoch?: () => string;
}

/** The journal's meta key holding its epoch (protocol/README.md "Journal epochs and tombstones"). */
export const JOURNAL_EPOCH_KEY = 'epoch';

/** What the uplink sends next: events and tombstones in (after, throughSeq], in seq order. */
export interface OutgoingBatch {
  events: TapEvent[];
  tombstones: Tombstone[];
  /** Lowest and highest seq the batch covers (events and tombstones), or null when there is nothing. */
  fromSeq: number | null;
  throughSeq: number | null;
}

/** The journal's meta key holding the reader id it belongs to. */
export const JOURNAL_READER_KEY = 'reader_id';

export class JournalIdentityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JournalIdentityError';
  }
}

export interface JournalStats {
  depth: number;
  capacity: number;
  lastSeq: number;
  lastAckedSeq: number;
  oldestUnacked: { seq: number; wallMs: number; monoMs: number; bootId: string } | null;
  quarantined: number;
  /** Seqs this journal declares undeliverable and the gateway has not yet acknowledged. */
  tombstoned: number;
  /** The journal's epoch (null: a journal created before epochs, the legacy epoch). */
  epoch: string | null;
}

export class JournalFullError extends Error {
  constructor(depth: number, capacity: number) {
    super(`journal full: ${depth} unacknowledged events, capacity ${capacity}`);
    this.name = 'JournalFullError';
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, event_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS card_state (card TEXT PRIMARY KEY, state_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
  id INTEGER PRIMARY KEY, source TEXT NOT NULL, key TEXT, raw TEXT, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (seq INTEGER PRIMARY KEY, reason TEXT NOT NULL);
`;

export class Journal {
  private readonly db: Database.Database;
  private readonly log: Logger;
  private readonly opts: JournalOptions;
  private lastSeq = 0;
  private lastAcked = 0;
  private depthCount = 0;
  private quarantinedCount = 0;
  private tombstonedCount = 0;
  private epochId: string | null = null;
  private readonly stmts;

  constructor(opts: JournalOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ module: 'journal' });
    this.db = new Database(opts.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 2000');
    // better-sqlite3 builds SQLite with a 16 MB page cache per connection; the journal appends at one
    // end and reads from the other, so 256 KiB holds its hot pages (10,000 queued taps: 9 MB less RSS).
    this.db.pragma('cache_size = -256');
    this.db.exec(SCHEMA);
    this.stmts = {
      getMeta: this.db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: this.db.prepare<[string, string]>(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ),
      insert: this.db.prepare<[number, string]>('INSERT INTO events (seq, event_json) VALUES (?, ?)'),
      putCard: this.db.prepare<[string, string]>(
        'INSERT INTO card_state (card, state_json) VALUES (?, ?) ON CONFLICT(card) DO UPDATE SET state_json = excluded.state_json',
      ),
      delCard: this.db.prepare<[string]>('DELETE FROM card_state WHERE card = ?'),
      range: this.db.prepare<[number, number], { seq: number; event_json: string }>(
        'SELECT seq, event_json FROM events WHERE seq > ? ORDER BY seq LIMIT ?',
      ),
      deleteUpTo: this.db.prepare<[number]>('DELETE FROM events WHERE seq <= ?'),
      deleteOne: this.db.prepare<[number]>('DELETE FROM events WHERE seq = ?'),
      count: this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM events'),
      oldest: this.db.prepare<[], { seq: number; event_json: string }>(
        'SELECT seq, event_json FROM events ORDER BY seq LIMIT 1',
      ),
      quarantine: this.db.prepare<[string, string | null, string | null, string]>(
        'INSERT INTO quarantine (source, key, raw, reason) VALUES (?, ?, ?, ?)',
      ),
      tombstone: this.db.prepare<[number, string]>(
        'INSERT OR IGNORE INTO tombstones (seq, reason) VALUES (?, ?)',
      ),
      tombstonesIn: this.db.prepare<[number, number], { seq: number; reason: string }>(
        'SELECT seq, reason FROM tombstones WHERE seq > ? AND seq <= ? ORDER BY seq',
      ),
      deleteTombstonesUpTo: this.db.prepare<[number]>('DELETE FROM tombstones WHERE seq <= ?'),
      countTombstones: this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM tombstones'),
    };
    try {
      this.claimIdentity();
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.claimEpoch();
    this.recover();
  }

  /**
   * A journal that has never numbered a tap gets a new epoch; an older journal without one keeps the legacy
   * epoch (null), so its seqs go on meaning what they meant. The epoch never changes afterwards.
   */
  private claimEpoch(): void {
    const stamped = this.stmts.getMeta.get(JOURNAL_EPOCH_KEY)?.value;
    if (stamped !== undefined) {
      this.epochId = stamped === '' ? null : stamped;
      return;
    }
    const used =
      this.stmts.getMeta.get('last_seq') !== undefined ||
      this.stmts.getMeta.get('last_acked_seq') !== undefined ||
      this.stmts.oldest.get() !== undefined;
    const epoch = used ? null : (this.opts.newEpoch ?? newEpochId)();
    this.stmts.setMeta.run(JOURNAL_EPOCH_KEY, epoch ?? '');
    this.epochId = epoch;
  }

  /** The journal epoch its seqs belong to (null: the legacy epoch of a journal older than epochs). */
  get epoch(): string | null {
    return this.epochId;
  }

  /** Stamps the journal with its reader id, or refuses another reader's journal (see JournalOptions.readerId). */
  private claimIdentity(): void {
    const readerId = this.opts.readerId;
    if (readerId === undefined) return;
    const stamped = this.stmts.getMeta.get(JOURNAL_READER_KEY)?.value;
    if (stamped === readerId) return;
    let owner = stamped ?? null;
    if (owner === null) {
      const first = this.stmts.oldest.get();
      if (first) {
        try {
          owner = (JSON.parse(first.event_json) as { readerId?: unknown }).readerId as string | null;
        } catch {
          owner = null; // unreadable rows are quarantined by recover()
        }
        if (typeof owner !== 'string') owner = null;
      }
    }
    if (owner !== null && owner !== readerId) {
      throw new JournalIdentityError(
        `journal ${this.opts.path} belongs to reader "${owner}", not "${readerId}" (fix: use that reader's config, or provision the new identity, which keeps the old journal aside)`,
      );
    }
    this.stmts.setMeta.run(JOURNAL_READER_KEY, readerId);
  }

  /** Loads counters and quarantines rows that do not parse (logged, counted, never a crash). */
  private recover(): void {
    const num = (k: string): number => {
      const v = Number(this.stmts.getMeta.get(k)?.value ?? '0');
      return Number.isSafeInteger(v) && v >= 0 ? v : 0;
    };
    this.lastAcked = num('last_acked_seq');
    const rows = this.db
      .prepare<[], { seq: number; event_json: string }>('SELECT seq, event_json FROM events')
      .all();
    let maxSeq = 0;
    const bad: { seq: number; raw: string; reason: string }[] = [];
    for (const r of rows) {
      const reason = parseProblem(r.event_json, r.seq);
      if (reason) bad.push({ seq: r.seq, raw: r.event_json, reason });
      maxSeq = Math.max(maxSeq, r.seq);
    }
    // last_seq is the authority for numbering; the rows only raise it (never reuse a number).
    this.lastSeq = Math.max(num('last_seq'), maxSeq, this.lastAcked);
    const q = this.db.transaction(() => {
      for (const b of bad) {
        this.stmts.quarantine.run('events', String(b.seq), b.raw.slice(0, 4000), b.reason);
        this.stmts.deleteOne.run(b.seq);
        if (b.seq > this.lastAcked) this.stmts.tombstone.run(b.seq, 'quarantined');
      }
      this.stmts.setMeta.run('last_seq', String(this.lastSeq));
    });
    q();
    for (const b of bad) {
      this.log.error(
        { seq: b.seq, reason: b.reason },
        'unreadable journal row quarantined (a tombstone tells the gateway it will never come)',
      );
    }
    this.quarantinedCount =
      this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM quarantine').get()?.n ?? 0;
    this.tombstonedCount = this.stmts.countTombstones.get()?.n ?? 0;
    this.depthCount = this.stmts.count.get()?.n ?? 0;
  }

  get nextSeq(): number {
    return this.lastSeq + 1;
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  get lastAckedSeq(): number {
    return this.lastAcked;
  }

  get depth(): number {
    return this.depthCount;
  }

  get capacity(): number {
    return this.opts.capacity;
  }

  /** Room for `n` more events? */
  hasRoom(n: number): boolean {
    return this.depthCount + n <= this.opts.capacity;
  }

  /**
   * Appends events (their seqs must be nextSeq, nextSeq+1, …) and the card's new state in ONE
   * durable transaction. Throws JournalFullError (nothing written) when over capacity.
   */
  append(events: TapEvent[], card: { card: string; state: CardState | null } | null): void {
    if (!this.hasRoom(events.length)) throw new JournalFullError(this.depthCount, this.opts.capacity);
    const tx = this.db.transaction(() => {
      let seq = this.lastSeq;
      for (const e of events) {
        if (e.seq !== seq + 1) throw new Error(`journal: seq ${e.seq} is not the next (${seq + 1})`);
        this.stmts.insert.run(e.seq, JSON.stringify(e));
        seq = e.seq;
      }
      if (card) {
        if (card.state) this.stmts.putCard.run(card.card, JSON.stringify(card.state));
        else this.stmts.delCard.run(card.card);
      }
      this.stmts.setMeta.run('last_seq', String(seq));
      this.opts.beforeCommit?.();
      return seq;
    });
    this.lastSeq = tx();
    this.depthCount += events.length;
  }

  /**
   * Unacknowledged events with seq > afterSeq, in seq order. A row that no longer reads as its event is
   * quarantined and tombstoned on the spot (logged), so the gateway learns it will never come.
   */
  readAfter(afterSeq: number, limit: number): TapEvent[] {
    const out: TapEvent[] = [];
    for (const r of this.stmts.range.all(afterSeq, limit)) {
      const reason = parseProblem(r.event_json, r.seq);
      const p = reason === null ? TapEvent.safeParse(safeJson(r.event_json)) : null;
      if (p?.success) out.push(p.data);
      else this.quarantineRow(r.seq, r.event_json, reason ?? 'not a valid TapEvent');
    }
    return out;
  }

  /**
   * What to send after `afterSeq`: up to `limit` events and the tombstones among and after them (up to the
   * journal's last seq when fewer than `limit` events remain), at most LIMITS.maxBatchTombstones ranges.
   */
  readBatch(afterSeq: number, limit: number): OutgoingBatch {
    let events = this.readAfter(afterSeq, limit);
    const lastEvent = events[events.length - 1];
    let upper = events.length >= limit && lastEvent ? lastEvent.seq : this.lastSeq;
    let tombstones = this.tombstoneRanges(afterSeq, upper);
    if (tombstones.length > LIMITS.maxBatchTombstones) {
      tombstones = tombstones.slice(0, LIMITS.maxBatchTombstones);
      upper = tombstones[tombstones.length - 1]?.to ?? upper;
      events = events.filter((e) => e.seq <= upper);
    }
    const seqs = [...events.map((e) => e.seq), ...tombstones.flatMap((t) => [t.from, t.to])];
    if (seqs.length === 0) return { events, tombstones, fromSeq: null, throughSeq: null };
    return { events, tombstones, fromSeq: Math.min(...seqs), throughSeq: Math.max(...seqs) };
  }

  /** Tombstoned seqs in (after, upTo], merged into ranges of one reason. */
  private tombstoneRanges(after: number, upTo: number): Tombstone[] {
    if (this.tombstonedCount === 0 || upTo <= after) return [];
    const out: Tombstone[] = [];
    for (const r of this.stmts.tombstonesIn.all(after, upTo)) {
      const reason = r.reason as TombstoneReason;
      const last = out[out.length - 1];
      if (last && last.to === r.seq - 1 && last.reason === reason) last.to = r.seq;
      else out.push({ from: r.seq, to: r.seq, reason });
    }
    return out;
  }

  /** Moves an unreadable event row aside and declares its seq undeliverable (one transaction). */
  private quarantineRow(seq: number, raw: string, reason: string): void {
    this.db.transaction(() => {
      this.stmts.quarantine.run('events', String(seq), raw.slice(0, 4000), reason);
      this.stmts.deleteOne.run(seq);
      if (seq > this.lastAcked) this.stmts.tombstone.run(seq, 'quarantined');
    })();
    this.quarantinedCount++;
    this.depthCount = Math.max(0, this.depthCount - 1);
    this.tombstonedCount = this.stmts.countTombstones.get()?.n ?? 0;
    this.log.error({ seq, reason }, 'unreadable journal row quarantined (tombstone sent to the gateway)');
  }

  /**
   * Applies an application-level ack: deletes every event ≤ upTo and the listed rejected seqs.
   * Returns how many rows were deleted. An ack above the last seq this journal ever wrote means the
   * gateway holds a sequence this journal does not know (the journal was wiped or replaced under the
   * same reader id): the unacknowledged events are renumbered after upTo instead of being deleted
   * as if the gateway held them (see rebase()).
   */
  ack(upTo: number, rejected: readonly number[] = []): number {
    if (upTo > this.lastSeq) {
      this.rebase(upTo);
      return 0;
    }
    const rej = rejected.filter((s) => s > upTo && s <= this.lastSeq);
    if (upTo <= this.lastAcked && rej.length === 0) return 0;
    const tx = this.db.transaction(() => {
      let n = upTo > this.lastAcked ? this.stmts.deleteUpTo.run(upTo).changes : 0;
      for (const s of rej) n += this.stmts.deleteOne.run(s).changes;
      if (upTo > this.lastAcked) {
        this.stmts.setMeta.run('last_acked_seq', String(upTo));
        if (this.tombstonedCount > 0) this.stmts.deleteTombstonesUpTo.run(upTo);
      }
      return n;
    });
    const n = tx();
    if (this.tombstonedCount > 0) this.tombstonedCount = this.stmts.countTombstones.get()?.n ?? 0;
    if (upTo > this.lastAcked) this.lastAcked = upTo;
    this.depthCount = Math.max(0, this.depthCount - n);
    return n;
  }

  /**
   * Continues the sequence after `base` (the gateway's contiguous seq for this reader): unacked
   * events keep their order, event ids and content and get seqs base+1, base+2, …; numbering goes
   * on from there. One transaction; the uplink then resends them.
   */
  rebase(base: number): void {
    const rows = this.db
      .prepare<[], { seq: number; event_json: string }>('SELECT seq, event_json FROM events ORDER BY seq')
      .all();
    const tx = this.db.transaction(() => {
      this.db.prepare('DELETE FROM events').run();
      this.db.prepare('DELETE FROM tombstones').run(); // renumbered without holes
      let seq = base;
      for (const r of rows) {
        const e = safeJson(r.event_json);
        if (typeof e !== 'object' || e === null) continue;
        seq++;
        this.stmts.insert.run(seq, JSON.stringify({ ...e, seq }));
      }
      this.stmts.setMeta.run('last_seq', String(seq));
      this.stmts.setMeta.run('last_acked_seq', String(base));
      return seq;
    });
    const from = this.lastSeq;
    this.lastSeq = tx();
    this.lastAcked = base;
    this.depthCount = this.lastSeq - base;
    this.tombstonedCount = 0;
    this.log.error(
      { gatewayUpTo: base, journalLastSeq: from, renumbered: this.depthCount },
      'the gateway holds a longer sequence than this journal (journal wiped or replaced?): continuing after it',
    );
  }

  /** Per-card state for every card with an open visit or a recent tap; unreadable rows quarantined. */
  loadCardStates(): Map<string, CardState> {
    const out = new Map<string, CardState>();
    const rows = this.db
      .prepare<[], { card: string; state_json: string }>('SELECT card, state_json FROM card_state')
      .all();
    for (const r of rows) {
      const s = safeJson(r.state_json);
      if (isCardState(s)) {
        out.set(r.card, s);
        continue;
      }
      this.db.transaction(() => {
        this.stmts.quarantine.run('card_state', r.card, r.state_json.slice(0, 4000), 'unreadable card state');
        this.stmts.delCard.run(r.card);
      })();
      this.quarantinedCount++;
      this.log.error('unreadable card state quarantined (an open visit may be lost; the gateway flags it)');
    }
    return out;
  }

  /** Forgets cards with neither an open visit nor a tap in this boot (keeps the table small). */
  pruneCardStates(currentBootId: string, states: Map<string, CardState>): void {
    const tx = this.db.transaction(() => {
      for (const [card, s] of states) {
        if (s.open === null && (s.lastTap === null || s.lastTap.at.bootId !== currentBootId)) {
          this.stmts.delCard.run(card);
          states.delete(card);
        }
      }
    });
    tx();
  }

  saveConfig(cfg: DeviceConfig): void {
    this.stmts.setMeta.run('device_config', JSON.stringify(cfg));
  }

  loadConfig(): DeviceConfig | null {
    const raw = this.stmts.getMeta.get('device_config')?.value;
    if (raw === undefined) return null;
    const p = DeviceConfig.safeParse(safeJson(raw));
    if (p.success) return p.data;
    this.log.error('stored device config unreadable; using defaults until the gateway pushes one');
    return null;
  }

  stats(): JournalStats {
    let oldest: JournalStats['oldestUnacked'] = null;
    const r = this.stmts.oldest.get();
    if (r) {
      const p = TapEvent.safeParse(safeJson(r.event_json));
      if (p.success) {
        const t = p.data.time;
        oldest = { seq: r.seq, wallMs: t.wallMs, monoMs: t.monoMs, bootId: t.bootId };
      }
    }
    return {
      depth: this.depthCount,
      capacity: this.opts.capacity,
      lastSeq: this.lastSeq,
      lastAckedSeq: this.lastAcked,
      oldestUnacked: oldest,
      quarantined: this.quarantinedCount,
      tombstoned: this.tombstonedCount,
      epoch: this.epochId,
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function newEpochId(): string {
  return `j${randomBytes(8).toString('hex')}`;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function parseProblem(raw: string, seq: number): string | null {
  const json = safeJson(raw);
  if (json === undefined) return 'not JSON';
  const p = TapEvent.safeParse(json);
  if (!p.success) return 'not a valid TapEvent';
  if (p.data.seq !== seq) return 'seq mismatch';
  return null;
}

const CardStateSchema = z
  .object({
    open: z
      .object({ visitId: SafeId, startSeq: z.number().int().min(1), startedAt: EventTime })
      .strict()
      .nullable(),
    lastTap: z.object({ at: EventTime, visitId: SafeId.nullable() }).strict().nullable(),
    sealed: SealedCard.optional(),
  })
  .strict();

function isCardState(v: unknown): v is CardState {
  return CardStateSchema.safeParse(v).success;
}
