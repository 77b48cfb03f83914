import type pino from 'pino';
import { backoffDelay, sleep } from '../../../protocol/index.js';
import type { Clock } from '../../../protocol/index.js';
import type { Counter, Histogram } from '../metrics.js';
import type { OutboxRow, OutboxStore } from '../store/ports.js';
import { postBatch } from './post.js';
import type { BackendSettings, SendOutcome } from './post.js';

export { parseRetryAfter } from './post.js';
export type { BackendSettings, SendOutcome } from './post.js';

export interface ForwarderMetrics {
  delivered: Counter;
  retried: Counter;
  deadLettered: Counter;
  latency: Histogram;
}

export interface ForwarderOptions {
  outbox: OutboxStore;
  backend: BackendSettings;
  clock: Clock;
  random: () => number;
  logger: pino.Logger;
  fetch: typeof fetch;
  metrics: ForwarderMetrics;
  /** Safety poll when idle (default 5000 ms); new outbox rows wake the loop at once. */
  idlePollMs?: number;
  /** Longest Retry-After honoured (default 1 h). */
  maxRetryAfterMs?: number;
  /**
   * Delivered rows are deleted by the forwarder itself after this long, checked at most hourly when idle.
   * Unset (the gateway's wiring, both engines): the forwarder deletes nothing, and delivered rows go by the
   * retention job's `retention.outboxDeliveredDays` (docs/retention.md; 'keep' keeps them).
   */
  deliveredRetentionMs?: number;
}

export type TickResult =
  { kind: 'idle' } | { kind: 'sent'; delivered: number; dead: number } | { kind: 'backoff'; delayMs: number };

export interface ForwarderStatus {
  consecutiveFailures: number;
  lastError: string | null;
  lastDeliveredAtMs: number | null;
  nextAttemptAtMs: number | null;
}

/**
 * Delivers the outbox to the planning backend: signed `WebhookBatch`es in outbox order, one
 * Idempotency-Key per event (inside the batch) and per batch (header, = batch id). Network errors,
 * timeouts, 408/425/429/5xx back off (capped exponential with jitter, Retry-After honoured) and
 * resend the same batch; any other 4xx re-sends the batch one event at a time, so only the refused
 * event goes to the dead letters. Runs as its own async loop: never inside an ingest transaction.
 * Talks to the outbox through its port (one await per claim or mark); on PostgreSQL several instances
 * forward the same outbox, each claim holding its rows for `leaseMs` (long enough for a refused batch
 * to be re-sent one event at a time).
 */
export class Forwarder {
  private readonly o: ForwarderOptions;
  private readonly log: pino.Logger;
  private readonly stopper = new AbortController();
  private waker = new AbortController();
  private loop: Promise<void> | null = null;
  private attempt = 0;
  private lastPruneMs: number | null = null;
  private readonly st: ForwarderStatus = {
    consecutiveFailures: 0,
    lastError: null,
    lastDeliveredAtMs: null,
    nextAttemptAtMs: null,
  };

  constructor(opts: ForwarderOptions) {
    this.o = opts;
    this.log = opts.logger.child({ module: 'forwarder' });
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    await this.loop;
  }

  /** New rows or a re-drive: cut an idle wait short (never a backoff). */
  wake(): void {
    this.waker.abort();
  }

  status(): ForwarderStatus {
    return { ...this.st };
  }

  private async run(): Promise<void> {
    const signal = this.stopper.signal;
    for (let i = 0; !signal.aborted && i < Number.MAX_SAFE_INTEGER; i++) {
      try {
        const r = await this.tick();
        if (r.kind === 'idle') {
          const waker = this.waker;
          if (!waker.signal.aborted) {
            await sleep(this.o.clock, this.o.idlePollMs ?? 5000, [signal, waker.signal]);
          }
          if (this.waker === waker) this.waker = new AbortController();
        } else if (r.kind === 'backoff') {
          await sleep(this.o.clock, r.delayMs, signal);
        }
      } catch (err) {
        this.log.error({ err }, 'forwarder step failed');
        await sleep(this.o.clock, this.o.backend.backoff.capMs, signal);
      }
    }
  }

