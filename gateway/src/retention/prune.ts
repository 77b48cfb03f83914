import type pino from 'pino';
import type { Clock, TimerHandle } from '../../../protocol/index.js';
import type { MetricsRegistry } from '../metrics.js';
import { zeroCounts, type Pruner } from '../store/retention.js';
import { RETENTION_CLASSES, type RetentionSettings } from './policy.js';

export { zeroCounts, type PruneCounts, type Pruner } from '../store/retention.js';

export interface RetentionJobOptions {
  /** What is past retention, deleted in bounded batches (store/sqlite/retention.ts `createPruner`). */
  pruner: Pruner;
  clock: Clock;
  settings: RetentionSettings;
  logger: pino.Logger;
  metrics?: MetricsRegistry;
  /** After closed visits were deleted (the running gateway drops its in-memory visit index). */
  onVisitsDeleted?: () => void;
  /** Transactions per timer turn before yielding to I/O (default 10). */
  batchesPerTurn?: number;
}

/**
 * The periodic retention job on the injected clock: every `intervalMinutes` it deletes what is past retention,
 * `batchesPerTurn` transactions at a time, yielding (a 0 ms timer on the same clock) between turns.
 */
export class RetentionJob {
  private timer: TimerHandle | null = null;
  private readonly log: pino.Logger;
  private readonly counter;
  private running = false;
  private current = zeroCounts();
  constructor(private readonly o: RetentionJobOptions) {
    this.log = o.logger.child({ module: 'retention' });
    this.counter = o.metrics?.counter(
      'visittag_retention_deleted_total',
      'Rows deleted by the retention job, by data class.',
    );
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(60_000);
  }

  stop(): void {
    this.running = false;
    if (this.timer !== null) this.o.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = this.o.clock.setTimeout(() => this.turn(), ms);
  }

  private turn(): void {
    this.timer = null;
    if (!this.running || !this.o.pruner.isOpen()) return;
    let more = false;
    try {
      const r = this.o.pruner.step(this.o.clock.now(), this.o.batchesPerTurn ?? 10);
      more = r.more;
      for (const c of RETENTION_CLASSES) {
        if (r.deleted[c] > 0) this.counter?.inc({ class: c }, r.deleted[c]);
        this.current[c] += r.deleted[c];
      }
      if (r.deleted.visits > 0) this.o.onVisitsDeleted?.();
    } catch (err) {
      this.log.error({ err }, 'retention run failed; retried at the next interval');
    }
    if (more) return this.schedule(0);
    if (RETENTION_CLASSES.some((c) => this.current[c] > 0)) {
      this.log.info({ deleted: this.current }, 'retention run: rows past their retention deleted');
    }
    this.current = zeroCounts();
    this.schedule(this.o.settings.intervalMinutes * 60_000);
  }
}
