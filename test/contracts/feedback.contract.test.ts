/**
 * The Feedback contract over every feedback driver: simulated, johnny-five on a mock Firmata
 * board (mock-firmata, the double johnny-five's own tests use), and the reader's own LED/buzzer
 * (ACR122U and ACR1252U command sets) over a recording escape channel.
 */
import pino from 'pino';
import { createAcr122Feedback } from '../../device/src/drivers/acr122-feedback.js';
import { createJohnnyFiveFeedback } from '../../device/src/drivers/johnny-five-feedback.js';
import { SimulatedFeedback } from '../../device/src/drivers/simulated-feedback.js';
import { feedbackContract } from './feedback-contract.js';
import { ManualClock } from './manual-clock.js';
import { mockBoard } from './mock-board.js';

const logger = pino({ level: 'silent' });
const FINISH_MS = 10_000; // longer than any pattern

feedbackContract('simulated', () => {
  const clock = new ManualClock();
  let broken = false;
  const feedback = new SimulatedFeedback({
    clock,
    signalFn: () => {
      if (broken) throw new Error('LED driver gone');
    },
  });
  let taken = 0;
  return Promise.resolve({
    feedback,
    takeOutput: () => feedback.signals.slice(taken, (taken = feedback.signals.length)).map((s) => s.pattern),
    finish: () => clock.advance(FINISH_MS),
    setBroken: (b: boolean) => void (broken = b),
    dispose: () => Promise.resolve(),
  });
});

feedbackContract('johnny-five (mock-firmata)', () => {
  const clock = new ManualClock();
  const board = mockBoard(clock);
  const feedback = createJohnnyFiveFeedback({
    logger,
    clock,
    io: board.io,
    pins: { green: 9, red: 10, buzzer: 8 },
  });
  return Promise.resolve({
    feedback,
    takeOutput: () => board.out.splice(0).filter((w) => !w.includes('pinMode')),
    finish: () => clock.advance(FINISH_MS),
    setBroken: (b: boolean) => board.setBroken(b),
    dispose: () => Promise.resolve(),
  });
});

for (const dialect of ['acr122', 'acr1252'] as const) {
  feedbackContract(`reader-led (${dialect}, recording escape)`, () => {
    const clock = new ManualClock();
    const sent: string[] = [];
    let broken = false;
    const reader = {
      readerName:
        dialect === 'acr122' ? 'ACS ACR122U PICC Interface 00 00' : 'ACS ACR1252 1S CL Reader PICC 00 00',
      escape(apdu: Buffer): Promise<Buffer> {
        if (broken) return Promise.reject(new Error('SCardControl failed: reader unplugged'));
        sent.push(`${clock.monotonic()}:${apdu.toString('hex')}`);
        return Promise.resolve(Buffer.from(apdu[0] === 0xff ? '9000' : 'e100000001', 'hex'));
      },
    };
    const feedback = createAcr122Feedback({ logger, clock, reader });
    return Promise.resolve({
      feedback,
      takeOutput: () => sent.splice(0),
      finish: () => clock.advance(FINISH_MS),
      setBroken: (b: boolean) => void (broken = b),
      dispose: () => Promise.resolve(),
    });
  });
}
