import type pino from 'pino';
import {
  decode,
  encode,
  LIMITS,
  sleep,
  topics,
  type Ack,
  type Clock,
  type EventBatch,
  type TapEvent,
  type TimerHandle,
} from '../../../protocol/index.js';
import { GatewayCardKeys } from '../../../protocol/index.js';
import type { InboundMessage } from '../broker/transport.js';
import type { MetricsRegistry } from '../metrics.js';
import { isPromiseLike, settle, type Awaitable } from '../store/awaitable.js';
import {
  newlyCommitted,
  type CommitOutcome,
  type IngestItem,
  type IngestLog,
} from '../store/ingest-store.js';
import type { ReaderLiveView } from './reader-view.js';
import {
  offsetForNew,
  placeEpoch,
  shiftIn,
  shiftOut,
  type EpochLog,
  type EpochPlace,
  type EpochRow,
} from './epochs.js';
import { admitBatch, DEFAULT_MAX_SEQ_JUMP, RejectLogLimiter } from './limits.js';
import { salvageBatch } from './salvage.js';
import { unsealEvents } from './sealed-cards.js';

export type ReaderAdmission = 'active' | 'revoked' | 'unknown';

export interface IngestOptions {
  /** The event log (store port): SQLite answers synchronously, PostgreSQL with a Promise. */
  store: IngestLog;
  /** Recorded journal epochs (./epochs.ts): device seqs are moved into one gateway seq space per reader. */
  epochs: EpochLog;
  clock: Clock;
  logger: pino.Logger;
  metrics: MetricsRegistry;
  live: ReaderLiveView;
  groupCommitMs: number;
  groupCommitMax: number;
  admission: (readerId: string) => ReaderAdmission;
  publish: (topic: string, payload: Buffer) => Promise<void>;
  /**
   * After each durable group commit, before the acks go out. Never throws. `committed`: per reader the
   * events this commit passed to the store above the reader's earlier contiguous mark (gateway seqs) and
   * the seqs it found held with other content, so the visits engine can take them from memory.
   */
  onCommitted: (readerIds: string[], committed?: CommittedEvents) => void;
  /**
   * Screens a batch's valid events before they are queued (secure cards, gateway/src/secure-cards):
   * events it refuses are held as rejected (acked `invalid-event` with the detail) and never become
   * visits. Absent: every valid event is kept. Synchronous on SQLite (the batch is queued at once); a
   * Promise on PostgreSQL, settled once the verdicts are durable: the batch is queued then, after the
   * reader's earlier batches, and a reader's batches are screened one after the other. A failed screen
   * (thrown or rejected) leaves the batch unstored and unacked: the device resends it.
   */
  screen?: (readerId: string, events: readonly TapEvent[], atMs: number) => Awaitable<ScreenResult>;
  /**
   * The fleet key (sealed scheme, issue 16; ingest/sealed-cards.ts): sealed cards are opened with the keys
   * derived from it and replaced by the fleet pseudonym here, before screening and the store. Absent: refused.
   */
  fleetKey?: string;
  /** Fleet keys a rotation retired: cards sealed to them still open (docs/security.md "Fleet-key rotation"). */
  retiredFleetKeys?: readonly string[];
  /** Keeps the UIDs of opened sealed cards (sealed: cards/uid-vault.ts), for sealed readers' card lists. */
  cardVault?: { learn(uids: Iterable<string>): number };
  /**
   * Back-pressure from the visits engine: committed events it has not processed yet. While this is at or
   * above `maxBacklog`, a group commit that the timer or the batch size would start waits (in steps of
   * `groupCommitMs`, at most `maxBacklogWaitMs`), then takes from the queue, in order, what keeps the
   * backlog under twice `maxBacklog` (at least one message), so the acks, and with them the readers, slow
   * to the engine's pace instead of leaving it behind without bound; after `maxBacklogWaitMs` it takes at
   * most `maxBacklog` events (at least one message) and waits again. Stop, a journal epoch change and
   * declared losses commit at once. Absent: no back-pressure.
   */
  backlog?: () => number;
  /** Default 2,000 events. */
  maxBacklog?: number;
  /** Default 1,000 ms: a stuck engine slows ingest, never stops it. */
  maxBacklogWaitMs?: number;
  /** A seq more than this above the reader's high-water mark is refused, not held (default 1,000,000). */
  maxSeqJump?: number;
  /** Reject log lines per (reader, reason) per minute before they are only counted (default 10). */
  rejectLogPerMinute?: number;
}