  /** One step: send the next batch (isolating a refused event). Exposed for tests. */
  async tick(): Promise<TickResult> {
    const { outbox } = this.o;
    if (this.waker.signal.aborted) this.waker = new AbortController();
    await this.block();
    const { batchMax, timeoutMs } = this.o.backend;
    const batch = await outbox.claim(batchMax, this.o.clock.now(), (batchMax + 1) * timeoutMs);
    const rows: OutboxRow[] = [];
    for (const row of batch) if (await this.readable(row)) rows.push(row);
    if (rows.length < batch.length) return { kind: 'sent', delivered: 0, dead: batch.length - rows.length };
    if (rows.length === 0) {
      await this.prune();
      return { kind: 'idle' };
    }
    const r = await this.send(rows);
    if (r.kind === 'delivered') return this.delivered(rows, r.status);
    if (r.kind === 'retry') return this.retry(rows, r);
    if (rows.length === 1) return this.dead(rows, r);
    // A refused batch: find the refused event(s) by sending one at a time, in order.
    let delivered = 0;
    let dead = 0;
    const deadVisits = new Set<string>();
    for (const row of rows) {
      if (this.stopper.signal.aborted) break;
      if (row.visitId !== null && deadVisits.has(row.visitId)) {
        dead += await this.block();
        continue;
      }
      const one = await this.send([row]);
      if (one.kind === 'retry') return this.retry([row], one);
      if (one.kind === 'delivered') {
        await this.delivered([row], one.status);
        delivered++;
      } else {
        await this.dead([row], one);
        if (row.visitId !== null) deadVisits.add(row.visitId);
        dead++;
      }
    }
    return { kind: 'sent', delivered, dead };
  }

  /** A row whose stored JSON no longer parses (disk corruption) is dead-lettered, never retried forever. */
  private async readable(row: OutboxRow): Promise<boolean> {
    try {
      JSON.parse(row.eventJson);
      return true;
    } catch {
      await this.dead([row], { kind: 'dead-letter', status: 0, error: 'stored event is not valid JSON' });
      return false;
    }
  }

  private async prune(): Promise<void> {
    if (this.o.deliveredRetentionMs === undefined) return; // the retention job's (outboxDeliveredDays)
    const now = this.o.clock.now();
    if (this.lastPruneMs !== null && now - this.lastPruneMs < 3_600_000) return;
    this.lastPruneMs = now;
    const n = await this.o.outbox.pruneDelivered(now - this.o.deliveredRetentionMs);
    if (n > 0) this.log.info({ rows: n }, 'pruned delivered outbox rows');
  }

  /** Dead-letters pending rows queued behind a dead row of the same visit (start before end). */
  private async block(): Promise<number> {
    const n = await this.o.outbox.blockBehindDead(this.o.clock.now());
    if (n > 0) this.o.metrics.deadLettered.inc(undefined, n);
    return n;
  }

  private async delivered(rows: OutboxRow[], status: number): Promise<TickResult> {
    const now = this.o.clock.now();
    await this.o.outbox.markDelivered(
      rows.map((r) => r.id),
      now,
      status,
    );
    this.o.metrics.delivered.inc(undefined, rows.length);
    this.attempt = 0;
    Object.assign(this.st, { consecutiveFailures: 0, lastDeliveredAtMs: now, nextAttemptAtMs: null });
    return { kind: 'sent', delivered: rows.length, dead: 0 };
  }

  private async retry(rows: OutboxRow[], r: Extract<SendOutcome, { kind: 'retry' }>): Promise<TickResult> {
    await this.o.outbox.recordFailure(
      rows.map((x) => x.id),
      r.status,
      r.error,
    );
    this.o.metrics.retried.inc(undefined, rows.length);
    const backoff = backoffDelay(this.attempt, { ...this.o.backend.backoff, random: this.o.random });
    this.attempt++;
    const delayMs = Math.max(backoff, Math.min(r.retryAfterMs ?? 0, this.o.maxRetryAfterMs ?? 3_600_000));
    this.st.consecutiveFailures++;
    this.st.lastError = r.error;
    this.st.nextAttemptAtMs = this.o.clock.now() + delayMs;
    this.log.warn(
      { status: r.status, error: r.error, events: rows.length, delayMs },
      'backend delivery failed; backing off',
    );
    return { kind: 'backoff', delayMs };
  }

  private async dead(
    rows: OutboxRow[],
    r: Extract<SendOutcome, { kind: 'dead-letter' }>,
  ): Promise<TickResult> {
    const now = this.o.clock.now();
    for (const row of rows) await this.o.outbox.markDead(row.id, now, r.status, r.error);
    this.o.metrics.deadLettered.inc(undefined, rows.length);
    this.st.lastError = r.error;
    this.log.error(
      { status: r.status, keys: rows.map((x) => x.idempotencyKey) },
      'backend refused an event; moved to the dead letters',
    );
    return { kind: 'sent', delivered: 0, dead: rows.length };
  }

  private send(rows: OutboxRow[]): Promise<SendOutcome> {
    return postBatch({
      rows,
      backend: this.o.backend,
      clock: this.o.clock,
      fetch: this.o.fetch,
      stop: this.stopper.signal,
      latency: this.o.metrics.latency,
      logger: this.log,
    });
  }
}
