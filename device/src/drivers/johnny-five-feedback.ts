import type { Logger } from 'pino';
import type { Board as J5Board, Led as J5Led } from 'johnny-five';
import { sleep } from '../../../protocol/index.js';
import type { Clock } from '../../../protocol/index.js';
import type { Feedback, FeedbackPattern, SignalOptions } from '../ports/feedback.js';
import { STEP_PATTERNS, muted, runSteps } from './pcsc-patterns.js';
import type { Step } from './pcsc-patterns.js';

export interface JohnnyFiveFeedbackOptions {
  logger: Logger;
  clock: Clock;
  /** An IO plugin instance: new RaspiIO() (Pi 1-4), a pigpio-io, or mock-firmata in tests. */
  io: unknown;
  /**
   * GPIO pins in the IO plugin's naming. `buzzer` drives an ACTIVE buzzer module (it beeps while the
   * pin is high); a passive piezo needs a tone generator, which JavaScript cannot time on a Pi.
   */
  pins: { green: string | number; red: string | number; buzzer?: string | number };
  /** Give up start() when the IO plugin is not ready after this long (default 10 s). */
  readyTimeoutMs?: number;
  /** Loads johnny-five (default `import('johnny-five')`). */
  johnnyFive?: () => Promise<unknown>;
}

type J5 = { Board: typeof J5Board; Led: typeof J5Led };

/** Feedback on GPIO LEDs and a buzzer through johnny-five and an injected IO plugin. */
export function createJohnnyFiveFeedback(opts: JohnnyFiveFeedbackOptions): Feedback {
  return new JohnnyFiveFeedback(opts);
}

class JohnnyFiveFeedback implements Feedback {
  private readonly log: Logger;
  private outputs: { green: J5Led; red: J5Led; buzzer: J5Led | null } | null = null;
  private cancel: (() => void) | null = null;
  private error: string | null = null;

  constructor(private readonly opts: JohnnyFiveFeedbackOptions) {
    this.log = opts.logger.child({ module: 'johnny-five-feedback' });
  }

  get lastError(): string | null {
    return this.error;
  }

  async start(): Promise<void> {
    if (this.outputs) return;
    const mod = (await (this.opts.johnnyFive ?? (() => import('johnny-five')))()) as Partial<J5> & {
      default?: J5;
    };
    const { Board, Led } = mod.Board ? (mod as J5) : (mod.default as J5);
    const board = new Board({ io: this.opts.io, repl: false, debug: false, sigint: false });
    const ac = new AbortController();
    const outcome = await Promise.race([
      new Promise<'ready' | Error>((resolve) => {
        board.on('ready', () => resolve('ready'));
        board.on('error', (e: unknown) => resolve(e instanceof Error ? e : new Error(String(e))));
      }),
      sleep(this.opts.clock, this.opts.readyTimeoutMs ?? 10_000, ac.signal).then(() => 'timeout' as const),
    ]);
    ac.abort();
    if (outcome !== 'ready') {
      const why = outcome === 'timeout' ? 'the IO plugin did not become ready' : outcome.message;
      throw new Error(`johnny-five feedback cannot start: ${why} (check feedback.ioPlugin and the Pi model)`);
    }
    const { pins } = this.opts;
    this.outputs = {
      green: new Led({ pin: pins.green, board }),
      red: new Led({ pin: pins.red, board }),
      buzzer: pins.buzzer === undefined ? null : new Led({ pin: pins.buzzer, board }),
    };
    this.apply(null);
    this.log.info({ pins }, 'GPIO feedback ready');
  }

  stop(): Promise<void> {
    this.cancel?.();
    this.cancel = null;
    if (this.outputs) this.apply(null);
    this.outputs = null;
    return Promise.resolve();
  }

  signal(pattern: FeedbackPattern, opts: SignalOptions = {}): Promise<void> {
    if (!this.outputs) {
      this.error = 'feedback not started';
      return Promise.resolve();
    }
    this.cancel?.();
    this.cancel = null;
    this.error = null; // apply() sets it again if the first step cannot be shown
    const steps = opts.sound === false ? muted(STEP_PATTERNS[pattern]) : STEP_PATTERNS[pattern];
    this.cancel = runSteps(this.opts.clock, steps, (s) => this.apply(s));
    return Promise.resolve();
  }

  /** Shows one step (null: all off). Never throws: it also runs from timer callbacks. */
  private apply(s: Step | null): void {
    const o = this.outputs;
    if (!o) return;
    try {
      set(o.green, s?.green ?? false);
      set(o.red, s?.red ?? false);
      if (o.buzzer) set(o.buzzer, s?.buzzer ?? false);
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      this.log.warn({ err }, 'GPIO feedback failed');
    }
  }
}

function set(led: J5Led, on: boolean): void {
  if (on) led.on();
  else led.off();
}