/** What one group commit stored, per reader (IngestOptions.onCommitted). */
export type CommittedEvents = ReadonlyArray<{
  readerId: string;
  events: readonly TapEvent[];
  conflicts: readonly number[];
}>;

export interface ScreenResult {
  keep: TapEvent[];
  refused: Array<{ seq: number; detail: string }>;
}

export interface Ingest {
  handle(msg: InboundMessage): void;
  /** Commits whatever is pending now and sends its acks. */
  flush(): void;
  /** Flushes, then waits (bounded) for the last acks to be handed to MQTT. */
  stop(): Promise<void>;
  pending(): number;
  /**
   * Holds the given seqs as lost (rejected rows with `detail`) through the normal group commit, so the
   * high-water mark, gap gauges, the visits hook and the reader's ack all follow (gap timeout or an
   * operator's accept, gateway/src/retention/gaps.ts). Seqs already held are left alone.
   */
  declareLost(readerId: string, ranges: ReadonlyArray<{ from: number; to: number }>, detail: string): void;
}

/**
 * Authenticated ingest: decode every payload with the protocol codec, group-commit events with
 * dedupe on (reader, seq) in ONE durable transaction, then publish the app-level ack (upTo =
 * contiguous high-water mark, gaps, duplicate conflicts). A rejected payload changes nothing but
 * the reject log and counters. `handle` never throws.
 */
/** Gap ranges read when a journal is replaced; beyond this, its whole unheld span is declared lost. */
const MAX_LOST_RANGES = 10_000;

