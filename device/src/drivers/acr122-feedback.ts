import type { Logger } from 'pino';
import { sleep } from '../../../protocol/index.js';
import type { Clock } from '../../../protocol/index.js';
import type { Feedback, FeedbackPattern, SignalOptions } from '../ports/feedback.js';
import {
  ACR122_PATTERNS,
  STEP_PATTERNS,
  acr1252Buzzer,
  acr1252Led,
  muted,
  mutedAcr122,
  runSteps,
} from './pcsc-patterns.js';
import type { Step } from './pcsc-patterns.js';

export type ReaderLedDialect = 'acr122' | 'acr1252' | 'auto';

export interface Acr122FeedbackOptions {
  logger: Logger;
  clock: Clock;
  /** The card reader's escape channel (NfcPcscCardReader), optionally with its PC/SC name. */
  reader: { escape(apdu: Buffer): Promise<Buffer>; readonly readerName?: string | null };
  /**
   * Command set: 'acr122' (one FF 00 40 pseudo-APDU per pattern; ACR122U and readers that accept
   * it), 'acr1252' (E0 00 00 29/28 escapes, stepped by the driver), 'auto' (default: by reader name).
   */
  dialect?: ReaderLedDialect;
  /** How long signal() waits for the reader to take the command before returning (default 50 ms). */
  acceptWaitMs?: number;
}

/** Feedback on the card reader's own LED and buzzer (ACR122U / ACR1252U class), via PC/SC escapes. */
export function createAcr122Feedback(opts: Acr122FeedbackOptions): Feedback {
  return new Acr122Feedback(opts);
}

class Acr122Feedback implements Feedback {
  private readonly log: Logger;
  private running = false;
  private error: string | null = null;
  private cancel: (() => void) | null = null;

  constructor(private readonly opts: Acr122FeedbackOptions) {
    this.log = opts.logger.child({ module: 'acr122-feedback' });
  }

  get lastError(): string | null {
    return this.error;
  }

  start(): Promise<void> {
    this.running = true;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.running = false;
    this.cancel?.();
    this.cancel = null;
    return Promise.resolve();
  }

  private dialect(): 'acr122' | 'acr1252' {
    const d = this.opts.dialect ?? 'auto';
    if (d !== 'auto') return d;
    return /acr1252/i.test(this.opts.reader.readerName ?? '') ? 'acr1252' : 'acr122';
  }

  async signal(pattern: FeedbackPattern, opts: SignalOptions = {}): Promise<void> {
    const sound = opts.sound !== false;
    if (!this.running) {
      this.error = 'feedback not started';
      return;
    }
    this.cancel?.();
    this.cancel = null;
    if (this.dialect() === 'acr1252') {
      const steps = sound ? STEP_PATTERNS[pattern] : muted(STEP_PATTERNS[pattern]);
      let first: Promise<void> | null = null;
      this.cancel = runSteps(this.opts.clock, steps, (s) => {
        const sent = this.applyAcr1252(s);
        first ??= sent;
      });
      await this.accepted(first ?? Promise.resolve());
      return;
    }
    const apdu = ACR122_PATTERNS[pattern];
    await this.accepted(this.send(sound ? apdu : mutedAcr122(apdu), pattern));
  }

  /** Waits until the command was taken or failed, at most acceptWaitMs: a tap never waits on a pattern. */
  private async accepted(sent: Promise<void>): Promise<void> {
    const ac = new AbortController();
    await Promise.race([sent, sleep(this.opts.clock, this.opts.acceptWaitMs ?? 50, ac.signal)]);
    ac.abort();
  }

  private applyAcr1252(s: Step | null): Promise<void> {
    const led = this.send(acr1252Led(s?.green ?? false, s?.red ?? false), 'led');
    if (s?.buzzer) return Promise.all([led, this.send(acr1252Buzzer(s.ms), 'buzzer')]).then(() => undefined);
    return led;
  }

  /** Sends one command; never rejects (failures land in lastError and the log). */
  private async send(apdu: Buffer, what: string): Promise<void> {
    try {
      const res = await this.opts.reader.escape(apdu);
      // ACR122 answers 90 xx (xx = LED state); ACR1252 escapes echo E1 00 00 …
      if (res.length > 0 && res[0] !== 0x90 && res[0] !== 0xe1) {
        throw new Error(`reader refused the LED/buzzer command (${res.toString('hex')})`);
      }
      this.error = null;
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      this.log.warn({ err, what }, 'reader LED/buzzer command failed');
    }
  }
}
