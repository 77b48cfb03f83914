/**
 * The checker catches a deliberately broken build. Same seed, same fault (a reader loses power right
 * after giving feedback for a tap), two builds: the real journal (durable commit before feedback)
 * passes; a journal whose last commit does not survive the crash (feedback without a durable commit)
 * is caught as a lost tap.
 */
import { describe, expect, it } from 'vitest';
import { processSupport, runSimulation } from '../../simulator/run.js';

const RUN = {
  seed: 11,
  readers: 6,
  staff: 3,
  hours: 3,
  faults: ['device-kill' as const],
  deviceKill: 'after-feedback' as const,
  stepMs: 2000,
  keep: 'never' as const,
};

describe('broken build caught by the checker', () => {
  it(
    'the real device journal keeps every tap that got feedback through a crash',
    { timeout: 120_000 },
    async () => {
      const r = await runSimulation({ ...RUN, processes: await processSupport() });
      expect(r.faults['device-kill']).toBe(1);
      const failed = r.results.filter((c) => !c.ok && c.severity === 'invariant').map((c) => c.name);
      expect(failed).toEqual([]);
    },
  );

  it(
    'a journal that loses its last commit on a crash is caught: a tap with feedback never arrives',
    { timeout: 120_000 },
    async () => {
      const r = await runSimulation({
        ...RUN,
        brokenJournal: 'non-durable-journal',
        processes: await processSupport(),
      });
      expect(r.ok).toBe(false);
      const lost = r.results.find((c) => c.name === 'positive-feedback-taps-delivered');
      expect(lost?.ok).toBe(false);
      expect(lost?.failures.join('\n')).toMatch(/shown @.* but no matching backend event/);
    },
  );
});
