import type { Feedback, FeedbackPattern, SignalOptions } from '../ports/feedback.js';

/** How each pattern looks on a terminal (mirrors the LED/buzzer table in device/README.md). */
export const CONSOLE_PATTERNS: Record<FeedbackPattern, string> = {
  'visit-started': '[GREEN ▮] beep          visit started',
  'visit-ended': '[GREEN ▮▮] beep-beep    visit ended',
  repeat: '[GREEN ▯] blip          already registered',
  rejected: '[RED ▮▮▮] buzz          card not accepted',
  'fault-reader': '[RED ~ ] slow blink    reader fault',
  'fault-storage': '[RED ▮▯▮] buzz-buzz   storage full',
  identify: '[GREEN/RED ~] blink      identify',
};

export interface ConsoleFeedbackOptions {
  /** Where lines go (default process.stderr, so stdout stays free for machine output). */
  write?: (line: string) => void;
}

/** Prints each pattern as a line: for a developer at a terminal. */
export class ConsoleFeedback implements Feedback {
  private readonly write: (line: string) => void;
  private error: string | null = null;

  constructor(opts: ConsoleFeedbackOptions = {}) {
    this.write = opts.write ?? ((line) => process.stderr.write(`${line}\n`));
  }

  get lastError(): string | null {
    return this.error;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  signal(pattern: FeedbackPattern, opts: SignalOptions = {}): Promise<void> {
    try {
      this.write(`${CONSOLE_PATTERNS[pattern]}${opts.sound === false ? ' (no sound)' : ''}`);
      this.error = null;
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    }
    return Promise.resolve();
  }
}
