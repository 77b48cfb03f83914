/**
 * What each hardware feedback driver puts on the wire, beyond the shared contract: the exact
 * ACR122U LED/buzzer pseudo-APDUs, the ACR1252U escape sequence, and the johnny-five pin writes
 * over time on a mock Firmata board.
 */
import { Firmata } from 'mock-firmata';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createAcr122Feedback } from '../../device/src/drivers/acr122-feedback.js';
import { createJohnnyFiveFeedback } from '../../device/src/drivers/johnny-five-feedback.js';
import { ACR122_PATTERNS } from '../../device/src/drivers/pcsc-patterns.js';
import { FEEDBACK_PATTERNS } from '../../device/src/ports/feedback.js';
import { mockBoard } from './mock-board.js';
import { ManualClock } from './manual-clock.js';

const logger = pino({ level: 'silent' });

function recordingReader(clock: ManualClock, readerName: string) {
  const sent: string[] = [];
  let pending: (() => void) | null = null;
  return {
    sent,
    readerName,
    /** When set, escape() answers only once released (an ACR122U answers after its pattern). */
    slow: false,
    release: () => pending?.(),
    escape(apdu: Buffer): Promise<Buffer> {
      sent.push(`${clock.monotonic()}:${apdu.toString('hex')}`);
      const answer = Buffer.from(apdu[0] === 0xff ? '9002' : 'e100000001', 'hex');
      if (!this.slow) return Promise.resolve(answer);
      return new Promise((resolve) => (pending = () => resolve(answer)));
    },
  };
}

describe('reader-led feedback (ACR122U / ACR1252U)', () => {
  it('sends one FF 00 40 LED/buzzer pseudo-APDU per pattern on an ACR122U', async () => {
    const clock = new ManualClock();
    const reader = recordingReader(clock, 'ACS ACR122U PICC Interface 00 00');
    const fb = createAcr122Feedback({ logger, clock, reader });
    await fb.start();
    await fb.signal('visit-started');
    // P2 AC: both LEDs updated, final off, green blinks starting on; T1 800 ms, T2 100 ms, once,
    // buzzer during T1
    expect(reader.sent).toEqual(['0:ff0040ac0408010101']);
    for (const p of FEEDBACK_PATTERNS) {
      const apdu = ACR122_PATTERNS[p];
      expect(apdu.subarray(0, 3).toString('hex')).toBe('ff0040');
      expect(apdu[4]).toBe(4);
    }
    expect(new Set(FEEDBACK_PATTERNS.map((p) => ACR122_PATTERNS[p].toString('hex'))).size).toBe(7);
    expect(ACR122_PATTERNS.identify[3]).toBe(0xec); // both blink, green on first: alternating
    expect(ACR122_PATTERNS.repeat[8]).toBe(0); // silent
  });

  it('returns before a slow reader finishes its pattern (a tap never waits on feedback)', async () => {
    const clock = new ManualClock();
    const reader = recordingReader(clock, 'ACS ACR122U PICC Interface 00 00');
    reader.slow = true;
    const fb = createAcr122Feedback({ logger, clock, reader, acceptWaitMs: 50 });
    await fb.start();
    let done = false;
    const p = fb.signal('rejected').then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    clock.advance(50);
    await p;
    expect(done).toBe(true);
    reader.release();
  });

  it('steps LED and buzzer escapes on an ACR1252U, chosen by the reader name', async () => {
    const clock = new ManualClock();
    const reader = recordingReader(clock, 'ACS ACR1252 1S CL Reader PICC 00 00');
    const fb = createAcr122Feedback({ logger, clock, reader });
    await fb.start();
    await fb.signal('visit-started');
    clock.advance(5_000);
    expect(reader.sent).toEqual([
      '0:e00000290102', // green on
      '0:e0000028010f', // beep 150 ms
      '150:e00000290102', // green stays on
      '800:e00000290100', // all off
    ]);
  });

  it('does nothing but report when signalled before start()', async () => {
    const clock = new ManualClock();
    const reader = recordingReader(clock, 'ACS ACR122U PICC Interface 00 00');
    const fb = createAcr122Feedback({ logger, clock, reader, dialect: 'acr122' });
    await fb.signal('identify');
    expect(reader.sent).toEqual([]);
    expect(fb.lastError).toMatch(/not started/);
  });
});

describe('johnny-five feedback (mock Firmata board)', () => {
  const pins = { green: 9, red: 10, buzzer: 8 };

  it('drives green LED and buzzer for visit-started on the injected clock, then all off', async () => {
    const clock = new ManualClock();
    const board = mockBoard(clock);
    const fb = createJohnnyFiveFeedback({ logger, clock, io: board.io, pins });
    await fb.start();
    expect(board.out.filter((w) => w.includes('pinMode'))).toHaveLength(3);
    board.out.splice(0);
    await fb.signal('visit-started');
    clock.advance(2_000);
    // pins 9 and 10 are PWM on an Uno (analogWrite 255 = on), pin 8 is digital
    expect(board.out).toEqual([
      '0:analogWrite(9,255)',
      '0:analogWrite(10,0)',
      '0:digitalWrite(8,1)',
      '150:analogWrite(9,255)',
      '150:analogWrite(10,0)',
      '150:digitalWrite(8,0)',
      '800:analogWrite(9,0)',
      '800:analogWrite(10,0)',
      '800:digitalWrite(8,0)',
    ]);
    await fb.stop();
  });

  it('a new signal cuts the running pattern short', async () => {
    const clock = new ManualClock();
    const board = mockBoard(clock);
    const fb = createJohnnyFiveFeedback({ logger, clock, io: board.io, pins });
    await fb.start();
    await fb.signal('identify'); // 2.4 s of alternating green/red
    clock.advance(100);
    board.out.splice(0);
    await fb.signal('rejected');
    clock.advance(5_000);
    const greenOn = board.out.filter((w) => w.endsWith('analogWrite(9,255)'));
    expect(greenOn).toEqual([]);
    expect(board.out.at(-3)).toBe('1100:analogWrite(9,0)');
    expect(clock.pending).toBe(0);
  });

  it('start() fails with a clear message when the IO plugin never becomes ready', async () => {
    const clock = new ManualClock();
    const fb = createJohnnyFiveFeedback({ logger, clock, io: new Firmata(), pins, readyTimeoutMs: 1_000 });
    const started = fb.start();
    const outcome = started.then(
      () => 'resolved',
      (e: Error) => e.message,
    );
    for (let i = 0; i < 200 && clock.pending === 0; i++) await new Promise((r) => setTimeout(r, 5));
    clock.advance(1_000);
    expect(await outcome).toMatch(/IO plugin did not become ready/);
  });
});
