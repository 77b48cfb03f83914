import type { Clock, TimerHandle } from '../../../protocol/index.js';
import type { FeedbackPattern } from '../ports/feedback.js';

/**
 * Feedback patterns for readers' own LED/buzzer, and the timed step runner the reader-led and
 * GPIO drivers share. Every pattern is short (≤ 2.4 s) and distinct by colour, count and sound;
 * device/HARDWARE.md has the table a technician reads.
 */

/** One step: what the outputs show for `ms` milliseconds. */
export interface Step {
  ms: number;
  green: boolean;
  red: boolean;
  buzzer: boolean;
}

/** Runs steps on the injected clock, applying each; ends with everything off. Returns a cancel. */
export function runSteps(clock: Clock, steps: readonly Step[], apply: (s: Step | null) => void): () => void {
  let timer: TimerHandle | null = null;
  let i = 0;
  const next = (): void => {
    timer = null;
    const step = steps[i++];
    apply(step ?? null);
    if (step) timer = clock.setTimeout(next, step.ms);
  };
  next();
  return () => {
    if (timer) clock.clearTimeout(timer);
    timer = null;
  };
}

const S = (ms: number, g: 0 | 1, r: 0 | 1, b: 0 | 1): Step => ({ ms, green: !!g, red: !!r, buzzer: !!b });
const rep = (n: number, ...s: Step[]): Step[] => Array.from({ length: n }, () => s).flat();

/** Timed patterns for drivers that switch LEDs and buzzer themselves (GPIO, ACR1252U). */
export const STEP_PATTERNS: Record<FeedbackPattern, readonly Step[]> = {
  // one long green + one short beep: "you are checked in"
  'visit-started': [S(150, 1, 0, 1), S(650, 1, 0, 0)],
  // two green blinks, two beeps: "you are checked out"
  'visit-ended': rep(2, S(150, 1, 0, 1), S(150, 0, 0, 0)),
  // three quick green flickers, silent: "already registered"
  repeat: rep(3, S(80, 1, 0, 0), S(80, 0, 0, 0)),
  // long red + long low beep: "not accepted"
  rejected: [S(600, 0, 1, 1), S(400, 0, 1, 0)],
  // three red blinks with beeps: reader fault
  'fault-reader': rep(3, S(200, 0, 1, 1), S(200, 0, 0, 0)),
  // five fast red blinks, one beep: storage full
  'fault-storage': [S(100, 0, 1, 1), S(100, 0, 0, 0), ...rep(4, S(100, 0, 1, 0), S(100, 0, 0, 0))],
  // green/red alternating, silent: "this is the reader you are looking for"
  identify: rep(4, S(300, 1, 0, 0), S(300, 0, 1, 0)),
};

/** The same steps with the buzzer off (feedback modes quiet/silent): lights unchanged. */
export function muted(steps: readonly Step[]): Step[] {
  return steps.map((s) => ({ ...s, buzzer: false }));
}

/**
 * ACR122U "Bi-Color LED and Buzzer Control" pseudo-APDU: FF 00 40 P2 04 T1 T2 N L.
 * P2 bits: 0 final red, 1 final green, 2 red mask, 3 green mask, 4 initial red blink state,
 * 5 initial green blink state, 6 red blink mask, 7 green blink mask. T1/T2: initial/toggle blink
 * durations in 100 ms units; N repetitions; L buzzer link (0 off, 1 during T1, 2 during T2, 3 both).
 * The reader runs the whole pattern itself, so one command per pattern and no timers here.
 */
export function acr122LedBuzzer(p: {
  green?: 'blink' | 'off';
  red?: 'blink' | 'off';
  /** Second colour blinks in antiphase (red off while green on). */
  alternate?: boolean;
  t1: number;
  t2: number;
  reps: number;
  buzzer: 0 | 1 | 2 | 3;
}): Buffer {
  let p2 = 0b0000_1100; // update both LEDs; final state both off (the firmware's idle state returns)
  if (p.green === 'blink') p2 |= 0b1010_0000; // green blinks, starting on
  if (p.red === 'blink') p2 |= p.alternate ? 0b0100_0000 : 0b0101_0000; // red blinks (antiphase if alternate)
  return Buffer.from([0xff, 0x00, 0x40, p2, 0x04, p.t1, p.t2, p.reps, p.buzzer]);
}

export const ACR122_PATTERNS: Record<FeedbackPattern, Buffer> = {
  'visit-started': acr122LedBuzzer({ green: 'blink', t1: 8, t2: 1, reps: 1, buzzer: 1 }),
  'visit-ended': acr122LedBuzzer({ green: 'blink', t1: 2, t2: 2, reps: 2, buzzer: 1 }),
  repeat: acr122LedBuzzer({ green: 'blink', t1: 1, t2: 1, reps: 3, buzzer: 0 }),
  rejected: acr122LedBuzzer({ red: 'blink', t1: 10, t2: 1, reps: 1, buzzer: 1 }),
  'fault-reader': acr122LedBuzzer({ red: 'blink', t1: 2, t2: 2, reps: 3, buzzer: 1 }),
  'fault-storage': acr122LedBuzzer({ red: 'blink', t1: 1, t2: 1, reps: 5, buzzer: 1 }),
  identify: acr122LedBuzzer({
    green: 'blink',
    red: 'blink',
    alternate: true,
    t1: 3,
    t2: 3,
    reps: 4,
    buzzer: 0,
  }),
};

/** An ACR122U pattern with its buzzer link cleared (byte L = 0): the same lights, no sound. */
export function mutedAcr122(apdu: Buffer): Buffer {
  const out = Buffer.from(apdu);
  out[8] = 0;
  return out;
}

/**
 * ACR1252U escape commands (ACS reference manual, "Peripherals Control"; sent with SCardControl):
 * LED control `E0 00 00 29 01 xx` (bit 0 red, bit 1 green) and buzzer control `E0 00 00 28 01 tt`
 * (tt × 10 ms on). The ACR1252U has no timed blink command, so the driver steps STEP_PATTERNS.
 */
export function acr1252Led(green: boolean, red: boolean): Buffer {
  return Buffer.from([0xe0, 0x00, 0x00, 0x29, 0x01, (red ? 1 : 0) | (green ? 2 : 0)]);
}

export function acr1252Buzzer(ms: number): Buffer {
  return Buffer.from([0xe0, 0x00, 0x00, 0x28, 0x01, Math.max(1, Math.min(255, Math.round(ms / 10)))]);
}
