import type pino from 'pino';
import type { Clock, TimerHandle } from '../../../protocol/index.js';
import type { MetricsRegistry } from '../metrics.js';
import { ANCHOR_SCAN_KEY } from '../store/rows.js';
import type { Db } from '../store/sqlite/db.js';
import { daysOf, RETENTION_CLASSES, type RetentionClass, type RetentionSettings } from './policy.js';
import { hasTable, withoutTriggers } from './sql.js';

const DAY_MS = 86_400_000;

/** Rows deleted per class (and table) in one run. */
export type PruneCounts = Record<RetentionClass, number>;

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

export const zeroCounts = (): PruneCounts =>
  Object.fromEntries(RETENTION_CLASSES.map((c) => [c, 0])) as PruneCounts;

export interface Pruner {
  /**
   * One bounded step: at most `maxBatches` transactions of at most `batchRows` rows each. `more` is true when
   * some class still has rows past retention (call again after yielding).
   */
  step(nowMs: number, maxBatches: number): { deleted: PruneCounts; more: boolean };
  /** Steps until nothing is past retention (bounded by `maxSteps`): the CLI and tests. */
  runAll(nowMs: number, maxSteps?: number): PruneCounts;
}

/** `only`: the tables to prune (PostgreSQL mode prunes the instance's own SQLite audit_log only). */
export function createPruner(db: Db, settings: RetentionSettings, only?: readonly string[]): Pruner {
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

export interface RetentionJobOptions {
  db: Db;
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
  private readonly pruner: Pruner;
  private readonly log: pino.Logger;
  private readonly counter;
  private running = false;
  private current = zeroCounts();
  constructor(private readonly o: RetentionJobOptions) {
    this.pruner = createPruner(o.db, o.settings);
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
    if (!this.running || !this.o.db.open) return;
    let more = false;
    try {
      const r = this.pruner.step(this.o.clock.now(), this.o.batchesPerTurn ?? 10);
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
