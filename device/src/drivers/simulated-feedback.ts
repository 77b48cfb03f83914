import { systemClock } from '../../../protocol/index.js';
import type { Clock } from '../../../protocol/index.js';
import type { Feedback, FeedbackPattern, SignalOptions } from '../ports/feedback.js';

export interface SignalRecord {
  pattern: FeedbackPattern;
  atMonoMs: number;
  /** false: shown without sound (feedback mode quiet/silent). */
  sound: boolean;
}

export interface SimulatedFeedbackOptions {
  clock?: Clock;
  /** Called for every signal, after it is recorded. A throwing listener never breaks `signal()`. */
  onSignal?: (s: SignalRecord) => void;
  /** Fault hook: throw to simulate a broken LED/buzzer (reported via lastError). */
  signalFn?: (pattern: FeedbackPattern) => void | Promise<void>;
  /** Keep at most this many records (default 10,000; oldest dropped). */
  maxRecords?: number;
}

/** Feedback without hardware: records what a worker would have seen and heard. */
export class SimulatedFeedback implements Feedback {
  readonly signals: SignalRecord[] = [];
  onSignal: ((s: SignalRecord) => void) | undefined;
  private readonly clock: Clock;
  private readonly opts: SimulatedFeedbackOptions;
  private error: string | null = null;
  private running = false;

  constructor(opts: SimulatedFeedbackOptions = {}) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.onSignal = opts.onSignal;
  }

  get lastError(): string | null {
    return this.error;
  }

  get started(): boolean {
    return this.running;
  }

  start(): Promise<void> {
    this.running = true;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.running = false;
    return Promise.resolve();
  }

  async signal(pattern: FeedbackPattern, opts: SignalOptions = {}): Promise<void> {
    try {
      await this.opts.signalFn?.(pattern);
      this.error = null;
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      return;
    }
    const rec = { pattern, atMonoMs: Math.floor(this.clock.monotonic()), sound: opts.sound !== false };
    this.signals.push(rec);
    const max = this.opts.maxRecords ?? 10_000;
    if (this.signals.length > max) this.signals.splice(0, this.signals.length - max);
    try {
      this.onSignal?.(rec);
    } catch {
      // a listener's bug is not a feedback fault
    }
  }
}
