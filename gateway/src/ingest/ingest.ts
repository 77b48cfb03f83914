import type pino from 'pino';
import {
  decode,
  encode,
  LIMITS,
  sleep,
  topics,
  type Ack,
  type Clock,
  type TapEvent,
  type TimerHandle,
} from '../../../protocol/index.js';
import type { InboundMessage } from '../broker/transport.js';
import type { MetricsRegistry } from '../metrics.js';
import { isPromiseLike, settle } from '../store/awaitable.js';
import type { CommitOutcome, IngestItem, IngestLog } from '../store/ingest-store.js';
import type { ReaderLiveView } from './reader-view.js';
import { admitBatch, DEFAULT_MAX_SEQ_JUMP, RejectLogLimiter } from './limits.js';
import { salvageBatch } from './salvage.js';

export type ReaderAdmission = 'active' | 'revoked' | 'unknown';

export interface IngestOptions {
  /** The event log (store port): SQLite answers synchronously, PostgreSQL with a Promise. */
  store: IngestLog;
  clock: Clock;
  logger: pino.Logger;
  metrics: MetricsRegistry;
  live: ReaderLiveView;
  groupCommitMs: number;
  groupCommitMax: number;
  admission: (readerId: string) => ReaderAdmission;
  publish: (topic: string, payload: Buffer) => Promise<void>;
  /** After each durable group commit, before the acks go out. Never throws. */
  onCommitted: (readerIds: string[]) => void;
  /**
   * Screens a batch's valid events before they are queued (secure cards, gateway/src/secure-cards):
   * events it refuses are held as rejected (acked `invalid-event` with the detail) and never become
   * visits. Absent: every valid event is kept.
   */
  screen?: (readerId: string, events: readonly TapEvent[], atMs: number) => ScreenResult;
  /** A seq more than this above the reader's high-water mark is refused, not held (default 1,000,000). */
  maxSeqJump?: number;
  /** Reject log lines per (reader, reason) per minute before they are only counted (default 10). */
  rejectLogPerMinute?: number;
}

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

  const schedule = () => {
    if (messagesQueued >= opts.groupCommitMax || opts.groupCommitMs === 0) {
      flush();
      return;
    }
    if (timer === null) timer = clock.setTimeout(flush, opts.groupCommitMs);
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
      let payload: Buffer;
      try {
        payload = encode('acks', ack);
      } catch (err) {
        log.error({ readerId: o.readerId, err }, 'could not encode an ack');
        continue;
      }
      const p = opts
        .publish(topics.acks(o.readerId), payload)
        .then(
          () => m.acks.inc(),
          (err: unknown) => log.warn({ readerId: o.readerId, err }, 'ack publish failed; the device resends'),
        )
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
  };

  function flush(): void {
    if (timer !== null) {
      clock.clearTimeout(timer);
      timer = null;
    }
    if (committing) return; // the commit in flight flushes again when it is done
    if (queue.length === 0) return;
    const items = queue;
    queue = [];
    messagesQueued = 0;
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
      committed(answer, items.length, t0);
      return;
    }
    const p = answer
      .then((o) => committed(o, items.length, t0), failed)
      .finally(() => {
        committing = null;
        if (queue.length > 0) flush();
      });
    committing = p;
  }

  /** After a durable commit: high-water marks, metrics, the visits hook, then the acks. */
  function committed(outcome: CommitOutcome, items: number, t0: number): void {
    for (const o of outcome.readers.values()) highWater.set(o.readerId, o.upTo);
    m.commitMs.observe(clock.monotonic() - t0);
    m.commits.observe(items);
    m.events.inc(undefined, outcome.inserted);
    m.dedupe.inc(undefined, outcome.duplicates);
    m.conflicts.inc(undefined, outcome.conflicts);
    const readerIds = [...outcome.readers.keys()];
    if (readerIds.length) {
      try {
        opts.onCommitted(readerIds);
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

  const screened = (readerId: string, events: readonly TapEvent[], now: number): ScreenResult | null => {
    if (!opts.screen) return { keep: [...events], refused: [] };
    try {
      return opts.screen(readerId, events, now);
    } catch (err) {
      log.error({ err, readerId }, 'event screening failed; batch not stored, the device resends it');
      return null;
    }
  };

  const handle = (msg: InboundMessage): void => {
    try {
      const { readerId, leaf } = msg;
      const now = clock.now();
      m.messages.inc({ leaf });
      const admission = opts.admission(readerId);
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
            const sc = screened(readerId, salvaged.valid, now);
            if (!sc) return;
            queue.push({
              kind: 'events',
              readerId,
              events: sc.keep,
              invalid: [...salvaged.invalid, ...sc.refused].sort((a, b) => a.seq - b.seq),
              sentAt: salvaged.sentAt,
              receivedAtMs: now,
            });
            messagesQueued++;
            schedule();
            return;
          }
          live.batch(readerId, d.value.sentAt, now);
          const batch = d.value;
          const admit = (hw: number): void => {
            const adm = admitBatch(batch, batch.events, hw, opts.maxSeqJump ?? DEFAULT_MAX_SEQ_JUMP);
            for (const r of adm.refused) reject(readerId, r.reason, r.detail);
            if (adm.events.length === 0 && adm.held.length === 0) return;
            const sc = screened(readerId, adm.events, now);
            if (!sc) return;
            const invalid = [...sc.refused, ...adm.held].sort((a, b) => a.seq - b.seq);
            queue.push({
              kind: 'events',
              readerId,
              events: sc.keep,
              ...(invalid.length ? { invalid } : {}),
              sentAt: batch.sentAt,
              receivedAtMs: now,
            });
            messagesQueued++;
            schedule();
          };
          const hw = highWaterOf(readerId);
          if (!isPromiseLike(hw)) return admit(hw);
          // First batch of this reader since start-up on an asynchronous store: its high-water mark
          // is read once, then cached (a failed read leaves the batch unacked: the device resends).
          const p = hw
            .then(admit)
            .catch((err: unknown) =>
              log.error(
                { err, readerId },
                'high-water mark not read; batch not stored, the device resends it',
              ),
            )
            .finally(() => admitting.delete(p));
          admitting.add(p);
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
      if (admitting.size) await Promise.allSettled([...admitting]);
      flush();
      while (committing) {
        await committing;
        flush();
      }
      if (inflight.size) await Promise.race([Promise.allSettled([...inflight]), sleep(clock, 3000)]);
    },
  };
}
