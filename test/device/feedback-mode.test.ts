/**
 * Feedback modes (pushed `feedbackMode`): which patterns keep their sound, and that every driver
 * really leaves the buzzer off when told, while the lights (and so the meaning) stay the same.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ConsoleFeedback } from '../../device/src/drivers/console-feedback.js';
import { createAcr122Feedback } from '../../device/src/drivers/acr122-feedback.js';
import { createJohnnyFiveFeedback } from '../../device/src/drivers/johnny-five-feedback.js';
import { signalOptions } from '../../device/src/feedback-mode.js';
import { FEEDBACK_PATTERNS } from '../../device/src/ports/feedback.js';
import type { FeedbackPattern } from '../../device/src/ports/feedback.js';
import { ManualClock } from '../contracts/manual-clock.js';
import { mockBoard } from '../contracts/mock-board.js';

const logger = pino({ level: 'silent' });
const audible = (mode: 'normal' | 'quiet' | 'silent') =>
  FEEDBACK_PATTERNS.filter((p) => signalOptions(mode, p).sound);

describe('feedback modes', () => {
  it('normal: every pattern with sound; quiet: only "not accepted" and faults sound; silent: none', () => {
    expect(audible('normal')).toEqual([...FEEDBACK_PATTERNS]);
    expect(audible('quiet')).toEqual(['rejected', 'fault-reader', 'fault-storage']);
    expect(audible('silent')).toEqual([]);
  });

  it('johnny-five: sound off never raises the buzzer pin, the LEDs do the same, patterns stay distinct', async () => {
    const pins = { green: 9, red: 10, buzzer: 8 };
    const clock = new ManualClock();
    const board = mockBoard(clock);
    const fb = createJohnnyFiveFeedback({ logger, clock, io: board.io, pins });
    await fb.start();
    const play = async (p: FeedbackPattern, sound: boolean): Promise<string[]> => {
      board.out.splice(0);
      const t0 = clock.monotonic();
      await fb.signal(p, { sound });
      clock.advance(5_000);
      // times relative to the pattern's start, so two plays compare
      return board.out.map((w) => w.replace(/^(\d+):/, (_m, t: string) => `${Number(t) - t0}:`));
    };
    const lightsOnly = new Set<string>();
    for (const p of FEEDBACK_PATTERNS) {
      const loud = await play(p, true);
      const quiet = await play(p, false);
      expect(
        quiet.filter((w) => w.includes('digitalWrite(8,1)')),
        p,
      ).toEqual([]);
      const leds = (ws: string[]) => ws.filter((w) => !w.includes('(8,'));
      expect(leds(quiet), p).toEqual(leds(loud));
      lightsOnly.add(leds(quiet).join('|'));
    }
    expect(lightsOnly.size).toBe(FEEDBACK_PATTERNS.length);
    // with sound, started beeps (the control: the mock does see buzzer writes)
    expect((await play('visit-started', true)).some((w) => w.includes('digitalWrite(8,1)'))).toBe(true);
    await fb.stop();
  });

  it('reader-led ACR122U: the same LED command with the buzzer link cleared; ACR1252U: no buzzer escape', async () => {
    const clock = new ManualClock();
    const sent: string[] = [];
    const reader = (readerName: string) => ({
      readerName,
      escape(apdu: Buffer): Promise<Buffer> {
        sent.push(apdu.toString('hex'));
        return Promise.resolve(Buffer.from(apdu[0] === 0xff ? '9002' : 'e100000001', 'hex'));
      },
    });
    const acr122 = createAcr122Feedback({
      logger,
      clock,
      reader: reader('ACS ACR122U PICC Interface 00 00'),
    });
    await acr122.start();
    await acr122.signal('visit-started', { sound: false });
    await acr122.signal('visit-started');
    expect(sent).toEqual(['ff0040ac0408010100', 'ff0040ac0408010101']);

    sent.splice(0);
    const acr1252 = createAcr122Feedback({
      logger,
      clock,
      reader: reader('ACS ACR1252 1S CL Reader PICC 00 00'),
    });
    await acr1252.start();
    await acr1252.signal('rejected', { sound: false });
    clock.advance(5_000);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.filter((a) => a.startsWith('e0000028'))).toEqual([]); // buzzer escapes
    expect(sent[0]).toBe('e00000290101'); // red on
    sent.splice(0);
    await acr1252.signal('rejected');
    clock.advance(5_000);
    expect(sent.filter((a) => a.startsWith('e0000028'))).toHaveLength(1);
  });

  it('console: says when a pattern is shown without sound', async () => {
    const lines: string[] = [];
    const fb = new ConsoleFeedback({ write: (l) => lines.push(l) });
    await fb.signal('visit-ended', { sound: false });
    await fb.signal('visit-ended');
    expect(lines[0]).toMatch(/visit ended \(no sound\)$/);
    expect(lines[1]).toMatch(/visit ended$/);
  });
});