export function createIngest(opts: IngestOptions): Ingest {
  const { store, clock, metrics, live } = opts;
  const log = opts.logger.child({ module: 'ingest' });
  const m = {
    messages: metrics.counter('visittag_ingest_messages_total', 'MQTT messages received from readers.'),
    events: metrics.counter('visittag_ingest_events_total', 'Tap events newly stored.'),
    dedupe: metrics.counter('visittag_ingest_dedupe_hits_total', 'Tap events received again (ignored).'),
    conflicts: metrics.counter(
      'visittag_ingest_duplicate_conflicts_total',
      'Sequence numbers received again with different content (first kept).',
    ),
    rejects: metrics.counter('visittag_ingest_rejects_total', 'Rejected reader messages, by reason.'),
    commits: metrics.histogram(
      'visittag_ingest_group_commit_items',
      'Messages per group commit.',
      [1, 5, 20, 50, 100, 200, 500, 1000],
    ),
    commitMs: metrics.histogram(
      'visittag_ingest_commit_ms',
      'Group commit duration (ms).',
      [1, 2, 5, 10, 25, 50, 100, 250, 1000],
    ),
    commitFailures: metrics.counter('visittag_ingest_commit_failures_total', 'Failed group commits.'),
    acks: metrics.counter('visittag_ingest_acks_total', 'Application acks published.'),
    epochs: metrics.counter(
      'visittag_ingest_journal_epochs_total',
      'Journal epochs recorded (a reader with a new or replaced journal).',
    ),
    epochLost: metrics.counter(
      'visittag_ingest_epoch_lost_seqs_total',
      'Seqs a replaced journal never delivered, held as lost when its successor started.',
    ),
  };
  const missing = new Map<string, number>();
  const loadGaps = () =>
    settle(store.readersWithGaps(), (withGaps) => {
      const each = withGaps.map((g) =>
        settle(store.gaps(g.readerId, 50), (ranges) => {
          // a commit since start-up knows better
          if (!missing.has(g.readerId))
            missing.set(
              g.readerId,
              ranges.reduce((n, r) => n + r.to - r.from + 1, 0),
            );
        }),
      );
      const waiting = each.filter((x): x is Promise<void> => isPromiseLike(x));
      return waiting.length ? Promise.all(waiting) : undefined;
    });
  try {
    const loaded = loadGaps();
    if (isPromiseLike(loaded)) {
      loaded.catch((err: unknown) => log.warn({ err }, 'gap gauges not loaded at start-up'));
    }
  } catch (err) {
    log.warn({ err }, 'gap gauges not loaded at start-up');
  }
  metrics.gauge('visittag_ingest_readers_with_gaps', 'Readers with a sequence gap.', () => missing.size);
  metrics.gauge(
    'visittag_ingest_gap_events',
    'Sequence numbers above the high-water marks not yet held.',
    () => [...missing.values()].reduce((a, b) => a + b, 0),
  );

  // Messages per topic leaf, counted in a plain object and added to the labelled counter at each group
  // commit (and on stop): a labelled `inc` builds its label key, too much for every message.
  let leafCounts: Partial<Record<string, number>> = {};
  const countMessage = (leaf: string): void => {
    leafCounts[leaf] = (leafCounts[leaf] ?? 0) + 1;
  };
  const publishCounts = (): void => {
    const counts = leafCounts;
    leafCounts = {};
    for (const leaf of Object.keys(counts)) m.messages.inc({ leaf }, counts[leaf]);
  };

  let queue: IngestItem[] = [];
  let messagesQueued = 0;
  let timer: TimerHandle | null = null;
  const inflight = new Set<Promise<void>>();
  /**
   * The commit in flight when the store answers asynchronously (PostgreSQL): the next group commit
   * starts after it, so acks of one reader never overtake each other. Always null on SQLite.
   */
  let committing: Promise<void> | null = null;
  /** Batches waiting for their reader's high-water mark (asynchronous store, first batch only). */
  const admitting = new Set<Promise<void>>();

  // Reject logging is bounded per (reader, reason); the counters and the reject table stay exact (issue 16).
  const rejectLog = new RejectLogLimiter({ perWindow: opts.rejectLogPerMinute ?? 10, windowMs: 60_000 });
  const reject = (readerId: string | null, reason: string, detail: string) => {
    const atMs = clock.now();
    m.rejects.inc({ reason });
    if (readerId) live.reject(readerId, reason, detail, atMs);
    const gate = rejectLog.admit(`${readerId ?? '-'}\n${reason}`, clock.monotonic());
    if (gate.suppressedBefore > 0) {
      log.warn(
        { readerId, reason, notLogged: gate.suppressedBefore },
        'rejected reader messages not logged in the last window (counted in visittag_ingest_rejects_total)',
      );
    }
    if (gate.log) log.warn({ readerId, reason, detail }, 'rejected reader message');
    queue.push({ kind: 'reject', readerId, reason, detail, atMs });
    schedule();
  };

  const maxBacklog = opts.maxBacklog ?? 2_000;
  const maxBacklogWaitMs = opts.maxBacklogWaitMs ?? 1_000;
  /** Since when the next commit waits for the visits engine (monotonic ms), or null. */
  let heldSince: number | null = null;
  /**
   * Events the next timed commit may add without taking the visits engine's backlog over `maxBacklog`
   * (Infinity without back-pressure, or once the commit has waited `maxBacklogWaitMs`).
   */
  const roomForCommit = (): number => {
    if (!opts.backlog) return Infinity;
    let backlog: number;
    try {
      backlog = opts.backlog();
    } catch {
      return Infinity;
    }
    // below the limit, a commit may take the backlog up to twice the limit: never a trickle of small
    // commits (each an fsync) right at the limit
    if (backlog < maxBacklog) return 2 * maxBacklog - backlog;
    const now = clock.monotonic();
    heldSince ??= now;
    // waited long enough: one limit's worth (at least one message) goes, so a slow engine slows the
    // readers to about maxBacklog events per maxBacklogWaitMs instead of letting the backlog run away
    return now - heldSince < maxBacklogWaitMs ? 0 : maxBacklog;
  };
  /**
   * A commit the timer or the batch size starts: it waits while the visits engine is too far behind,
   * and then takes from the queue (in order) only what fits, so the backlog stays bounded.
   */
  const timedFlush = (): void => {
    timer = null;
    const room = queue.length > 0 ? roomForCommit() : Infinity;
    if (room <= 0) {
      timer = clock.setTimeout(timedFlush, Math.max(1, opts.groupCommitMs));
      return;
    }
    flush(room);
    if (queue.length > 0 && timer === null && !committing) {
      timer = clock.setTimeout(timedFlush, Math.max(1, opts.groupCommitMs));
    }
  };

  const schedule = () => {
    if (heldSince !== null && timer !== null) return; // waiting for the visits engine
    if (messagesQueued >= opts.groupCommitMax || opts.groupCommitMs === 0) {
      if (timer !== null) {
        clock.clearTimeout(timer);
        timer = null;
      }
      timedFlush();
      return;
    }
    if (timer === null) timer = clock.setTimeout(timedFlush, opts.groupCommitMs);
  };

  const sendAcks = (outcome: CommitOutcome) => {
    for (const o of outcome.readers.values()) {
      if (o.gaps.length)
        missing.set(
          o.readerId,
          o.gaps.reduce((n, g) => n + g.to - g.from + 1, 0),
        );
      else missing.delete(o.readerId);
      const ack: Ack = {
        schemaVersion: 1,
        readerId: o.readerId,
        upTo: o.upTo,
        rejected: [
          ...o.invalidEvents.map((x) => ({ seq: x.seq, reason: 'invalid-event' as const, detail: x.detail })),
          ...o.conflicts.map((seq) => ({
            seq,
            reason: 'duplicate-conflict' as const,
            detail: 'sequence already held with different content; the first copy is kept',
          })),
        ].slice(0, LIMITS.maxAckRejects),
        ...(o.gaps.length ? { gaps: o.gaps } : {}),
      };
      if (o.conflicts.length) {
        log.warn(
          { readerId: o.readerId, seqs: o.conflicts.slice(0, 20) },
          'duplicate sequence with other content',
        );
      }
      const place = ackPlace.get(o.readerId);
      if (place) {
        publishAck(shiftOut(ack, place));
        continue;
      }
      // Not known since the last declareLost (or start-up): read the reader's epochs first, so the ack
      // names the epoch it speaks of. A failed read sends nothing: the device resends, the next ack goes.
      try {
        const later = settle(currentPlace(o.readerId), (pl) => publishAck(shiftOut(ack, pl)));
        if (isPromiseLike(later)) {
          later.catch((err: unknown) =>
            log.warn(
              { readerId: o.readerId, err },
              'journal epochs not read; ack not sent, the device resends',
            ),
          );
        }
      } catch (err) {
        log.warn({ readerId: o.readerId, err }, 'journal epochs not read; ack not sent, the device resends');
      }
    }
  };

  const publishAck = (ack: Ack): void => {
    let payload: Buffer;
    try {
      payload = encode('acks', ack);
    } catch (err) {
      log.error({ readerId: ack.readerId, err }, 'could not encode an ack');
      return;
    }
    const p = opts
      .publish(topics.acks(ack.readerId), payload)
      .then(
        () => m.acks.inc(),
        (err: unknown) => log.warn({ readerId: ack.readerId, err }, 'ack publish failed; the device resends'),
      )
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };

  /** Commits what is queued (at most `maxEvents` events of it, in queue order, at least one item). */
  function flush(maxEvents = Infinity): void {
    if (timer !== null) {
      clock.clearTimeout(timer);
      timer = null;
    }
    heldSince = null;
    publishCounts();
    if (committing) return; // the commit in flight flushes again when it is done
    if (queue.length === 0) return;
    let items = queue;
    queue = [];
    messagesQueued = 0;
    if (maxEvents !== Infinity) {
      let taken = 0;
      let cut = 0;
      for (; cut < items.length; cut++) {
        const it = items[cut];
        const n = it?.kind === 'events' ? Math.max(1, it.events.length) : 1;
        if (cut > 0 && taken + n > maxEvents) break;
        taken += n;
      }
      if (cut < items.length) {
        queue = items.slice(cut);
        items = items.slice(0, cut);
        messagesQueued = queue.filter((x) => x.kind === 'events').length;
      }
    }
    const t0 = clock.monotonic();
    const failed = (err: unknown): void => {
      // Nothing is acked: the devices keep the events and resend them.
      m.commitFailures.inc();
      log.error({ err, items: items.length }, 'group commit failed; no acks sent');
    };
    let answer: CommitOutcome | Promise<CommitOutcome>;
    try {
      answer = store.commit(items);
    } catch (err) {
      failed(err);
      return;
    }
    if (!isPromiseLike(answer)) {
      committed(answer, items, t0);
      return;
    }
    const p = answer
      .then((o) => committed(o, items, t0), failed)
      .finally(() => {
        committing = null;
        // what queued meanwhile goes as a timed commit would: under the visits engine's back-pressure
        if (queue.length > 0) {
          if (timer !== null) {
            clock.clearTimeout(timer);
            timer = null;
          }
          timedFlush();
        }
      });
    committing = p;
  }

  /** After a durable commit: high-water marks, metrics, the visits hook, then the acks. */
  function committed(outcome: CommitOutcome, items: readonly IngestItem[], t0: number): void {
    // the events handed to the visits engine: above the reader's contiguous mark before this commit
    const handed = newlyCommitted(items, outcome, (r) => highWater.get(r) ?? 0);
    for (const o of outcome.readers.values()) highWater.set(o.readerId, o.upTo);
    m.commitMs.observe(clock.monotonic() - t0);
    m.commits.observe(items.length);
    m.events.inc(undefined, outcome.inserted);
    m.dedupe.inc(undefined, outcome.duplicates);
    m.conflicts.inc(undefined, outcome.conflicts);
    const readerIds = [...outcome.readers.keys()];
    if (readerIds.length) {
      try {
        opts.onCommitted(readerIds, handed);
      } catch (err) {
        log.error({ err }, 'onCommitted hook threw');
      }
    }
    sendAcks(outcome);
  }

  const trySalvage = (readerId: string, payload: Buffer) => {
    try {
      return salvageBatch(JSON.parse(payload.toString('utf8')) as unknown, readerId);
    } catch {
      return null;
    }
  };

  /** null: screening failed; the batch is neither stored nor acked, so the device resends it. */
  const highWater = new Map<string, number>();
  const highWaterOf = (readerId: string): number | Promise<number> => {
    const hw = highWater.get(readerId);
    if (hw !== undefined) return hw;
    return settle(store.seqState(readerId), (s) => {
      const known = highWater.get(readerId); // a commit may have answered meanwhile
      if (known !== undefined) return known;
      highWater.set(readerId, s.contiguousUpto);
      return s.contiguousUpto;
    });
  };

  // ---- journal epochs (./epochs.ts): one gateway seq space per reader, acks in the device's epoch
  /** Recorded epochs per reader, as last read or written by this instance. */
  const epochRows = new Map<string, EpochRow[]>();
  /** The epoch the reader's next ack speaks of: set when a batch is admitted, cleared by declareLost. */
  const ackPlace = new Map<string, { epoch: string | null; offset: number }>();
  /** Per reader: the batch in flight through an asynchronous epoch step; later batches wait behind it. */
  const chains = new Map<string, Promise<void>>();

  const readRows = (readerId: string): Awaitable<EpochRow[]> =>
    settle(opts.epochs.epochs(readerId), (rows) => {
      epochRows.set(readerId, rows);
      return rows;
    });
  const currentPlace = (readerId: string): Awaitable<{ epoch: string | null; offset: number }> =>
    settle(readRows(readerId), (rows) => {
      const latest = rows[rows.length - 1];
      const pl = latest ? { epoch: latest.epoch, offset: latest.offset } : { epoch: null, offset: 0 };
      ackPlace.set(readerId, pl);
      return pl;
    });

  /** Commits what is queued (and what is being committed) before a reader's journal epoch changes. */
  const drain = (): Awaitable<void> => {
    flush();
    if (committing === null && screening.size === 0) return undefined;
    return (async () => {
      // batches still being screened (asynchronous screen) are queued first
      for (let round = 0; screening.size && round < 10; round++)
        await Promise.allSettled([...screening.values()]);
      flush();
      // two rounds: the commit in flight, then whatever was queued behind it
      for (let round = 0; round < 2 && committing !== null; round++) {
        await committing;
        flush();
      }
    })();
  };

  /**
   * A reader's batches start to come from an epoch not recorded yet: commit what is queued, place the epoch
   * after everything the reader's earlier journal left (or adopt it: epochs.ts), record it durably, and hold
   * what the earlier journal still owed as lost, so pairing continues and the loss is on record.
   */
  const openEpoch = (
    readerId: string,
    epoch: string,
    batch: Pick<EventBatch, 'events' | 'tombstones'>,
  ): Awaitable<EpochPlace> =>
    settle(drain(), () =>
      settle(readRows(readerId), (rows) => {
        const known = placeEpoch(rows, epoch);
        if (known.kind !== 'new') return known; // another instance recorded it meanwhile
        return settle(store.seqState(readerId), (state) =>
          settle(
            offsetForNew(rows, state, batch, () => {
              const seq1 = batch.events.find((e) => e.seq === 1);
              return settle(opts.epochs.storedEvent(readerId, 1), (json) => json === JSON.stringify(seq1));
            }),
            (offset) => {
              const atMs = clock.now();
              return settle(opts.epochs.open(readerId, { epoch, offset, openedAtMs: atMs }), (after) => {
                epochRows.set(readerId, after);
                const place = placeEpoch(after, epoch);
                if (place.kind !== 'current' || place.offset !== offset) return place;
                m.epochs.inc();
                log.warn(
                  { readerId, epoch, offset },
                  offset === 0 && state.maxSeen > 0
                    ? 'journal epoch recorded for the seqs already held (adopted)'
                    : "reader's journal replaced: new journal epoch",
                );
                if (offset === 0 || state.maxSeen <= state.contiguousUpto) return place;
                // what the replaced journal still owed: the missing seqs between its contiguous mark and offset
                return settle(store.gaps(readerId, MAX_LOST_RANGES), (gaps) => {
                  const ranges =
                    gaps.length < MAX_LOST_RANGES ? gaps : [{ from: state.contiguousUpto + 1, to: offset }];
                  const detail = `journal epoch closed: the reader's journal was replaced (epoch ${epoch} starts after gateway seq ${offset}); the old journal never delivered this seq`;
                  const invalid: Array<{ seq: number; detail: string }> = [];
                  for (const r of ranges)
                    for (let seq = r.from; seq <= Math.min(r.to, offset); seq++)
                      invalid.push({ seq, detail });
                  if (!invalid.length) return place;
                  const sentAt = { wallMs: atMs, bootId: 'gateway', monoMs: clock.monotonic(), synced: true };
                  queue.push({ kind: 'events', readerId, events: [], invalid, sentAt, receivedAtMs: atMs });
                  messagesQueued++;
                  m.epochLost.inc(undefined, invalid.length);
                  const extent =
                    ranges
                      .slice(0, 10)
                      .map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`))
                      .join(', ') + (ranges.length > 10 ? ` and ${ranges.length - 10} more ranges` : '');
                  reject(
                    readerId,
                    'epoch-gap',
                    `${invalid.length} seq(s) the replaced journal never delivered (gateway seqs ${extent}) are held as lost`,
                  );
                  return place;
                });
              });
            },
          ),
        );
      }),
    );

  /** Where a batch of `epoch` belongs; opens the epoch when it is new. */
  const resolvePlace = (
    readerId: string,
    epoch: string | null,
    batch: Pick<EventBatch, 'events' | 'tombstones'>,
  ): Awaitable<EpochPlace> => {
    const cached = epochRows.get(readerId);
    const place = (rows: EpochRow[]): Awaitable<EpochPlace> => {
      const p = placeEpoch(rows, epoch);
      return p.kind === 'new' ? openEpoch(readerId, p.epoch, batch) : p;
    };
    return cached ? place(cached) : settle(readRows(readerId), place);
  };

  /**
   * Runs `go` with the batch's epoch place: at once when everything answered synchronously (SQLite), else
   * after the reader's earlier batches (a failed step leaves the batch unacked: the device resends).
   */
  const withPlace = (
    readerId: string,
    epoch: string | null,
    batch: Pick<EventBatch, 'events' | 'tombstones'>,
    go: (place: EpochPlace) => void,
  ): void => {
    const before = chains.get(readerId);
    const run = (): Awaitable<void> => settle(resolvePlace(readerId, epoch, batch), go);
    let p: Promise<void>;
    if (before) {
      p = before.then(run);
    } else {
      const x = run();
      if (!isPromiseLike(x)) return;
      p = x;
    }
    const q: Promise<void> = p
      .catch((err: unknown) =>
        log.error({ err, readerId }, 'journal epoch not resolved; batch not stored, the device resends it'),
      )
      .finally(() => {
        if (chains.get(readerId) === q) chains.delete(readerId);
        admitting.delete(q);
      });
    chains.set(readerId, q);
    admitting.add(q);
  };

  /** The batch's place is known: refuse a closed epoch, else move its seqs in and admit it. */
  const admitPlaced = (
    readerId: string,
    place: EpochPlace,
    parts: {
      events: readonly TapEvent[];
      tombstones?: EventBatch['tombstones'];
      invalid?: ReadonlyArray<{ seq: number; detail: string }>;
      sentAt: EventBatch['sentAt'];
    },
    now: number,
  ): void => {
    if (place.kind === 'closed') {
      reject(
        readerId,
        'epoch-closed',
        `batch of journal epoch ${place.epoch ?? '(legacy, none)'}, which was replaced by epoch ${place.closedBy} at ${new Date(place.closedAtMs).toISOString()}: not taken (is an old copy of the reader's storage running?)`,
      );
      return;
    }
    if (place.kind === 'new') return; // not reached: resolvePlace opens new epochs
    ackPlace.set(readerId, { epoch: place.epoch, offset: place.offset });
    const shifted = shiftIn({ events: [...parts.events], tombstones: parts.tombstones }, place.offset);
    const before = (parts.invalid ?? []).map((x) => ({ seq: x.seq + place.offset, detail: x.detail }));
    const admit = (hw: number): void => {
      const adm = admitBatch(shifted, shifted.events, hw, opts.maxSeqJump ?? DEFAULT_MAX_SEQ_JUMP);
      for (const r of adm.refused) reject(readerId, r.reason, r.detail);
      if (adm.events.length === 0 && adm.held.length === 0 && before.length === 0) return;
      const enqueue = (sc: ScreenResult | null): void => {
        if (!sc) return;
        const invalid = [...before, ...sc.refused, ...adm.held].sort((a, b) => a.seq - b.seq);
        queue.push({
          kind: 'events',
          readerId,
          events: sc.keep,
          ...(invalid.length ? { invalid } : {}),
          sentAt: parts.sentAt,
          receivedAtMs: now,
        });
        messagesQueued++;
        schedule();
      };
      // an asynchronous screen (PostgreSQL) of this reader's earlier batch: this one is screened after it
      const earlier = screening.get(readerId);
      if (earlier === undefined) {
        const sc = screened(readerId, adm.events, now);
        if (!isPromiseLike(sc)) return enqueue(sc); // synchronous (SQLite, or no screen): queued at once
        screenInOrder(readerId, sc, enqueue);
        return;
      }
      screenInOrder(
        readerId,
        earlier.then(() => screened(readerId, adm.events, now)),
        enqueue,
      );
    };
    const hw = highWaterOf(readerId);
    if (!isPromiseLike(hw)) return admit(hw);
    // First batch of this reader since start-up on an asynchronous store: its high-water mark
    // is read once, then cached (a failed read leaves the batch unacked: the device resends).
    const p = hw
      .then(admit)
      .catch((err: unknown) =>
        log.error({ err, readerId }, 'high-water mark not read; batch not stored, the device resends it'),
      )
      .finally(() => admitting.delete(p));
    admitting.add(p);
  };

  const cardKeys = opts.fleetKey ? new GatewayCardKeys(opts.fleetKey, opts.retiredFleetKeys) : null;
  const sealedCards = metrics.counter(
    'visittag_ingest_sealed_cards_total',
    'Sealed cards (sealed-v1 readers) opened at ingest, by outcome (unsealed, refused).',
  );
  /**
   * Per reader, the batch being screened asynchronously (PostgreSQL): the reader's next batch is screened
   * and queued after it, so its verdicts see this one's and its acks follow in order.
   */
  const screening = new Map<string, Promise<void>>();
  const screenInOrder = (
    readerId: string,
    sc: Promise<ScreenResult | null>,
    enqueue: (sc: ScreenResult | null) => void,
  ): void => {
    const q: Promise<void> = sc
      .then(enqueue, (err: unknown) =>
        log.error({ err, readerId }, 'event screening failed; batch not stored, the device resends it'),
      )
      .finally(() => {
        if (screening.get(readerId) === q) screening.delete(readerId);
        admitting.delete(q);
      });
    screening.set(readerId, q);
    admitting.add(q);
  };

  const screened = (
    readerId: string,
    events: readonly TapEvent[],
    now: number,
  ): ScreenResult | null | Promise<ScreenResult | null> => {
    let opened: ScreenResult = { keep: [...events], refused: [] };
    if (events.some((e) => e.sealedCard !== undefined)) {
      if (!cardKeys) {
        opened = { keep: events.filter((e) => e.sealedCard === undefined), refused: [] };
        for (const e of events)
          if (e.sealedCard !== undefined)
            opened.refused.push({ seq: e.seq, detail: 'sealed card refused: this gateway has no card keys' });
      } else {
        try {
          opened = unsealEvents(
            cardKeys,
            readerId,
            events,
            (outcome) => sealedCards.inc({ outcome }),
            (uids) => {
              try {
                opts.cardVault?.learn(uids);
              } catch (err) {
                log.warn({ err, readerId }, "card UIDs not kept for the sealed readers' card lists");
              }
            },
          );
        } catch (err) {
          log.error({ err, readerId }, 'sealed cards not opened; batch not stored, the device resends it');
          return null;
        }
      }
    }
    if (!opts.screen) return opened;
    const join = (sc: ScreenResult): ScreenResult =>
      opened.refused.length ? { keep: sc.keep, refused: [...opened.refused, ...sc.refused] } : sc;
    try {
      const sc = opts.screen(readerId, opened.keep, now);
      return isPromiseLike(sc) ? sc.then(join) : join(sc); // a rejection: logged by screenInOrder
    } catch (err) {
      log.error({ err, readerId }, 'event screening failed; batch not stored, the device resends it');
      return null;
    }
  };

  const handle = (msg: InboundMessage): void => {
    try {
      const { readerId, leaf } = msg;
      const now = clock.now();
      countMessage(leaf);
      // the embedded broker checked the reader for this very publish (authorizePublish)
      const admission = msg.admitted === true ? 'active' : opts.admission(readerId);
      if (admission !== 'active') {
        reject(admission === 'revoked' ? readerId : null, `${admission}-reader`, `message on ${leaf}`);
        return;
      }
      live.seen(readerId, now);
      switch (leaf) {
        case 'events': {
          const d = decode('events', readerId, msg.payload);
          if (!d.ok) {
            const salvaged = d.reason === 'invalid-payload' ? trySalvage(readerId, msg.payload) : null;
            if (!salvaged) return reject(readerId, d.reason, d.detail);
            for (const bad of salvaged.invalid)
              reject(readerId, 'invalid-event', `seq ${bad.seq}: ${bad.detail}`);
            live.batch(readerId, salvaged.sentAt, now);
            const parts = {
              events: salvaged.valid,
              ...(salvaged.tombstones ? { tombstones: salvaged.tombstones } : {}),
              invalid: salvaged.invalid,
              sentAt: salvaged.sentAt,
            };
            withPlace(readerId, salvaged.epoch, parts, (place) => admitPlaced(readerId, place, parts, now));
            return;
          }
          live.batch(readerId, d.value.sentAt, now);
          const batch = d.value;
          withPlace(readerId, batch.epoch ?? null, batch, (place) =>
            admitPlaced(readerId, place, batch, now),
          );
          return;
        }
        case 'status': {
          const d = decode('status', readerId, msg.payload);
          if (!d.ok) return reject(readerId, d.reason, d.detail);
          live.status(readerId, d.value, now);
          queue.push({ kind: 'status', readerId, status: d.value, receivedAtMs: now });
          schedule();
          return;
        }
        case 'command-results': {
          const d = decode('command-results', readerId, msg.payload);
          if (!d.ok) return reject(readerId, d.reason, d.detail);
          live.commandResult(readerId, d.value);
          queue.push({ kind: 'command-result', readerId, result: d.value, receivedAtMs: now });
          schedule();
          return;
        }
        case 'acks':
        case 'config':
        case 'commands':
          return reject(readerId, 'wrong-direction', `readers do not publish ${leaf}`);
      }
    } catch (err) {
      log.error({ err }, 'ingest handler failed');
    }
  };

  return {
    handle,
    flush,
    pending: () => queue.length,
    declareLost(readerId, ranges, detail) {
      ackPlace.delete(readerId); // the ack reads the reader's current epoch first
      const invalid: Array<{ seq: number; detail: string }> = [];
      for (const r of ranges) for (let seq = r.from; seq <= r.to; seq++) invalid.push({ seq, detail });
      if (!invalid.length) return;
      const now = clock.now();
      const sentAt = { wallMs: now, bootId: 'gateway', monoMs: clock.monotonic(), synced: true };
      queue.push({ kind: 'events', readerId, events: [], invalid, sentAt, receivedAtMs: now });
      messagesQueued++;
      flush();
    },
    async stop() {
      // a batch may wait on its epoch, then on its high-water mark: each step adds the next one
      for (let round = 0; admitting.size && round < 10; round++) await Promise.allSettled([...admitting]);
      flush();
      while (committing) {
        await committing;
        flush();
      }
      if (inflight.size) await Promise.race([Promise.allSettled([...inflight]), sleep(clock, 3000)]);
    },
  };
}
