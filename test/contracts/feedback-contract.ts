/**
 * The Feedback port's contract (CONTRIBUTING.md, "Contract suites"), run over every feedback driver: each pattern
 * shows something, patterns are told apart by what the hardware does, signal() never throws and
 * never waits for a previous pattern, and a hardware fault lands in lastError.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FEEDBACK_PATTERNS } from '../../device/src/ports/feedback.js';
import type { Feedback } from '../../device/src/ports/feedback.js';

export interface FeedbackHarness {
  feedback: Feedback;
  /** Everything the hardware was told since the last call (pin writes, escape APDUs, records), as text. */
  takeOutput(): string[];
  /** Lets any running pattern play to its end (advances the fake clock). */
  finish(): void;
  /** Makes the hardware fail from now on (`true`) or work again (`false`). */
  setBroken(broken: boolean): void;
  dispose(): Promise<void>;
}

export function feedbackContract(name: string, makeHarness: () => Promise<FeedbackHarness>): void {
  describe(`Feedback contract: ${name}`, () => {
    let h: FeedbackHarness;

    beforeEach(async () => {
      h = await makeHarness();
      await h.feedback.start();
      h.finish();
      h.takeOutput();
    });

    afterEach(async () => {
      await h.feedback.stop();
      await h.dispose();
    });

    it('shows every pattern, and no two patterns look or sound the same', async () => {
      const seen = new Map<string, string>();
      for (const p of FEEDBACK_PATTERNS) {
        await h.feedback.signal(p);
        h.finish();
        const out = h.takeOutput();
        expect(out.length, `pattern ${p} produced no output`).toBeGreaterThan(0);
        const sig = out.join('|');
        expect(seen.get(sig), `pattern ${p} looks like ${seen.get(sig)}`).toBeUndefined();
        seen.set(sig, p);
        expect(h.feedback.lastError).toBeNull();
      }
      expect(seen.size).toBe(FEEDBACK_PATTERNS.length);
    });

    it('signal() resolves without waiting for the previous pattern to end', async () => {
      // the clock is not advanced here: a driver that waited for a pattern's end would hang
      await h.feedback.signal('visit-started');
      await h.feedback.signal('visit-ended');
      await h.feedback.signal('rejected');
      h.finish();
      expect(h.takeOutput().length).toBeGreaterThan(0);
    });

    it('never throws on a hardware fault; reports it in lastError and recovers', async () => {
      h.setBroken(true);
      await expect(h.feedback.signal('visit-started')).resolves.toBeUndefined();
      h.finish();
      expect(h.feedback.lastError).toEqual(expect.any(String));
      h.setBroken(false);
      await h.feedback.signal('visit-ended');
      h.finish();
      expect(h.feedback.lastError).toBeNull();
    });

    it('stop() is idempotent', async () => {
      await h.feedback.stop();
      await expect(h.feedback.stop()).resolves.toBeUndefined();
    });
  });
}
